"""The chapter 04 round trip through real nbgrader: generate_assignment, autograde the untouched
release and one notebook with a different fault in several exercises and right answers in the
others, export grades, and check every score and message. (The solution's full marks are checked
on the solution notebook's own run, in test_chapter.py: one notebook run fewer here.)"""

import pytest

from reference_impl.course.build import exercises
from tests.nbgrader_class import (answers_of, body_prefixed, check_output, grade_class,
                                  with_answers)

ASSIGNMENT = "04_ioi_circuit"
# carol's notebook: one fault per exercise (None: a right answer), and what each check must say.
# Her residual_patching leaves a hook on the model before it raises: the hook is taken off, and
# the exercises after it are graded as if it had never been there.
CAROL = {
    "logit_diff": "cut the result off the computation graph",
    "ioi_metrics": "is a tensor: return Python floats",
    "accumulated_logit_diff": None,
    "logit_diff_attribution": None,
    "ioi_attention": None,
    "residual_patching": "raised RuntimeError",
    "head_patching": None,
    "path_patching": "is not defined: its answer cell did not run to the end",
    "attribution_patching": "left gradients in the model's parameters",
    "mean_ablation_patches": "returned shape",
}


def _carol(solution):
    answer = answers_of(solution)
    return with_answers(solution, {
        "logit_diff": body_prefixed(answer["logit_diff"], [
            "rows = torch.arange(len(io))",
            "return (final_logits[rows, io] - final_logits[rows, s]).detach()"]),
        "ioi_metrics": body_prefixed(answer["ioi_metrics"], [
            "rows = torch.arange(len(io))",
            "log_probs = final_logits.log_softmax(dim=-1)",
            "return {'logit_diff': logit_diff(final_logits, io, s).mean(),",
            "        'accuracy': (final_logits.argmax(-1) == io).float().mean(),",
            "        'log_p_io': log_probs[rows, io].mean(), 'log_p_s': log_probs[rows, s].mean()}"]),
        "residual_patching": body_prefixed(answer["residual_patching"], [
            "model.transformer.h[0].register_forward_hook(lambda module, args, output: None)",
            "raise RuntimeError('I gave up')"]),
        "path_patching": answer["path_patching"].replace("):", ")", 1),  # a syntax error
        "attribution_patching": body_prefixed(answer["attribution_patching"], [
            "metric(model(corrupted_tokens).logits[:, -1]).backward()"]),
        "mean_ablation_patches": answer["mean_ablation_patches"].replace(
            "            return z\n", "            return z[:, :-1]\n"),
    })


def _submissions(solution, release):
    return {"bob": release, "carol": _carol(solution)}


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory, ioi_circuit):
    return grade_class(tmp_path_factory.mktemp("course"), ioi_circuit, _submissions,
                       cell_timeout=60)


@pytest.fixture(scope="module")
def points(ioi_circuit):
    return {e.name: e.points for e in exercises(ioi_circuit)}


def test_release_is_the_learner_notebook(graded_class, ioi_circuit):
    course, _, _ = graded_class
    released = (course / "release" / ASSIGNMENT / "exercises.ipynb").read_text()
    assert released == ioi_circuit.learner_notebook.read_text()


def test_the_untouched_release_scores_zero(graded_class):
    _, outcomes, scores = graded_class
    assert all(o.success for o in outcomes.values())
    assert scores["bob"] == 0


def test_each_fault_costs_only_its_own_exercise(graded_class, points):
    course, _, scores = graded_class
    right = [name for name, fault in CAROL.items() if fault is None]
    assert len(right) >= 4  # nbgrader gives the right answers their points
    assert scores["carol"] == sum(points[name] for name in right)
    for name, fault in CAROL.items():
        if fault is not None:
            assert fault in check_output(course, ASSIGNMENT, "carol", name), name
