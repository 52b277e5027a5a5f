"""What the chapter 06 checks do beyond the catalogue: an answer that edits the shared model in
place loses its exercise and the model is put back exactly, a plain loop passes where the reference
batches, the solution module is flagged, and the chapter's tools refuse bad input with one
sentence. Reference, stub and mistakes: tests/test_every_check.py."""

import contextlib
import inspect
import textwrap
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

from reference_impl.course.build import given_source
from reference_impl.course.grading import CheckFailed
from reference_impl.hooks import hook_names, patched, run_with_cache
from reference_impl.rome import checks
from reference_impl.rome import solutions as solution
from reference_impl.rome.data import target_id
from reference_impl.zoo.training import last_token_logits


def answer(name, source=None, **namespace):
    """The exercise ``name`` defined as in a notebook: from its reference source (or ``source``),
    in a namespace of its own with the notebook's given names. (Three blank lines first: a code
    object compiled at the solution file's own line numbers would equal the reference's.)"""
    globals_ = {"__name__": "__main__", "torch": torch, "F": F, "patched": patched,
                "run_with_cache": run_with_cache, "hook_names": hook_names,
                "contextlib": contextlib, "dataclass": dataclass,
                "last_token_logits": last_token_logits, **namespace}
    given = [n for n in checks.GIVEN if n != "last_token_logits"]
    exec("\n\n\n" + given_source(solution.__name__, given), globals_)
    exec("\n\n\n" + textwrap.dedent(source or inspect.getsource(getattr(solution, name))),
         globals_)
    return globals_[name]


def test_a_plain_loop_over_restorations_passes_check_trace():
    trace = answer("trace", '''
def trace(model, tokens, subject, target, noise, kind="resid", window=1, positions=None):
    positions = list(range(len(tokens))) if positions is None else list(positions)
    rows = model.config.n_layer - window + 1
    restored = torch.zeros(rows, len(positions))
    for first in range(rows):
        for column, position in enumerate(positions):
            restored[first, column] = restored_probabilities(
                model, tokens, subject, target, noise, kind, range(first, first + window),
                position).mean()
    with torch.no_grad():
        clean = model(tokens[None]).logits[0, -1].softmax(-1)[target].item()
    corrupted = corrupted_probabilities(model, tokens, subject, target, noise).mean().item()
    return Trace(kind, window, clean, corrupted, restored, positions)
''', restored_probabilities=answer("restored_probabilities"),
                   corrupted_probabilities=answer("corrupted_probabilities"))
    checks.check_trace(trace)


def test_an_answer_that_edits_the_shared_model_loses_only_its_exercise():
    model, _ = checks._shipped()
    before = {name: t.detach().clone() for name, t in model.state_dict().items()}
    editing = answer("finetune_layer", '''
def finetune_layer(model, prompts, layer, target, steps=25, lr=5e-4, max_change=5e-3):
    with torch.no_grad():
        c_proj(model, layer).weight.add_(0.01)
    return c_proj(model, layer).weight.detach().clone()
''')
    with pytest.raises(CheckFailed, match=r"changed its input \(argument 1\.transformer\.h\.0\.mlp"
                                          r"\.c_proj\.weight\) in place \(now put back\)"):
        checks.check_finetune_layer(editing)
    assert all(torch.equal(model.state_dict()[name], t) for name, t in before.items())
    checks.check_finetune_layer(answer("finetune_layer"))  # graded fairly afterwards


def test_an_answer_that_imports_the_solutions_earns_nothing():
    copied = answer("rank_one_update", '''
def rank_one_update(weight, bias, key, value, second_moment):
    from reference_impl.rome import solutions
    return solutions.rank_one_update(weight, bias, key, value, second_moment)
''')
    with pytest.raises(CheckFailed, match="uses the chapter's solution module"):
        checks.check_rank_one_update(copied)


def test_messages_say_what_to_fix():
    stale = answer("optimise_value", inspect.getsource(solution.optimise_value).replace(
        "    with torch.no_grad():\n        prob = log_probs(delta)[:n, target].exp().mean().item()\n",
        "    prob = after[:n, target].exp().mean().item()  # before the last step\n"))
    with pytest.raises(CheckFailed, match="the probability: expected .*measured after the last "
                                          "step"):
        checks.check_optimise_value(stale)


def test_a_target_that_is_not_one_token_is_refused():
    _, tokenizer = checks._shipped()
    assert target_id(tokenizer, "Tamsford") == tokenizer.convert_tokens_to_ids("Tamsford")
    for word in ("Tamsford baker", "Atlantis"):
        with pytest.raises(ValueError, match=f"the target '{word}' is not one token of the "
                                             f"model's vocabulary"):
            target_id(tokenizer, word)


def test_a_subject_outside_the_prompt_is_refused_and_the_model_is_left_as_it_was():
    model, tokenizer = checks._shipped()
    before = {name: t.detach().clone() for name, t in model.state_dict().items()}
    tokens = torch.tensor(tokenizer("Zoe Jensen was born in").input_ids)
    with pytest.raises(ValueError, match=r"the subject span \(4, 7\) is not inside the prompt"):
        solution.corrupted_probabilities(model, tokens, (4, 7), 5, torch.zeros(2, 3, 96))
    with pytest.raises(ValueError, match="layer 6 is not a layer of this model"):
        solution.c_proj(model, 6)
    assert all(torch.equal(model.state_dict()[name], t) for name, t in before.items())
    assert all(not module._forward_hooks for module in model.modules())
