"""What the chapter 06 checks do beyond the catalogue: what their messages say, how they treat an
answer that edits the shared model or the notebook's model in place, leaves a hook on a model or
calls the solution module, that each exercise is graded alone and that correct answers written
differently (a plain loop where the reference batches) pass; and that the chapter's tools refuse
bad input with one sentence and leave the model as it was. Reference, stub and mistakes:
tests/test_every_check.py."""

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
from reference_impl.zoo import load_model
from reference_impl.zoo.training import last_token_logits
from tests.rome import mistakes

# What the notebook's given cells define: the names the checks hand over, and the given code
# they do not (rank_one_update's reference calls solve_second_moment).
NOTEBOOK_GIVEN = (*[n for n in checks.GIVEN if n != "last_token_logits"], "solve_second_moment",
                  "with_ridge", "edited", "frozen_call")


def check_of(name):
    return getattr(checks, f"check_{name}")


def answer(name, source=None, **namespace):
    """The exercise ``name`` defined as in a notebook: from its reference source (or ``source``),
    in a namespace of its own with the notebook's given names and ``namespace``'s (the notebook's
    earlier cells). (Three blank lines first: a code object compiled at the solution file's own
    line numbers would equal the reference's.)"""
    globals_ = {"__name__": "__main__", "torch": torch, "F": F, "patched": patched,
                "run_with_cache": run_with_cache, "hook_names": hook_names,
                "contextlib": contextlib, "dataclass": dataclass,
                "last_token_logits": last_token_logits}
    exec("\n\n\n" + given_source(solution.__name__, NOTEBOOK_GIVEN), globals_)
    globals_.update(namespace)
    exec("\n\n\n" + textwrap.dedent(source or inspect.getsource(getattr(solution, name))),
         globals_)
    return globals_[name]


def not_written_yet(*args, **kwargs):
    raise NotImplementedError()


def hooks_on(model):
    """How many hooks the modules of ``model`` hold."""
    return sum(len(getattr(module, table))
               for module in model.modules()
               for table in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
                             "_backward_pre_hooks"))


def snapshot(model):
    """Every parameter and buffer of ``model``: (the tensor objects, copies of their values)."""
    state = model.state_dict(keep_vars=True)
    return dict(state), {name: t.detach().clone() for name, t in state.items()}


def assert_left_as_it_was(model, before):
    objects, values = before
    now = model.state_dict(keep_vars=True)
    assert now.keys() == objects.keys()
    for name, tensor in now.items():
        assert tensor is objects[name], name
        assert torch.equal(tensor.detach(), values[name]), name
    assert hooks_on(model) == 0


def assert_one_sentence(error):
    text = str(error.value)
    assert text and "\n" not in text and ". " not in text.rstrip("."), text


@pytest.fixture(scope="module")
def shipped():
    return checks._shipped()


# Messages ---------------------------------------------------------------------------------------

