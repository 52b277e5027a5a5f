"""The chapter 03 round trip through real nbgrader, with a small class: generate_assignment,
autograde an empty, a half-done, a model-wrecking and a kernel-killing submission, export grades,
check scores. (The solution's full marks are checked on the solution notebook's own run, in
test_chapter.py: one notebook run fewer here.)"""

import pytest

from reference_impl.course.build import exercises
from tests.nbgrader_class import (answers_of, body_prefixed, check_output, core_submissions,
                                  grade_class, with_answers)

ASSIGNMENT = "03_induction_heads"
HALF = ["detector_scores", "copy_losses", "logit_lens", "ablation_patches", "ov_circuit",
        "positional_qk_circuit"]
RAISES = "direct_logit_attribution"
# mallory's head_weights fills the model it is given with NaN. The notebook's experiments call it
# on the notebook's own model, and a later cell's torch.linalg.eigvals then crashes the kernel.
WRECKS = "head_weights"
KILLER = "detector_scores"  # grace's answer kills the kernel when it is checked


def _submissions(solution, release):
    answer = answers_of(solution)
    return {
        **core_submissions(solution, release),
        # Half the exercises done, one of the others raising, the rest left as stubs.
        "carol": with_answers(release, {**{name: answer[name] for name in HALF},
                                        RAISES: body_prefixed(answer[RAISES],
                                                              ['raise ValueError("I gave up")'])}),
        "mallory": with_answers(solution, {WRECKS: body_prefixed(answer[WRECKS], [
            "with torch.no_grad():",
            "    for parameter in model.parameters():",
            "        parameter.fill_(float('nan'))"])}),
        "grace": with_answers(solution, {KILLER: body_prefixed(answer[KILLER],
                                                               ["import os", "os._exit(1)"])}),
    }


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
    assert all(o.success for o in outcomes.values())
    assert scores["bob"] == 0
    # The later cells that use the missing functions fail, and each exercise is still graded on
    # its own.
    assert scores["carol"] == sum(points[name] for name in HALF)
    assert "raised ValueError" in check_output(course, ASSIGNMENT, "carol", RAISES)


def test_a_model_wrecking_answer_loses_only_its_own_points(graded_class, points):
    course, _, scores = graded_class
    assert scores["mallory"] == sum(points.values()) - points[WRECKS]
    assert "in place (now put back)" in check_output(course, ASSIGNMENT, "mallory", WRECKS)


def test_a_cell_that_kills_the_kernel_costs_only_its_exercise(graded_class, points):
    course, outcomes, scores = graded_class
    assert outcomes["grace"].success
    assert scores["grace"] == sum(points.values()) - points[KILLER]
    assert f"`{KILLER}` stopped the Python kernel" in check_output(course, ASSIGNMENT, "grace",
                                                                   KILLER)
    # Her submission is left as she handed it in.
    submitted = course / "submitted" / "grace" / ASSIGNMENT / "exercises.ipynb"
    assert "os._exit(1)" in submitted.read_text()
