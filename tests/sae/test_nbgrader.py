"""The chapter 05 round trip through real nbgrader: generate_assignment, autograde the untouched
release and one notebook with a different fault in several exercises and right answers in the
others, export grades, and check every score and message. (The solution's full marks are checked
on the solution notebook's own run, in test_chapter.py.)"""

import pytest

from reference_impl.course.build import exercises
from tests.nbgrader_class import (answers_of, body_prefixed, check_output, grade_class,
                                  with_answers)

ASSIGNMENT = "05_sae"
# carol's notebook: one fault per exercise (None: a right answer), and what each check must say.
# Her decode is wrong and her sae_loss raises: the exercises that build on them are graded with
# the reference versions, so they keep their points.
CAROL = {
    "encode": "returned negative latent activations",
    "decode": "the decoder has no nonlinearity",
    "topk_encode": None,
    "sae_loss": "raised ValueError",
    "training_step": None,
    "sae_statistics": None,
    "mmcs": "is not defined: its answer cell did not run to the end",
    "resample_dead_latents": "is no longer the trainable parameter",
    "ce_loss_recovered": None,
    "precision_recall": "did not finish within",
    "precision_at_recall": None,
    "steer": "left 1 hook on the model",
}


def _carol(solution):
    answer = answers_of(solution)
    return with_answers(solution, {
        "encode": body_prefixed(answer["encode"], [
            "return (x - sae.b_dec) @ sae.W_enc + sae.b_enc"]),
        "decode": body_prefixed(answer["decode"], ["return torch.relu(f @ sae.W_dec + sae.b_dec)"]),
        "sae_loss": body_prefixed(answer["sae_loss"], ["raise ValueError('I gave up')"]),
        "mmcs": answer["mmcs"].replace("):", ")", 1),  # a syntax error
        "resample_dead_latents": body_prefixed(answer["resample_dead_latents"], [
            "sae.b_enc = torch.nn.Parameter(sae.b_enc.detach().clone())"]),
        "precision_recall": body_prefixed(answer["precision_recall"], ["while True:", "    pass"]),
        "steer": body_prefixed(answer["steer"], [
            "model.transformer.h[0].register_forward_hook(lambda module, args, output: None)"]),
    })


def _submissions(solution, release):
    return {"bob": release, "carol": _carol(solution)}


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory, sae, monkeypatch_module):
    # The grading checks give up on a hanging answer after 10 s, nbgrader after 60 s per cell.
    monkeypatch_module.setenv("MECHINTERP_CHECK_TIMEOUT", "10")
    return grade_class(tmp_path_factory.mktemp("course"), sae, _submissions, cell_timeout=60)


@pytest.fixture(scope="module")
def points(sae):
    return {e.name: e.points for e in exercises(sae)}


def test_release_is_the_learner_notebook(graded_class, sae):
    course, _, _ = graded_class
    released = (course / "release" / ASSIGNMENT / "exercises.ipynb").read_text()
    assert released == sae.learner_notebook.read_text()


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
