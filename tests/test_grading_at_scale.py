"""Grading a class at scale, for real: the course's class of faulty chapter 03 submissions
(tests/induction_heads/faulty_class.py) graded by `mechinterp autograde` one student at a time
into SQLite, with --workers 2 (a local Dask cluster) into a PostgreSQL server, and with
--scheduler on a Dask scheduler and two worker processes, one of them killed in the middle of the
class (the induction_heads_class fixture in conftest.py). Every way must give every student
exactly one row and the same grades. Run in their own step: pytest -m grading."""

import pytest

from tests.induction_heads.faulty_class import ASSIGNMENT, CHECK_TIMEOUT, LOOPS
from tests.nbgrader_class import check_output

pytestmark = pytest.mark.grading


def rows(export):
    """The lines of an export, header first, then its rows sorted: nbgrader lists the students
    in the order they were graded, which differs from run to run when several are graded at
    once."""
    header, *students = export.splitlines()
    return [header, *sorted(students)]


@pytest.fixture(scope="module")
def runs(induction_heads_class):
    return induction_heads_class[0]


def test_the_serial_run_is_a_whole_class(runs):
    # Its one row each is checked in induction_heads/test_nbgrader.py.
    serial = runs["serial"]
    assert len(serial.outcomes) >= 12
    # Full marks, zeros and everything between: the comparisons below compare something.
    assert len(set(serial.scores.values())) >= 5


def test_postgres_on_two_workers_exports_what_the_serial_run_does(runs):
    postgres, serial = runs["postgres"], runs["serial"]
    assert postgres.submissions == serial.submissions
    assert rows(postgres.export) == rows(serial.export)
    assert postgres.outcomes == serial.outcomes


def test_a_killed_worker_loses_nothing(runs, induction_heads_class):
    killed, serial = runs["killed"], runs["serial"]
    interrupted = induction_heads_class[1]
    assert interrupted.startswith(f"grade-{ASSIGNMENT}-")
    assert killed.submissions == serial.submissions
    assert rows(killed.export) == rows(serial.export)
    assert killed.outcomes == serial.outcomes


def test_the_course_settings_travel_to_workers_that_lack_them(runs):
    # The Dask workers were started without MECHINTERP_CHECK_TIMEOUT; the grading checks in
    # their kernels still gave up on the endless answer after the class's CHECK_TIMEOUT.
    message = f"did not finish within {CHECK_TIMEOUT} s"
    assert message in check_output(runs["killed"].course, ASSIGNMENT, "heidi", LOOPS)


def test_an_unreachable_scheduler_is_a_clear_error(tmp_path, induction_heads):
    from tests.grading_services import free_port
    from tests.test_cli import mechinterp
    from reference_impl.course.nbgrader_course import write_course

    course = write_course(tmp_path, [induction_heads])
    (course / "submitted" / "bob" / ASSIGNMENT).mkdir(parents=True)
    address = f"tcp://127.0.0.1:{free_port()}"
    result = mechinterp("autograde", str(course), ASSIGNMENT, "--scheduler", address)
    assert result.returncode == 2
    assert f"error: cannot reach the Dask scheduler at {address}" in result.stderr
