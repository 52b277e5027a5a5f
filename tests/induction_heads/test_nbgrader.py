"""The chapter 03 round trip through real nbgrader, with a small class: generate_assignment,
autograde a full, an empty, a half-done and a crashing submission, export grades, check scores."""

import pytest

from reference_impl.course.build import exercises
from tests.nbgrader_class import check_output, core_submissions, grade_class

ASSIGNMENT = "03_induction_heads"
HALF = ["detector_scores", "copy_losses", "logit_lens", "ablation_patches", "ov_circuit",
        "positional_qk_circuit"]
RAISES = "direct_logit_attribution"


def _submissions(solution, release):
    return core_submissions(solution, release, HALF, RAISES)


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory, induction_heads):
    return grade_class(tmp_path_factory.mktemp("course"), induction_heads, _submissions,
                       cell_timeout=60)


@pytest.fixture(scope="module")
def points(induction_heads):
    return {e.name: e.points for e in exercises(induction_heads)}


def test_release_is_the_learner_notebook(graded_class, induction_heads):
    course, _, _ = graded_class
    released = (course / "release" / ASSIGNMENT / "exercises.ipynb").read_text()
    assert released == induction_heads.learner_notebook.read_text()


def test_scores(graded_class, points):
    course, outcomes, scores = graded_class
    total = sum(points.values())
    assert all(o.success for o in outcomes.values())
    assert scores["alice"] == total
    assert scores["bob"] == 0
    # Half the exercises done, the others left as stubs: the later cells that use the missing
    # functions fail, and each exercise is still graded on its own.
    assert scores["carol"] == sum(points[name] for name in HALF)
    assert scores["dave"] == total - points[RAISES]
    assert "raised ValueError" in check_output(course, ASSIGNMENT, "dave", RAISES)
