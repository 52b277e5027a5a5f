"""The chapter 01 round trip through real nbgrader: generate_assignment, autograde a compact
class whose submissions carry every kind of fault (one per exercise where they can share a
notebook), export grades, and check every score and message. (The solution's full marks are
checked on the solution notebook's own run, in test_chapter.py: one notebook run fewer here.)"""

import pytest
from nbgrader.api import Gradebook

from reference_impl.course.build import exercises
from tests.nbgrader_class import (answers_of, body_prefixed, check_output, core_submissions,
                                  grade_class, with_answers)

ASSIGNMENT = "01_superposition"
# carol's notebook: one fault per exercise, and what each check must say about it.
CAROL = {
    "reconstruct": "uses the chapter's solution module",
    "generate_batch": None,  # right, under a check cell she edited: graded with the original
    "importance_weighted_loss": "raised ValueError",
    "train": None,  # right, but prints to stderr and warns
    "interference": None,  # right
    "feature_dimensionality": "is not defined: its answer cell did not run to the end",
    "dimensions_per_feature": "did not finish within 10 s",
    "classify_phase": "uses the chapter's solution module",
}


def _carol(solution, release):
    answer = answers_of(solution)
    nb = with_answers(solution, {
        "reconstruct": "from reference_impl.superposition.solutions import reconstruct",
        "importance_weighted_loss": body_prefixed(answer["importance_weighted_loss"],
                                                  ['raise ValueError("I gave up")']),
        "train": body_prefixed(answer["train"], ["import sys, warnings",
                                                 "print('debugging', file=sys.stderr)",
                                                 "warnings.warn('this is only a warning')"]),
        "feature_dimensionality": answer["feature_dimensionality"].replace("):", ")", 1),
        "dimensions_per_feature": body_prefixed(answer["dimensions_per_feature"],
                                                ["while True:", "    pass"]),
        "classify_phase": "import importlib\n\n"
                          "classify_phase = importlib.import_module(\n"
                          "    'reference_impl.superposition.solutions').classify_phase\n",
    })
    return with_answers(nb, {"check_generate_batch": "print('looks fine to me')"})


def _submissions(solution, release):
    return {
        **core_submissions(solution, release),
        "carol": _carol(solution, release),
    }


INVALID = {"judy": '{"cells": [{"cell_type": "code",\n "source": "x",, }]}'}


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory, superposition, monkeypatch_module):
    # The grading checks give up on a hanging answer after 10 s, nbgrader after 30 s per cell.
    monkeypatch_module.setenv("MECHINTERP_CHECK_TIMEOUT", "10")
    # ivan never handed anything in, and still gets a row.
    return grade_class(tmp_path_factory.mktemp("course"), superposition, _submissions,
                       cell_timeout=30, absent=["ivan"], files=INVALID)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def points(superposition):
    return {e.name: e.points for e in exercises(superposition)}


def _comments(course, student):
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        submission = gradebook.find_submission(ASSIGNMENT, student)
        return [c.manual_comment for n in submission.notebooks for c in n.comments]


def test_release_is_the_learner_notebook(graded_class, superposition):
    course, _, _ = graded_class
    released = (course / "release" / ASSIGNMENT / "exercises.ipynb").read_text()
    assert released == superposition.learner_notebook.read_text()


def test_every_student_keeps_a_row(graded_class):
    _, _, scores = graded_class
    assert sorted(scores) == ["bob", "carol", "ivan", "judy"]
    assert scores["ivan"] == 0


def test_the_untouched_release_scores_zero(graded_class):
    _, outcomes, scores = graded_class
    assert outcomes["bob"].success
    assert scores["bob"] == 0


def test_each_fault_costs_only_its_own_exercise_and_says_why(graded_class, points):
    course, outcomes, scores = graded_class
    assert outcomes["carol"].success
    assert scores["carol"] == sum(points[name] for name, fault in CAROL.items() if fault is None)
    for name, fault in CAROL.items():
        if fault:
            assert fault in check_output(course, ASSIGNMENT, "carol", name), name


def test_a_file_that_is_not_a_notebook_scores_zero_and_says_where(graded_class):
    course, outcomes, scores = graded_class
    assert scores["judy"] == 0 and not outcomes["judy"].success
    reason = ("exercises.ipynb is not a valid notebook: it is not valid JSON (Expecting property "
              "name enclosed in double quotes: line 2 column 16")
    assert reason in outcomes["judy"].reason
    comments = _comments(course, "judy")
    assert comments and all(reason in c for c in comments)
