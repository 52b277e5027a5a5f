"""`mechinterp autograde`'s options, and where the gradebook is, without grading anyone (a class
is graded for real in each chapter's test_nbgrader.py, and at scale with pytest -m grading)."""

import os

import pytest
from nbgrader.api import Gradebook

from reference_impl.course.nbgrader_course import (GRADEBOOK_VARIABLE, grade_student,
                                                   gradebook_url, write_course)
from reference_impl.errors import CourseError
from tests.nbgrader_class import run_nbgrader
from tests.test_cli import mechinterp

ASSIGNMENT = "01_superposition"


@pytest.fixture
def course(tmp_path, superposition):
    course = write_course(tmp_path / "course", [superposition])
    (course / "submitted" / "bob" / ASSIGNMENT).mkdir(parents=True)
    return course


@pytest.mark.parametrize("options, message", [
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"], "not both"),
    (["--workers", "0"], "--workers must be at least 1, not 0"),
])
def test_impossible_options_are_a_clear_error(course, options, message):
    result = mechinterp("autograde", str(course), ASSIGNMENT, *options)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_folder_that_is_not_a_course_or_has_no_submissions_is_a_clear_error(tmp_path, course):
    result = mechinterp("autograde", str(tmp_path), ASSIGNMENT)
    assert result.returncode == 2 and "is not an nbgrader course directory" in result.stderr
    result = mechinterp("autograde", str(course), "03_induction_heads")
    assert result.returncode == 2
    assert "no student has handed in 03_induction_heads" in result.stderr


def test_the_gradebook_is_the_course_s_sqlite_file_unless_the_variable_names_another(
        tmp_path, course, monkeypatch):
    monkeypatch.delenv(GRADEBOOK_VARIABLE, raising=False)
    assert gradebook_url(course) == f"sqlite:///{course / 'gradebook.db'}"
    assert gradebook_url(course, "sqlite:///x.db") == "sqlite:///x.db"
    # nbgrader's own commands read the same variable through the course's nbgrader_config.py.
    elsewhere = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    run_nbgrader(course, "db", "student", "add", "dave", env={GRADEBOOK_VARIABLE: elsewhere})
    monkeypatch.setenv(GRADEBOOK_VARIABLE, elsewhere)
    assert gradebook_url(course) == elsewhere
    with Gradebook(elsewhere) as gradebook:
        assert [s.id for s in gradebook.students] == ["dave"]
    assert not (course / "gradebook.db").exists()


def test_a_worker_that_cannot_see_the_course_says_so(tmp_path):
    with pytest.raises(CourseError, match="cannot see the course directory .*: every worker "
                                          "needs it at the same path"):
        grade_student(tmp_path / "elsewhere", ASSIGNMENT, "bob", "sqlite:///x.db")


def test_a_student_that_stops_every_worker_scores_zero_with_the_reason(course):
    from distributed import as_completed

    from reference_impl.course import distributed
    from reference_impl.course.nbgrader_course import _api

    run_nbgrader(course, "generate_assignment", ASSIGNMENT)
    with distributed._client(workers=1, scheduler=None) as client:
        # Grading bob kills the worker, and the worker Dask starts in its place, until Dask
        # gives up on him.
        future = client.submit(os._exit, 1, pure=False)
        [outcome] = distributed._outcomes(as_completed([future]), {future: "bob"}, _api(course),
                                          ASSIGNMENT)
    assert not outcome.success and outcome.reason == distributed.WORKERS_DIED
    with Gradebook(gradebook_url(course)) as gradebook:
        notebook, = gradebook.find_submission(ASSIGNMENT, "bob").notebooks
        assert notebook.score == 0 and notebook.comments
        assert all(distributed.WORKERS_DIED in c.manual_comment for c in notebook.comments)
