"""The chapter 06 round trip through real nbgrader: generate_assignment, autograde the untouched
release and one notebook with a different fault in several exercises and right answers in the
others, export grades, and check every score and message. (The solution's full marks are checked
on the solution notebook's own run, in test_chapter.py.)"""

import pytest

from reference_impl.course.build import exercises
from tests.nbgrader_class import (answers_of, body_prefixed, check_output, grade_class,
                                  with_answers)

ASSIGNMENT = "06_rome"
# carol's notebook: one fault per exercise (None: a right answer), and what each check must say.
# Her trace raises and her subject_key does not compile: the exercises that build on them are
# graded with the reference versions, so they keep their points. Her finetune_layer trains the
# shared model's own weight: it is put back, and she loses that exercise only.
CAROL = {
    "corrupted_probabilities": "corrupted_probabilities on facts-6l",
    "restored_probabilities": None,
    "trace": "raised RuntimeError",
    "average_indirect_effect": None,
    "subject_key": "is not defined: its answer cell did not run to the end",
    "key_second_moment": "key_second_moment on a random",
    "optimise_value": None,
    "rank_one_update": "left 1 hook on the model",
    "edit_scores": "is a tensor: return Python floats",
    "finetune_layer": "in place (now put back)",
}


def _carol(solution):
    answer = answers_of(solution)
    return with_answers(solution, {
        "corrupted_probabilities": body_prefixed(answer["corrupted_probabilities"], [
            "noisy = lambda embed, _: embed + noise.mean(dim=1, keepdim=True)  # every position",
            "logits, _ = run_with_cache(model, tokens[None].expand(len(noise), -1), names=[],",
            "                           patches={'hook_embed': noisy})",
            "return logits[:, -1].softmax(dim=-1)[:, target]"]),
        "trace": body_prefixed(answer["trace"], ["raise RuntimeError('I gave up')"]),
        "subject_key": answer["subject_key"].replace("):", ")", 1),  # a syntax error
        "key_second_moment": body_prefixed(answer["key_second_moment"], [
            "_, cache = run_with_cache(model, tokens, names=[key_name(layer)])",
            "keys = cache[key_name(layer)].flatten(0, 1).double()  # the padding too",
            "return keys.T @ keys / len(keys)"]),
        "rank_one_update": body_prefixed(answer["rank_one_update"], [
            "model.transformer.h[0].register_forward_hook(lambda module, args, output: None)"]),
        "edit_scores": body_prefixed(answer["edit_scores"], [
            "new, true = tokenizer.convert_tokens_to_ids([request.new_object, "
            "request.prompt.object])",
            "logits = last_token_logits(model, tokenizer, [request.prompt.prompt])",
            "return {name: (logits[:, new] > logits[:, true]).float().mean() for name in SCORES}"]),
        "finetune_layer": body_prefixed(answer["finetune_layer"], [
            "weight = c_proj(model, layer).weight  # the model's own parameter",
            "optimizer = torch.optim.Adam([weight], lr=lr)",
            "for _ in range(steps):",
            "    nll = -torch.stack([model(t[None]).logits[0, -1].log_softmax(-1)[target]",
            "                        for t in prompts]).mean()",
            "    optimizer.zero_grad()",
            "    nll.backward()",
            "    optimizer.step()",
            "return weight.detach().clone()"]),
    })


def _submissions(solution, release):
    return {"bob": release, "carol": _carol(solution)}


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory, rome):
    return grade_class(tmp_path_factory.mktemp("course"), rome, _submissions, cell_timeout=60)


@pytest.fixture(scope="module")
def points(rome):
    return {e.name: e.points for e in exercises(rome)}


def test_release_is_the_learner_notebook(graded_class, rome):
    course, _, _ = graded_class
    released = (course / "release" / ASSIGNMENT / "exercises.ipynb").read_text()
    assert released == rome.learner_notebook.read_text()


def test_the_untouched_release_scores_zero(graded_class):
    _, outcomes, scores = graded_class
    assert all(o.success for o in outcomes.values())
    assert scores["bob"] == 0


def test_each_fault_costs_only_its_own_exercise(graded_class, points):
    course, _, scores = graded_class
    right = [name for name, fault in CAROL.items() if fault is None]
    assert len(right) >= 3  # nbgrader gives the right answers their points
    assert scores["carol"] == sum(points[name] for name in right)
    for name, fault in CAROL.items():
        if fault is not None:
            assert fault in check_output(course, ASSIGNMENT, "carol", name), name
