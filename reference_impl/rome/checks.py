"""Grading checks for chapter 06, locating and editing facts.

Each ``check_<exercise>(fn, seeds=...)`` grades one exercise on its own: it runs the learner's
function on inputs drawn from each seed and compares the result with the reference solution. The
inputs are fact prompts of the shipped ``facts-6l`` (chosen by the seed) and random prompts on
small random GPT-2 models whose sizes change with the seed, so that an answer that hard-codes the
shipped model's sizes or positions fails. Training code (the value of a ROME edit, fine-tuning)
is checked on a few deterministic steps.
"""

import functools

import torch

from reference_impl.course.grading import (CheckFailed, Exercise, expect_number, expect_tensor,
                                         passed)
from reference_impl.rome import solutions as ref
from reference_impl.rome.data import edit_prompts, edit_requests, prompt_tokens, target_id
from reference_impl.zoo import load_model, random_test_model

SOLUTION_MODULE = ref.__name__
VISIBLE_SEEDS = (0, 1, 2)
# The functions the notebook hands over, which every answer may call.
GIVEN = ("SITES", "check_subject", "check_layer", "site_names", "noise_scale", "subject_noise",
         "add_subject_noise", "Trace", "final_logits_from", "POSITION_CLASSES", "key_name",
         "added_at", "padded", "c_proj", "logits_with_weight", "last_token_logits", "SCORES")


def _exercise(fn, name, dependencies=()):
    return Exercise(fn, name, SOLUTION_MODULE,
                    {d: getattr(ref, d) for d in (*GIVEN, *dependencies)})


def _generator(seed):
    return torch.Generator().manual_seed(seed)


@functools.lru_cache(maxsize=1)
def _shipped():
    return load_model("facts-6l")


@functools.lru_cache(maxsize=1)
def _requests():
    return edit_requests(*_shipped(), 40)


@functools.lru_cache(maxsize=8)
def _random_model(seed):
    return random_test_model(seed, 2 + seed % 3, attention_only=False)


def _describe(model):
    c = model.config
    return f"a random {c.n_layer}-layer model with d_model {c.n_embd} and d_mlp {4 * c.n_embd}"


@functools.lru_cache(maxsize=16)
def _cases(seed):
    """(model, tokens, subject, target, what): a fact prompt of facts-6l and a random prompt of a
    random model, both chosen by the seed."""
    model, tokenizer = _shipped()
    request = _requests()[(7 * seed) % len(_requests())]
    tokens, subject = prompt_tokens(tokenizer, request.prompt)
    shipped = (model, tokens, subject, target_id(tokenizer, request.prompt.object),
               f"facts-6l on \"{request.prompt.prompt}\"")
    random_model = _random_model(seed)
    g = _generator(seed)
    length = int(torch.randint(6, 10, (), generator=g))
    random_tokens = torch.randint(1, random_model.config.vocab_size, (length,), generator=g)
    random_tokens[0] = 0
    start = int(torch.randint(1, length - 3, (), generator=g))
    stop = start + int(torch.randint(1, 3, (), generator=g))
    target = int(torch.randint(1, random_model.config.vocab_size, (), generator=g))
    return [shipped, (random_model, random_tokens, (start, stop), target,
                      _describe(random_model) + f", subject at positions {start}-{stop - 1}")]


def _noise(model, tokens, subject, seed):
    start, stop = subject
    scale = ref.noise_scale(model, tokens[start:stop])
    return ref.subject_noise(3 + seed % 3, stop - start, model.config.n_embd, scale, seed)


# 1 · Causal tracing ---------------------------------------------------------------------------

def check_corrupted_probabilities(corrupted_probabilities, seeds=VISIBLE_SEEDS):
    learner = _exercise(corrupted_probabilities, "corrupted_probabilities")
    for seed in seeds:
        for model, tokens, subject, target, what in _cases(seed):
            noise = _noise(model, tokens, subject, seed)
            expect_tensor(learner(model, tokens, subject, target, noise),
                          ref.corrupted_probabilities(model, tokens, subject, target, noise),
                          f"corrupted_probabilities on {what} with {len(noise)} noisy copies",
                          "one probability per noisy copy: noise[i] added to hook_embed at the "
                          "subject's positions only (start to stop - 1) of copy i, then the "
                          "softmax of the final position's logits, at the target")
    passed("corrupted_probabilities", len(seeds))


def _restoration(model, seed):
    """(kind, layers, position) chosen by the seed."""
    g = _generator(seed + 100)
    kind = list(ref.SITES)[seed % 3]
    n_layer = model.config.n_layer
    first = int(torch.randint(0, n_layer, (), generator=g))
    count = int(torch.randint(1, n_layer - first + 1, (), generator=g))
    return kind, list(range(first, first + count))


