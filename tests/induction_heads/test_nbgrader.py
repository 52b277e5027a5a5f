"""The chapter 03 round trip through real nbgrader, with the course's class of faulty submissions
(tests/induction_heads/faulty_class.py): generate_assignment, `mechinterp autograde` one student
at a time, export grades, check every score and message. The class is graded at scale in the same
session (tests/test_grading_at_scale.py), so these tests run in that step: pytest -m grading.
(The solution's full marks are checked on the solution notebook's own run, in test_chapter.py.)"""

import pytest
from nbgrader.api import Gradebook

from reference_impl.course.build import exercises
from tests.induction_heads.faulty_class import (ASSIGNMENT, FAULTS, HALF, INVALID, KILLER,
                                                RAISES)
from tests.nbgrader_class import check_output

pytestmark = pytest.mark.grading


@pytest.fixture(scope="module")
def graded_class(induction_heads_class):
    runs, _ = induction_heads_class
    return runs["serial"]


@pytest.fixture(scope="module")
def points(induction_heads):
    return {e.name: e.points for e in exercises(induction_heads)}


def test_release_is_the_learner_notebook(graded_class, induction_heads):
    released = (graded_class.course / "release" / ASSIGNMENT / "exercises.ipynb").read_text()
    assert released == induction_heads.learner_notebook.read_text()


def test_every_student_keeps_exactly_one_row(graded_class):
    handed_in = sorted([*FAULTS, "bob", "carol", *INVALID])
    assert len(handed_in) >= 12
    # One submission in the gradebook for everyone who handed one in, and a row of the export
    # for everyone, the absent student included.
    assert graded_class.submissions == {**{student: 1 for student in handed_in}, "ivan": 0}
    assert sorted(graded_class.outcomes) == handed_in
    assert sorted(graded_class.scores) == sorted([*handed_in, "ivan"])
    assert graded_class.export.count("\n") == len(graded_class.scores) + 1  # and a header
    assert graded_class.scores["ivan"] == 0


def test_the_untouched_release_and_half_a_notebook(graded_class, points):
    outcomes, scores = graded_class.outcomes, graded_class.scores
    assert outcomes["bob"].success and scores["bob"] == 0
    # The later cells that use the missing functions fail, and each exercise is still graded on
    # its own.
    assert outcomes["carol"].success
    assert scores["carol"] == sum(points[name] for name in HALF)
    assert "raised ValueError" in check_output(graded_class.course, ASSIGNMENT, "carol", RAISES)


@pytest.mark.parametrize("student", sorted(FAULTS))
def test_each_fault_costs_only_its_own_exercise_and_says_why(graded_class, points, student):
    assert graded_class.outcomes[student].success
    faults = FAULTS[student]
    assert graded_class.scores[student] == sum(points.values()) - sum(points[n] for n in faults)
    for exercise, message in faults.items():
        assert message in check_output(graded_class.course, ASSIGNMENT, student, exercise)


def test_a_kernel_killer_is_graded_from_a_copy(graded_class):
    # grace's submission is left as she handed it in, and the defused copy is gone.
    submitted = graded_class.course / "submitted" / "grace" / ASSIGNMENT / "exercises.ipynb"
    assert "os._exit(1)" in submitted.read_text()
    assert f"`{KILLER}` stopped the Python kernel" in check_output(graded_class.course, ASSIGNMENT,
                                                                   "grace", KILLER)
    assert not (graded_class.course / "defused").exists()


def test_a_file_that_is_not_a_notebook_scores_zero_and_says_where(graded_class):
    outcome = graded_class.outcomes["judy"]
    assert graded_class.scores["judy"] == 0 and not outcome.success
    reason = ("exercises.ipynb is not a valid notebook: it is not valid JSON (Expecting property "
              "name enclosed in double quotes: line 2 column 16")
    assert reason in outcome.reason
    with Gradebook(f"sqlite:///{graded_class.course / 'gradebook.db'}") as gradebook:
        submission = gradebook.find_submission(ASSIGNMENT, "judy")
        comments = [c.manual_comment for n in submission.notebooks for c in n.comments]
    assert comments and all(reason in c for c in comments)
