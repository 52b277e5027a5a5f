"""The chapter 02 round trip through real nbgrader: generate_assignment, autograde the untouched
release and one notebook with a different fault in most exercises, export grades, and check every
score and message. (The solution's full marks are checked on the solution notebook's own run, in
test_chapter.py: one notebook run fewer here.)"""

import pytest

from reference_impl.course.build import exercises
from tests.nbgrader_class import (answers_of, body_prefixed, check_output, core_submissions,
                                  grade_class, with_answers)

ASSIGNMENT = "02_probing"
# carol's notebook: one fault per exercise (None: a right answer), and what each check must say.
# Her NaN activations make the later experiment cells fail on validate_probe_data; every
# exercise is still graded on its own.
CAROL = {
    "residual_stack": "contains NaN",
    "split_by_person": "is not defined: its answer cell did not run to the end",
    "probe_by_layer": None,
    "majority_baseline": "raised ZeroDivisionError",
    "probe_properties": None,
    "control_task": "uses the chapter's solution module",
    "selectivity": None,
    "project_out": "changed its input",
    "nullspace_directions": None,
    "amnesic_recall": None,
    "integrated_gradients": "expected shape",
    "true_false_statements": None,
    "logit_lens": None,
    "mass_mean_probe": "should return a pair (directions, accuracies)",
    "steered_predictions": None,
}


def _carol(solution):
    answer = answers_of(solution)
    return with_answers(solution, {
        "residual_stack": body_prefixed(answer["residual_stack"], [
            "return torch.full((model.config.n_layer + 1, len(tokens), model.config.n_embd),",
            "                  float('nan'))"]),
        "split_by_person": answer["split_by_person"].replace("):", ")", 1),  # a syntax error
        "majority_baseline": body_prefixed(answer["majority_baseline"], ["1 / 0"]),
        "control_task": "from reference_impl.probing.solutions import control_task",
        "project_out": body_prefixed(answer["project_out"], ["x.zero_()"]),
        "integrated_gradients": body_prefixed(answer["integrated_gradients"], [
            "return torch.zeros(len(tokens), model.config.n_embd)"]),
        "mass_mean_probe": body_prefixed(answer["mass_mean_probe"], [
            "return torch.zeros(activations.shape[0])"]),
    })


def _submissions(solution, release):
    return {**core_submissions(solution, release), "carol": _carol(solution)}


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory, probing):
    return grade_class(tmp_path_factory.mktemp("course"), probing, _submissions, cell_timeout=60)


@pytest.fixture(scope="module")
def points(probing):
    return {e.name: e.points for e in exercises(probing)}


def test_release_is_the_learner_notebook(graded_class, probing):
    course, _, _ = graded_class
    released = (course / "release" / ASSIGNMENT / "exercises.ipynb").read_text()
    assert released == probing.learner_notebook.read_text()


def test_the_untouched_release_scores_zero(graded_class):
    _, outcomes, scores = graded_class
    assert all(o.success for o in outcomes.values())
    assert scores["bob"] == 0


def test_each_fault_costs_only_its_own_exercise_and_says_why(graded_class, points):
    assert list(CAROL) == list(points)
    course, _, scores = graded_class
    assert scores["carol"] == sum(points[name] for name, fault in CAROL.items() if fault is None)
    for name, fault in CAROL.items():
        if fault:
            assert fault in check_output(course, ASSIGNMENT, "carol", name), name