def check_restored_probabilities(restored_probabilities, seeds=VISIBLE_SEEDS):
    learner = _exercise(restored_probabilities, "restored_probabilities",
                        ("corrupted_probabilities",))
    for seed in seeds:
        for model, tokens, subject, target, what in _cases(seed):
            noise = _noise(model, tokens, subject, seed)
            kind, layers = _restoration(model, seed)
            for position in (subject[1] - 1, len(tokens) - 1):
                expect_tensor(
                    learner(model, tokens, subject, target, noise, kind, layers, position),
                    ref.restored_probabilities(model, tokens, subject, target, noise, kind,
                                               layers, position),
                    f"restored_probabilities on {what}, restoring {ref.SITES[kind]} of layers "
                    f"{layers} at position {position}",
                    "restore the clean run's activation at that position only, in each of the "
                    "given layers (site_names(model, kind)[layer]), in every noisy copy, with the "
                    "noise still on the subject")
    passed("restored_probabilities", len(seeds))


def check_trace(trace, seeds=VISIBLE_SEEDS):
    learner = _exercise(trace, "trace", ("corrupted_probabilities", "restored_probabilities"))
    for seed in seeds:
        for case, (model, tokens, subject, target, what) in enumerate(_cases(seed)):
            noise = _noise(model, tokens, subject, seed)
            kind = list(ref.SITES)[(seed + case) % 3]
            window = 1 + (seed + case) % min(3, model.config.n_layer)
            positions = None if case == 0 else [0, subject[1] - 1, len(tokens) - 1]
            got = learner(model, tokens, subject, target, noise, kind, window, positions)
            expected = ref.trace(model, tokens, subject, target, noise, kind, window, positions)
            where = f"trace on {what} (kind {kind!r}, window {window})"
            if not isinstance(got, ref.Trace):
                raise CheckFailed(f"{where} should return a Trace, got {type(got).__name__}.")
            expect_number(got.clean, expected.clean, f"{where}: clean",
                          "the probability of the target after the unchanged prompt")
            expect_number(got.corrupted, expected.corrupted, f"{where}: corrupted",
                          "the mean over the noisy copies of corrupted_probabilities")
            if list(got.positions) != expected.positions:
                raise CheckFailed(f"{where}: positions should be {expected.positions} (every "
                                  f"position when none are given), got {list(got.positions)}.")
            expect_tensor(got.restored, expected.restored, f"{where}: restored",
                          "one row per window start 0 .. n_layer - window, one column per "
                          "position; each entry the mean over the noisy copies with the layers "
                          "first .. first + window - 1 restored", atol=1e-5)
    passed("trace", len(seeds))


def _random_traces(seed):
    """Traces with random effects over every position of random prompts, and their subjects."""
    g = _generator(seed)
    rows = int(torch.randint(2, 6, (), generator=g))
    traces, subjects = [], []
    for i in range(int(torch.randint(3, 7, (), generator=g))):
        length = int(torch.randint(5, 10, (), generator=g))
        start = int(torch.randint(1, length - 2, (), generator=g))
        # Some prompts have a one-token subject, some no tokens between subject and last token.
        stop = min(start + int(torch.randint(1, 4, (), generator=g)), length - 1)
        clean, corrupted = 0.5 + 0.5 * float(torch.rand((), generator=g)), 0.1 * i
        # Every position, or (every other prompt) only those from the subject on.
        positions = list(range(0 if i % 2 else start, length))
        traces.append(ref.Trace("mlp", 1, clean, corrupted,
                                torch.rand(rows, len(positions), generator=g), positions))
        subjects.append((start, stop))
    return traces, subjects


def check_average_indirect_effect(average_indirect_effect, seeds=VISIBLE_SEEDS):
    learner = _exercise(average_indirect_effect, "average_indirect_effect")
    for seed in seeds:
        traces, subjects = _random_traces(seed)
        expect_tensor(learner(traces, subjects), ref.average_indirect_effect(traces, subjects),
                      f"average_indirect_effect of {len(traces)} traces",
                      "one column per class of POSITION_CLASSES: within a prompt the mean "
                      "indirect effect (restored - corrupted) over the class's positions, then "
                      "the mean over the prompts that have the class")
    passed("average_indirect_effect", len(seeds))


# 2 · Rank-one model editing ---------------------------------------------------------------------

def _contexts(model, tokens, subject, seed):
    """The prompt and a shorter copy of it that starts later: the subject in two contexts."""
    g = _generator(seed + 200)
    last = subject[1] - 1
    cut = int(torch.randint(1, subject[0] + 1, (), generator=g))
    shorter = torch.cat([tokens[:1], tokens[cut:]])
    return [(tokens, last), (shorter, last - cut + 1)]