def test_messages_say_what_to_fix():
    cases = [
        ("corrupted_probabilities", mistakes.corrupted_noise_after_block_0,
         r"with 3 noisy copies has wrong values .*: one probability per noisy copy: noise\[i\] "
         r"added to hook_embed at the subject's positions only \(start to stop - 1\)"),
        ("corrupted_probabilities", mistakes.corrupted_mean_over_copies,
         r"expected shape \(3,\), got \(\): one probability per noisy copy"),
        ("restored_probabilities", mistakes.restored_from_the_corrupted_run,
         r"restoring hook_resid_post of layers \[4\] at position 7 has wrong values .*: restore "
         r"the clean run's activation at that position only"),
        ("restored_probabilities", mistakes.restored_first_layer_only,
         r"restoring hook_mlp_out of layers \[3, 4\] .* in each of the given layers"),
        ("trace", mistakes.trace_positions_without_the_last,
         r"positions should be \[0, 1, 2, 3, 4, 5, 6, 7, 8, 9\] \(every position when none are "
         r"given\), got \[0, 1, 2, 3, 4, 5, 6, 7, 8\]\.$"),
        ("trace", mistakes.trace_a_row_per_layer,
         r"\(kind 'mlp', window 2\): restored: expected shape \(1, 3\), got \(2, 3\): one row per "
         r"window start 0 \.\. n_layer - window"),
        ("trace", mistakes.trace_returns_a_dict, r"should return a Trace, got dict\.$"),
        ("average_indirect_effect", mistakes.average_of_recovered_shares,
         r"has wrong values .*within a prompt the mean indirect effect \(restored - corrupted\) "
         r"over the class's positions, then the mean over the prompts that have the class"),
        ("average_indirect_effect", mistakes.average_with_empty_classes,
         r"contains NaN or infinite values: look for a division by zero"),
        ("subject_key", mistakes.key_before_the_gelu,
         r"blocks\.0\.mlp\.hook_post at each prompt's subject_last_position \(the input of "
         r"c_proj, after the GELU\)"),
        ("key_second_moment", mistakes.moment_with_padding,
         r"over the real tokens only \(mask 1\), uncentred, in float64"),
        ("key_second_moment", mistakes.moment_in_float32,
         r"expected dtype torch\.float64, got torch\.float32\.$"),
        ("optimise_value", mistakes.value_kl_reversed,
         r"v\* has wrong values .*kl_factor · KL\(p_δ ‖ p_0\)"),
        ("optimise_value", mistakes.value_stale_probability,
         r"the probability: expected .*: the mean probability of the target over the prompts "
         r"with the final δ, measured after the last step"),
        ("rank_one_update", mistakes.update_transposed,
         r"expected shape \(10, 7\), got \(7, 10\): .* in the Conv1D layout \(d_mlp, d_model\)"),
        ("rank_one_update", mistakes.update_in_place,
         r"`rank_one_update` changed its input \(argument 1\) in place \(now put back\): work on "
         r"a copy"),
        ("edit_scores", mistakes.scores_as_tensors,
         r"\['efficacy'\] is a tensor: return Python floats \(\.item\(\)\)\.$"),
        ("edit_scores", mistakes.scores_neighbourhood_backwards,
         r"\['neighbourhood'\]: expected 1, got 0: the share of request\.neighbours where the "
         r"true object \(the request's, which they share\) still beats the new one"),
        ("edit_scores", mistakes.scores_against_the_requests_object,
         r"\['same_person'\]: .* whose top-1 next token is their own object"),
        ("finetune_layer", mistakes.finetune_without_clamp,
         r"then after every step each entry clamped to within max_change of the original weight"),
        ("finetune_layer", mistakes.finetune_not_detached,
         r"still requires a gradient: return weight\.detach\(\)\.$"),
    ]
    for name, mistake, pattern in cases:
        with pytest.raises(CheckFailed, match=pattern):
            check_of(name)(mistake)


def test_a_wrong_return_type_is_named():
    pair = answer("optimise_value", source=(
        "def optimise_value(model, prompts, kl_prompts, layer, target, steps=20, lr=0.5,\n"
        "                   kl_factor=0.0625, weight_decay=0.5):\n"
        "    return torch.zeros(model.config.n_embd)\n"))
    with pytest.raises(CheckFailed, match=r"should return a pair \(v\*, probability\), got "
                                          r"Tensor\.$"):
        checks.check_optimise_value(pair)
    listed = answer("edit_scores", source=(
        "def edit_scores(model, tokenizer, request):\n"
        "    return {'efficacy': 1.0, 'paraphrase': 1.0}\n"))
    with pytest.raises(CheckFailed, match=r"should return a dict with the keys \('efficacy', "
                                          r"'paraphrase', 'neighbourhood', 'same_person', "
                                          r"'same_name'\), got \['efficacy', 'paraphrase'\]\.$"):
        checks.check_edit_scores(listed)


# Models changed in place, hooks left behind ---------------------------------------------------

def test_an_answer_that_edits_the_shared_model_loses_only_its_exercise(shipped):
    model, _ = shipped
    before = snapshot(model)
    editing = answer("finetune_layer", '''
def finetune_layer(model, prompts, layer, target, steps=25, lr=5e-4, max_change=5e-3):
    with torch.no_grad():
        c_proj(model, layer).weight.add_(0.01)
    return c_proj(model, layer).weight.detach().clone()
''')
    with pytest.raises(CheckFailed, match=r"`finetune_layer` changed its input \(argument "
                                          r"1\.transformer\.h\.0\.mlp\.c_proj\.weight\) in place "
                                          r"\(now put back\): work on a copy"):
        checks.check_finetune_layer(editing)
    assert_left_as_it_was(model, before)
    checks.check_finetune_layer(answer("finetune_layer"))  # graded fairly afterwards


