"""The chapter 01 round trip through real nbgrader: generate_assignment, autograde a class of
submissions (good, empty, partial, broken and hostile), export grades, and check every score."""

import pytest
from nbgrader.api import Gradebook

from reference_impl.course.build import exercises
from tests.nbgrader_class import (answers_of, body_prefixed, check_output, core_submissions,
                                  grade_class, with_answers)

ASSIGNMENT = "01_superposition"
HALF = ["generate_batch", "train", "interference", "classify_phase"]
RAISES, LOOPS = "importance_weighted_loss", "dimensions_per_feature"
IMPORTS = ["reconstruct", "feature_dimensionality"]


def _submissions(solution, release):
    answer = answers_of(solution)
    return {
        **core_submissions(solution, release, HALF, RAISES),
        "erin": with_answers(solution, {LOOPS: body_prefixed(
            answer[LOOPS], ["while True:", "    pass"])}),
        "frank": with_answers(solution, {name: body_prefixed(source, [
            "import sys, warnings",
            "print('debugging', file=sys.stderr)",
            "warnings.warn('this is only a warning')"]) for name, source in answer.items()}),
        "grace": with_answers(solution, {"interference": body_prefixed(
            answer["interference"], ["import os", "os._exit(1)"])}),
        "heidi": with_answers(solution, {name: f"from reference_impl.superposition.solutions import {name}"
                                          for name in IMPORTS}),
    }


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory, superposition, monkeypatch_module):
    # The grading checks give up on a hanging answer after 10 s, nbgrader after 30 s per cell.
    monkeypatch_module.setenv("MECHINTERP_CHECK_TIMEOUT", "10")
    # ivan never handed anything in, and still gets a row.
    return grade_class(tmp_path_factory.mktemp("course"), superposition, _submissions,
                       cell_timeout=30, absent=["ivan"])


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def points(superposition):
    return {e.name: e.points for e in exercises(superposition)}


def _check_output(course, student, exercise):
    return check_output(course, ASSIGNMENT, student, exercise)


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
