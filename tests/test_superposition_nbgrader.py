"""The chapter 01 round trip through real nbgrader: generate_assignment, autograde a class of
submissions (good, empty, partial, broken and hostile), export grades, and check every score."""

import csv
import subprocess
import sys

import nbformat
import pytest
from nbgrader.api import Gradebook

from reference_impl.course.build import exercises
from reference_impl.course.nbgrader_course import autograde, write_course
from tests import notebooks

ASSIGNMENT = "01_superposition"
HALF = ["generate_batch", "train", "interference", "classify_phase"]
RAISES, LOOPS = "importance_weighted_loss", "dimensions_per_feature"
IMPORTS = ["reconstruct", "feature_dimensionality"]


def _nbgrader(course, *args):
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _with_answers(nb, answers):
    """A copy of ``nb`` whose answer cells ``answers`` (grade_id -> source) are replaced."""
    nb = nbformat.from_dict(nb)
    for grade_id, source in answers.items():
        notebooks.cell(nb, grade_id).source = source
    return nb


def _body_prefixed(source, lines):
    """The function in ``source`` with ``lines`` run first thing in its body."""
    head, _, rest = source.partition('"""')
    docstring, _, body = rest.partition('"""')
    return head + '"""' + docstring + '"""\n' + "".join(f"    {line}\n" for line in lines) + body


def _submissions(solution, release):
    answer = {c.metadata.nbgrader["grade_id"]: c.source for c in notebooks.answer_cells(solution)}
    return {
        "alice": solution,
        "bob": release,
        "carol": _with_answers(release, {name: answer[name] for name in HALF}),
        "dave": _with_answers(solution, {RAISES: _body_prefixed(
            answer[RAISES], ['raise ValueError("I gave up")'])}),
        "erin": _with_answers(solution, {LOOPS: _body_prefixed(
            answer[LOOPS], ["while True:", "    pass"])}),
        "frank": _with_answers(solution, {name: _body_prefixed(source, [
            "import sys, warnings",
            "print('debugging', file=sys.stderr)",
            "warnings.warn('this is only a warning')"]) for name, source in answer.items()}),
        "grace": _with_answers(solution, {"interference": _body_prefixed(
            answer["interference"], ["import os", "os._exit(1)"])}),
        "heidi": _with_answers(solution, {name: f"from reference_impl.superposition import {name}"
                                          for name in IMPORTS}),
    }


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory, superposition, monkeypatch_module):
    # The grading checks give up on a hanging answer after 10 s, nbgrader after 30 s per cell.
    monkeypatch_module.setenv("MECHINTERP_CHECK_TIMEOUT", "10")
    course = write_course(tmp_path_factory.mktemp("course"), [superposition], cell_timeout=30)
    _nbgrader(course, "generate_assignment", ASSIGNMENT)
    release = notebooks.read(course / "release" / ASSIGNMENT / "exercises.ipynb")
    solution = notebooks.read(course / "source" / ASSIGNMENT / "exercises.ipynb")
    for student, nb in _submissions(solution, release).items():
        target = course / "submitted" / student / ASSIGNMENT / "exercises.ipynb"
        target.parent.mkdir(parents=True)
        nbformat.write(nb, target)
    # A student who never handed anything in still gets a row.
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        gradebook.add_student("ivan")
    outcomes = {o.student: o for o in autograde(course, ASSIGNMENT)}
    _nbgrader(course, "export")
    with open(course / "grades.csv") as f:
        scores = {row["student_id"]: float(row["score"]) for row in csv.DictReader(f)}
    return course, outcomes, scores


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def points(superposition):
    return {e.name: e.points for e in exercises(superposition)}


def _check_output(course, student, exercise):
    nb = notebooks.read(course / "autograded" / student / ASSIGNMENT / "exercises.ipynb")
    cell = notebooks.cell(nb, f"check_{exercise}")
    return "".join(str(o.get("evalue", "")) + o.get("text", "") for o in cell.outputs)


def test_release_is_the_learner_notebook(graded_class, superposition):
    course, _, _ = graded_class
    released = (course / "release" / ASSIGNMENT / "exercises.ipynb").read_text()
    assert released == superposition.learner_notebook.read_text()


def test_every_student_keeps_a_row(graded_class):
    _, _, scores = graded_class
    assert sorted(scores) == ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
                              "ivan"]
    assert scores["ivan"] == 0


def test_solution_full_marks_release_zero(graded_class, points):
    _, _, scores = graded_class
    assert scores["alice"] == sum(points.values())
    assert scores["bob"] == 0


def test_half_solved_gets_exactly_those_points(graded_class, points):
    _, _, scores = graded_class
    assert len(HALF) * 2 == len(points)
    assert scores["carol"] == sum(points[name] for name in HALF)


def test_raising_or_looping_exercise_loses_only_its_points(graded_class, points):
    course, _, scores = graded_class
    total = sum(points.values())
    assert scores["dave"] == total - points[RAISES]
    assert "raised ValueError" in _check_output(course, "dave", RAISES)
    assert scores["erin"] == total - points[LOOPS]
    assert "did not finish within 10 s" in _check_output(course, "erin", LOOPS)


def test_noisy_but_correct_gets_full_marks(graded_class, points):
    _, _, scores = graded_class
    assert scores["frank"] == sum(points.values())


def test_killed_kernel_scores_zero_with_the_reason(graded_class):
    course, outcomes, scores = graded_class
    assert scores["grace"] == 0
    assert not outcomes["grace"].success
    assert "killed its Python kernel" in outcomes["grace"].reason
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        submission = gradebook.find_submission(ASSIGNMENT, "grace")
        comments = [c.manual_comment for n in submission.notebooks for c in n.comments]
        assert comments and all("killed its Python kernel" in c for c in comments)
    assert all(o.success for name, o in outcomes.items() if name != "grace")


def test_importing_the_solution_module_earns_nothing_for_those_exercises(graded_class, points):
    course, _, scores = graded_class
    assert scores["heidi"] == sum(points.values()) - sum(points[name] for name in IMPORTS)
    for name in IMPORTS:
        assert "uses the chapter's solution module" in _check_output(course, "heidi", name)