def test_an_answer_that_trains_the_models_own_weight_is_put_back(shipped):
    model, _ = shipped
    before = snapshot(model)
    with pytest.raises(CheckFailed, match=r"changed its input \(argument 1\.transformer\.h\.0\.mlp"
                                          r"\.c_proj\.weight\) in place"):
        checks.check_finetune_layer(mistakes.finetune_the_models_own_weight)
    assert_left_as_it_was(model, before)


def test_an_edit_undone_by_hand_inside_edit_scores_is_put_back(shipped):
    """check_edit_scores runs the answer under the ROME edit: the answer's change is undone to the
    edited weight, and the edit itself is then undone to the shipped weight."""
    model, _ = shipped
    before = snapshot(model)
    undoing = answer("edit_scores", source=(
        "def edit_scores(model, tokenizer, request):\n"
        "    c_proj(model, 0).weight.data.zero_()\n"
        "    return {name: 0.0 for name in SCORES}\n"))
    with pytest.raises(CheckFailed, match=r"`edit_scores` changed its input \(argument "
                                          r"1\.transformer\.h\.0\.mlp\.c_proj\.weight\) in place"):
        checks.check_edit_scores(undoing, seeds=(0,))
    assert_left_as_it_was(model, before)


def test_a_replaced_parameter_is_put_back(shipped):
    model, _ = shipped
    before = snapshot(model)
    replacing = answer("finetune_layer", source=(
        "def finetune_layer(model, prompts, layer, target, steps=25, lr=5e-4, max_change=5e-3):\n"
        "    projection = c_proj(model, layer)\n"
        "    projection.weight = torch.nn.Parameter(projection.weight.detach() + 1.0)\n"
        "    return projection.weight.detach().clone()\n"))
    with pytest.raises(CheckFailed, match=r"changed its input \(argument 1\.transformer\.h\.0\.mlp"
                                          r"\.c_proj\.weight\) in place \(now put back\)"):
        checks.check_finetune_layer(replacing)
    assert_left_as_it_was(model, before)


def test_an_answer_that_changes_the_notebooks_model_is_put_back(shipped):
    notebook_model, _ = load_model("facts-6l")
    before, shipped_before = snapshot(notebook_model), snapshot(shipped[0])
    changing = answer("subject_key", source=(
        "def subject_key(model_, prompts, layer):\n"
        "    with torch.no_grad():\n"
        "        model.transformer.h[layer].mlp.c_fc.bias.add_(1.0)\n"
        "    return torch.zeros(model_.config.n_inner)\n"), model=notebook_model)
    with pytest.raises(CheckFailed, match=r"`subject_key` changed your notebook's "
                                          r"`model\.transformer\.h\.0\.mlp\.c_fc\.bias` in place "
                                          r"\(now put back\)"):
        checks.check_subject_key(changing)
    assert_left_as_it_was(notebook_model, before)
    assert_left_as_it_was(shipped[0], shipped_before)


def test_a_hook_left_on_the_model_is_removed_and_reported(shipped):
    model, _ = shipped
    before = snapshot(model)
    with pytest.raises(CheckFailed, match=r"`corrupted_probabilities` left 1 hook on the model "
                                          r"\(now removed\): register hooks through `patched` or "
                                          r"`run_with_cache`"):
        checks.check_corrupted_probabilities(mistakes.corrupted_hook_left_on_wte)
    assert_left_as_it_was(model, before)
    checks.check_corrupted_probabilities(answer("corrupted_probabilities"))


def test_a_hook_is_removed_even_when_the_answer_raises(shipped):
    model, tokenizer = shipped
    tokens = torch.tensor(tokenizer("Zoe Jensen was born in").input_ids)
    with torch.no_grad():
        logits = model(tokens[None]).logits
    raising = answer("subject_key", source=(
        "def subject_key(model, prompts, layer):\n"
        "    c_proj(model, layer).register_forward_hook(lambda module, args, out: out * 0)\n"
        "    return model(prompts[0][0][None]).logits[0, 10 ** 6]\n"))
    with pytest.raises(CheckFailed, match=r"`subject_key` raised IndexError at .*: index 1000000 "
                                          r"is out of bounds"):
        checks.check_subject_key(raising)
    assert hooks_on(model) == 0
    with torch.no_grad():
        assert torch.equal(model(tokens[None]).logits, logits)