def check_subject_key(subject_key, seeds=VISIBLE_SEEDS):
    learner = _exercise(subject_key, "subject_key")
    for seed in seeds:
        for model, tokens, subject, _, what in _cases(seed):
            layer = seed % model.config.n_layer
            prompts = _contexts(model, tokens, subject, seed)
            expect_tensor(learner(model, prompts, layer), ref.subject_key(model, prompts, layer),
                          f"subject_key on {what}, layer {layer}, two contexts",
                          f"the mean over the prompts of blocks.{layer}.mlp.hook_post at each "
                          f"prompt's subject_last_position (the input of c_proj, after the "
                          f"GELU)", atol=1e-5)
    passed("subject_key", len(seeds))


def _text(model, seed):
    """A padded batch of random text with its mask of real tokens."""
    g = _generator(seed + 300)
    batch, length = 6, int(torch.randint(5, 9, (), generator=g))
    tokens = torch.randint(1, model.config.vocab_size, (batch, length), generator=g)
    tokens[:, 0] = 0
    lengths = torch.randint(2, length + 1, (batch,), generator=g)
    mask = (torch.arange(length)[None] < lengths[:, None]).float()
    return tokens, mask


def check_key_second_moment(key_second_moment, seeds=VISIBLE_SEEDS):
    learner = _exercise(key_second_moment, "key_second_moment")
    for seed in seeds:
        model = _random_model(seed)
        layer = seed % model.config.n_layer
        tokens, mask = _text(model, seed)
        expect_tensor(learner(model, tokens, mask, layer),
                      ref.key_second_moment(model, tokens, mask, layer),
                      f"key_second_moment on {_describe(model)}, layer {layer}, "
                      f"{int(mask.sum())} real tokens",
                      "the mean of k kᵀ over the real tokens only (mask 1), uncentred, in "
                      "float64: keys.T @ keys / number of real tokens")
    passed("key_second_moment", len(seeds))


VALUE_STEPS = 3


def check_optimise_value(optimise_value, seeds=VISIBLE_SEEDS):
    learner = _exercise(optimise_value, "optimise_value")
    for seed in seeds:
        for model, tokens, subject, target, what in _cases(seed):
            layer = seed % model.config.n_layer
            prompts = _contexts(model, tokens, subject, seed)
            kl_prompts = [(tokens[:subject[1]], subject[1] - 1)]
            options = dict(steps=VALUE_STEPS, lr=0.5, kl_factor=[0.0625, 1.0, 0.0][seed % 3],
                           weight_decay=[0.5, 0.0, 2.0][seed % 3])
            got = learner(model, prompts, kl_prompts, layer, target, **options)
            expected = ref.frozen_call(model, ref.optimise_value, model, prompts, kl_prompts,
                                       layer, target, **options)
            where = (f"optimise_value on {what}, layer {layer}, {VALUE_STEPS} steps with "
                     f"kl_factor {options['kl_factor']} and weight_decay "
                     f"{options['weight_decay']}")
            if not (isinstance(got, tuple) and len(got) == 2):
                raise CheckFailed(f"{where} should return a pair (v*, probability), got "
                                  f"{type(got).__name__}.")
            expect_tensor(got[0], expected[0], f"{where}: v*",
                          "v* = v0 + δ, with v0 the unedited hook_mlp_out at the first prompt's "
                          "subject; the loss is the mean NLL + kl_factor · KL(p_δ ‖ p_0) + "
                          "weight_decay · ‖δ‖ / ‖v0‖², one Adam step per step", atol=2e-4,
                          rtol=1e-3)
            expect_number(got[1], expected[1], f"{where}: the probability",
                          "the mean probability of the target over the prompts with the final "
                          "δ, measured after the last step", tol=2e-3)
    passed("optimise_value", len(seeds))


def _memory(seed):
    g = _generator(seed)
    d_mlp, d_model = int(torch.randint(6, 16, (), generator=g)), int(torch.randint(3, 8, (),
                                                                                     generator=g))
    keys = torch.randn(4 * d_mlp, d_mlp, generator=g).abs()
    moment = (keys.T @ keys / len(keys)).double()
    return (torch.randn(d_mlp, d_model, generator=g), torch.randn(d_model, generator=g),
            torch.randn(d_mlp, generator=g).abs(), torch.randn(d_model, generator=g), moment)