# The solution module --------------------------------------------------------------------------

def test_calling_the_solution_module_earns_nothing():
    with pytest.raises(CheckFailed, match=r"`corrupted_probabilities` uses the chapter's solution "
                                          r"module \(it is `reference_impl\.rome\.solutions\."
                                          r"corrupted_probabilities`\), so it earns no points"):
        checks.check_corrupted_probabilities(solution.corrupted_probabilities)
    copied = answer("rank_one_update", '''
def rank_one_update(weight, bias, key, value, second_moment):
    from reference_impl.rome import solutions
    return solutions.rank_one_update(weight, bias, key, value, second_moment)
''')
    with pytest.raises(CheckFailed, match=r"uses the chapter's solution module \(it imports "
                                          r"`reference_impl\.rome\.solutions`\)"):
        checks.check_rank_one_update(copied)
    # a route only the call watch sees: a module found by name at run time
    hidden = answer("rank_one_update", '''
def rank_one_update(weight, bias, key, value, second_moment):
    import importlib
    module = importlib.import_module(".".join(["reference_impl", "rome", "solutions"]))
    u = module.solve_second_moment(second_moment, key)
    u = u / (u @ key.double())
    residual = value.double() - (key.double() @ weight.double() + bias.double())
    return (weight.double() + torch.outer(u, residual)).to(weight.dtype)
''')
    with pytest.raises(CheckFailed, match=r"uses the chapter's solution module \(it calls "
                                          r"`reference_impl\.rome\.solutions\.solve_second_moment`"
                                          r"\)"):
        checks.check_rank_one_update(hidden)


# Graded alone; correct answers written differently ---------------------------------------------

def test_each_exercise_is_graded_alone():
    """Answers are graded with the reference versions of the earlier exercises and of the given
    functions, even when the learner's own are unfinished or broken."""
    broken = dict(corrupted_probabilities=not_written_yet, restored_probabilities=not_written_yet,
                  site_names=not_written_yet, add_subject_noise=not_written_yet,
                  key_name=lambda layer: f"blocks.{layer}.mlp.hook_pre", c_proj=not_written_yet,
                  added_at=not_written_yet, padded=not_written_yet,
                  logits_with_weight=not_written_yet, last_token_logits=not_written_yet)
    for name in ("restored_probabilities", "subject_key", "key_second_moment", "optimise_value",
                 "edit_scores", "finetune_layer"):
        check_of(name)(answer(name, **broken), seeds=(1,))