def check_rank_one_update(rank_one_update, seeds=VISIBLE_SEEDS):
    learner = _exercise(rank_one_update, "rank_one_update")
    for seed in seeds:
        weight, bias, key, value, moment = _memory(seed)
        got = learner(weight, bias, key, value, moment)
        expect_tensor(got, ref.rank_one_update(weight, bias, key, value, moment),
                      f"rank_one_update with d_mlp {len(key)} and d_model {len(value)}",
                      "W + u rᵀ with u = C⁻¹k / ((C⁻¹k)ᵀ k) and r = v − (k W + b), in the "
                      "Conv1D layout (d_mlp, d_model) and W's dtype", atol=1e-4)
    passed("rank_one_update", len(seeds))


# 3 · Evaluating an edit -------------------------------------------------------------------------

@functools.lru_cache(maxsize=8)
def _edit(seed):
    """A request and the weight of its ROME edit at layer 0 (None for an unedited model)."""
    model, tokenizer = _shipped()
    request = _requests()[(11 * seed + 3) % len(_requests())]
    if seed % 3 == 2:
        return request, None
    prompts, kl_prompts = edit_prompts(tokenizer, request)
    moment = ref.with_ridge(ref.key_second_moment(model, *_key_text(), 0))
    weight, _ = ref.rome_weight(model, prompts, kl_prompts, 0,
                                target_id(tokenizer, request.new_object), moment)
    return request, weight


@functools.lru_cache(maxsize=1)
def _key_text():
    from reference_impl.rome.data import key_text_batch
    return key_text_batch(_shipped()[1], 500)


def check_edit_scores(edit_scores, seeds=VISIBLE_SEEDS):
    learner = _exercise(edit_scores, "edit_scores")
    model, tokenizer = _shipped()
    for seed in seeds:
        request, weight = _edit(seed)
        state = "unedited" if weight is None else "edited by ROME"
        with ref.edited(model, 0, c_proj_weight(model) if weight is None else weight):
            expected = ref.edit_scores(model, tokenizer, request)
            got = learner(model, tokenizer, request)
        where = f"edit_scores for \"{request.prompt.prompt}\" → {request.new_object} ({state})"
        if not isinstance(got, dict) or set(got) != set(ref.SCORES):
            raise CheckFailed(f"{where} should return a dict with the keys {ref.SCORES}, got "
                              f"{sorted(got) if isinstance(got, dict) else type(got).__name__}.")
        hints = {"efficacy": "1.0 if the new object's logit beats the true object's on the "
                             "rewrite prompt, else 0.0",
                 "paraphrase": "the share of request.paraphrases where the new object beats "
                               "the true one",
                 "neighbourhood": "the share of request.neighbours where the true object (the "
                                  "request's, which they share) still beats the new one",
                 "same_person": "the share of request.same_person whose top-1 next token is "
                                "their own object",
                 "same_name": "the share of request.same_name whose top-1 next token is their "
                              "own object"}
        for key in ref.SCORES:
            if isinstance(got[key], torch.Tensor):
                raise CheckFailed(f"{where}: ['{key}'] is a tensor: return Python floats "
                                  f"(.item()).")
            expect_number(got[key], expected[key], f"{where}: ['{key}']", hints[key])
    passed("edit_scores", len(seeds))


def c_proj_weight(model, layer=0):
    return ref.c_proj(model, layer).weight.detach().clone()


FINETUNE_STEPS = 3


def check_finetune_layer(finetune_layer, seeds=VISIBLE_SEEDS):
    learner = _exercise(finetune_layer, "finetune_layer")
    for seed in seeds:
        for model, tokens, subject, target, what in _cases(seed):
            layer = seed % model.config.n_layer
            prompts = [tokens, torch.cat([tokens[:1], tokens[subject[0]:]])]
            # A large learning rate, so that the clamp binds for many entries.
            options = dict(steps=FINETUNE_STEPS, lr=[1e-2, 1e-3, 3e-2][seed % 3],
                           max_change=[5e-3, 1e-2, 2e-3][seed % 3])
            got = learner(model, prompts, layer, target, **options)
            expected = ref.frozen_call(model, ref.finetune_layer, model, prompts, layer, target,
                                       **options)
            expect_tensor(got, expected,
                          f"finetune_layer on {what}, layer {layer}, {FINETUNE_STEPS} steps at lr "
                          f"{options['lr']} with max_change {options['max_change']}",
                          "Adam on c_proj.weight alone (a copy), the mean NLL of the target over "
                          "the prompts, then after every step each entry clamped to within "
                          "max_change of the original weight", atol=1e-5)
            if isinstance(got, torch.Tensor) and got.requires_grad:
                raise CheckFailed("finetune_layer returned a weight that still requires a "
                                  "gradient: return weight.detach().")
    passed("finetune_layer", len(seeds))