def test_a_plain_loop_over_restorations_passes_check_trace():
    """The reference batches every position of a row into one pass from the row's first layer;
    a loop over the reference restored_probabilities gets the same numbers."""
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
''', restored_probabilities=not_written_yet, corrupted_probabilities=not_written_yet)
    checks.check_trace(trace)


def test_correct_answers_written_differently_pass():
    # the noise padded to the whole prompt instead of spliced in
    corrupted = answer("corrupted_probabilities", source=(
        "def corrupted_probabilities(model, tokens, subject, target, noise):\n"
        "    start, stop = subject\n"
        "    full = F.pad(noise, (0, 0, start, len(tokens) - stop))\n"
        "    copies = tokens.repeat(len(noise), 1)\n"
        "    with patched(model, {'hook_embed': lambda embed, _: embed + full}):\n"
        "        with torch.no_grad():\n"
        "            probs = model(copies).logits[:, -1].softmax(dim=-1)\n"
        "    return probs[:, target]\n"))
    checks.check_corrupted_probabilities(corrupted)
    moment = answer("key_second_moment", source=(
        "def key_second_moment(model, tokens, mask, layer):\n"
        "    _, cache = run_with_cache(model, tokens, names=[key_name(layer)])\n"
        "    keys = cache[key_name(layer)].double() * mask[..., None].double()\n"
        "    return torch.einsum('bpi,bpj->ij', keys, keys) / mask.sum().double()\n"))
    checks.check_key_second_moment(moment)
    update = answer("rank_one_update", source=(
        "def rank_one_update(weight, bias, key, value, second_moment):\n"
        "    k = key.double()\n"
        "    c_inv_k = torch.linalg.inv(second_moment.double()) @ k\n"
        "    r = value.double() - k @ weight.double() - bias.double()\n"
        "    return (weight.double() + c_inv_k[:, None] * r[None] / c_inv_k.dot(k)).float()\n"))
    checks.check_rank_one_update(update)
    clamped = answer("finetune_layer", source=(
        "def finetune_layer(model, prompts, layer, target, steps=25, lr=5e-4, max_change=5e-3):\n"
        "    original = c_proj(model, layer).weight.detach().clone()\n"
        "    weight = torch.nn.Parameter(original.clone())\n"
        "    optimizer = torch.optim.Adam([weight], lr=lr)\n"
        "    for _ in range(steps):\n"
        "        logits = [logits_with_weight(model, layer, weight, t[None])[:, -1]\n"
        "                  for t in prompts]\n"
        "        losses = [F.cross_entropy(l, torch.tensor([target])) for l in logits]\n"
        "        optimizer.zero_grad()\n"
        "        sum(losses).div(len(losses)).backward()\n"
        "        optimizer.step()\n"
        "        with torch.no_grad():\n"
        "            weight.data = weight.clamp(original - max_change, original + max_change)\n"
        "    return weight.detach()\n"))
    checks.check_finetune_layer(clamped)


def test_noise_on_the_position_embeddings_is_the_same_corruption():
    """Why the catalogue has no 'noise on hook_pos_embed' mistake: the model adds the token and
    the position embeddings before anything reads them."""
    on_positions = answer("corrupted_probabilities", source=(
        "def corrupted_probabilities(model, tokens, subject, target, noise):\n"
        "    copies = tokens[None].expand(len(noise), -1)\n"
        "    patches = {'hook_pos_embed': add_subject_noise(noise, subject)}\n"
        "    logits, _ = run_with_cache(model, copies, names=[], patches=patches)\n"
        "    return logits[:, -1].softmax(dim=-1)[:, target]\n"))
    checks.check_corrupted_probabilities(on_positions)


# The tools refuse bad input -------------------------------------------------------------------

def test_a_subject_outside_the_prompt_is_refused_and_the_model_is_left_as_it_was(shipped):
    model, tokenizer = shipped
    before = snapshot(model)
    tokens = torch.tensor(tokenizer("Zoe Jensen was born in").input_ids)  # 6 tokens, BOS first
    for span in ((4, 7), (0, 2), (3, 3), (2, 6), (-1, 2)):
        with pytest.raises(ValueError, match=rf"the subject span \({span[0]}, {span[1]}\) is not "
                                             rf"inside the prompt: it must lie between position 1 "
                                             rf"\(after BOS\) and 5 \(before the last token\), "
                                             rf"with start < stop$") as error:
            solution.check_subject(tokens, span)
        assert_one_sentence(error)
    noise = torch.zeros(2, 3, model.config.n_embd)
    with pytest.raises(ValueError, match=r"the subject span \(4, 7\) is not inside the prompt"):
        solution.corrupted_probabilities(model, tokens, (4, 7), 5, noise)
    with pytest.raises(ValueError, match=r"the subject span \(0, 3\) is not inside the prompt"):
        solution.trace(model, tokens, (0, 3), 5, noise)
    assert solution.check_subject(tokens, torch.tensor([1, 3])) == (1, 3)
    assert_left_as_it_was(model, before)


def test_a_layer_outside_the_model_is_refused(shipped):
    model, _ = shipped
    before = snapshot(model)
    for layer in (6, -1, 1.0, "0"):
        with pytest.raises(ValueError, match=f"layer {layer!r} is not a layer of this model, "
                                             f"which has layers 0 to 5$") as error:
            solution.check_layer(model, layer)
        assert_one_sentence(error)
    with pytest.raises(ValueError, match="layer 6 is not a layer of this model"):
        solution.c_proj(model, 6)
    with pytest.raises(ValueError, match="layer 6 is not a layer of this model"):
        with solution.edited(model, 6, torch.zeros(384, 96)):
            pass
    assert_left_as_it_was(model, before)


def test_a_kind_or_window_the_model_lacks_is_refused(shipped):
    model, tokenizer = shipped
    before = snapshot(model)
    with pytest.raises(ValueError, match="kind must be one of resid, mlp, attn, got 'mlp_out'$"):
        solution.site_names(model, "mlp_out")
    attention_only = checks.random_test_model(0, 2, attention_only=True)
    with pytest.raises(ValueError, match=r"this model has no blocks\.0\.hook_mlp_out \(an "
                                         r"attention-only model has no MLPs\)$"):
        solution.site_names(attention_only, "mlp")
    tokens = torch.tensor(tokenizer("Zoe Jensen was born in").input_ids)
    noise = torch.zeros(2, 2, model.config.n_embd)
    for window in (0, 7):
        with pytest.raises(ValueError, match=f"window must be between 1 and 6, got {window}$"):
            solution.trace(model, tokens, (1, 3), 5, noise, "mlp", window)
    assert_left_as_it_was(model, before)


def test_a_target_that_is_not_one_token_is_refused(shipped):
    model, tokenizer = shipped
    before = snapshot(model)
    assert target_id(tokenizer, "Tamsford") == tokenizer.convert_tokens_to_ids("Tamsford")
    cases = {"Tamsford baker": r"\(it encodes as 2 tokens \[\d+, \d+\]\)",
             "Atlantis": r"\(it encodes as 1 tokens \[1\]\)"}  # 1: the unknown token
    for word, encoding in cases.items():
        with pytest.raises(ValueError, match=f"the target '{word}' is not one token of the "
                                             f"model's vocabulary {encoding}: an edit's new object "
                                             f"must be a single known word$") as error:
            target_id(tokenizer, word)
        assert_one_sentence(error)
    assert_left_as_it_was(model, before)


def test_a_singular_second_moment_is_refused():
    g = torch.Generator().manual_seed(0)
    weight, bias = torch.randn(8, 5, generator=g), torch.randn(5, generator=g)
    key, value = torch.randn(8, generator=g).abs(), torch.randn(5, generator=g)
    keys = torch.randn(40, 8, generator=g).abs()
    keys[:, 3] = 0  # a neuron that never fires on the text
    dead_neuron = keys.T @ keys / len(keys)
    inputs = (weight, bias, key, value)
    copies = [t.clone() for t in inputs]
    message = (r"^the key second moment C is singular \(some keys never vary on the text it was "
               r"measured on\): measure it on more text, or add a ridge with with_ridge\(C\)$")
    for moment in (torch.zeros(8, 8, dtype=torch.float64), dead_neuron):
        with pytest.raises(ValueError, match=message) as error:
            solution.solve_second_moment(moment, key)
        assert_one_sentence(error)
        with pytest.raises(ValueError, match=message):
            solution.rank_one_update(weight, bias, key, value, moment)
    assert all(torch.equal(t, c) for t, c in zip(inputs, copies))
    # with a ridge the same C is invertible, and the edited memory maps the key to the value
    new = solution.rank_one_update(weight, bias, key, value, solution.with_ridge(dead_neuron))
    assert torch.allclose(key @ new + bias, value, atol=1e-4)


def test_an_edit_with_nan_weights_or_the_wrong_shape_is_refused(shipped):
    model, _ = shipped
    before = snapshot(model)
    weight = solution.c_proj(model, 0).weight.detach().clone()
    for bad in (float("nan"), float("inf")):
        broken = weight.clone()
        broken[3, 4] = bad
        with pytest.raises(ValueError, match="^the edit of layer 0 has NaN or infinite weights; "
                                             "the model was left unchanged$") as error:
            with solution.edited(model, 0, broken):
                pytest.fail("the block ran with a broken weight")
        assert_one_sentence(error)
        assert_left_as_it_was(model, before)
    with pytest.raises(ValueError, match=r"^the edited weight has shape \(96, 384\), but layer 0's "
                                         r"c_proj\.weight has shape \(384, 96\)$"):
        with solution.edited(model, 0, weight.T):
            pass
    assert_left_as_it_was(model, before)


def test_an_edit_is_undone_even_when_its_block_raises(shipped):
    model, _ = shipped
    before = snapshot(model)
    weight = solution.c_proj(model, 2).weight.detach() + 0.5
    with pytest.raises(RuntimeError, match="inside the edit"):
        with solution.edited(model, 2, weight):
            assert torch.equal(solution.c_proj(model, 2).weight, weight)
            raise RuntimeError("inside the edit")
    assert_left_as_it_was(model, before)
