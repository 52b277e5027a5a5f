"""Grading checks for chapter 03, induction heads.

Each ``check_<exercise>(fn, seeds=...)`` grades one exercise on its own: it runs the learner's
function on inputs drawn from each seed and compares the result with the reference solution. The
inputs are the shipped ``attn-only-2l`` model and small random GPT-2 models whose shapes change
with the seed (some with MLPs, untied embeddings and non-trivial LayerNorms), so that an answer
that hard-codes the shipped model's sizes or skips a step that happens not to matter there fails.
"""

import functools

import torch

from reference_impl.induction_heads import solutions as ref
from reference_impl.course.grading import (CheckFailed, Exercise, captured_output, expect_number,
                                         expect_tensor, passed)
from reference_impl.hooks import run_with_cache
from reference_impl.world import repeated_tokens
from reference_impl.zoo import load_model, random_test_model

SOLUTION_MODULE = ref.__name__
VISIBLE_SEEDS = (0, 1, 2)


def _generator(seed):
    return torch.Generator().manual_seed(seed)


def _exercise(fn, name, dependencies=()):
    return Exercise(fn, name, SOLUTION_MODULE, {d: getattr(ref, d) for d in dependencies})


@functools.lru_cache(maxsize=1)
def _shipped():
    return load_model("attn-only-2l")[0]


@functools.lru_cache(maxsize=16)
def _random_model(seed, n_layer=None):
    """A small random GPT-2 whose sizes depend on the seed."""
    return random_test_model(seed, n_layer or 2 + seed % 2, attention_only=seed % 4 in (1, 2))


def _models(seed):
    """The shipped model and a random one, with a repeated batch for each. The batch size, 5,
    differs from every model's number of heads (2 to 4) and of layers + 1 (3 or 4), so that an
    answer with its axes in the wrong order has the wrong shape."""
    cases = []
    for model in (_shipped(), _random_model(seed)):
        g = _generator(seed)
        length = int(torch.randint(4, 12, (), generator=g))
        cases.append((model, repeated_tokens(model.config.vocab_size, length, 5, g)))
    return cases


def _describe(model):
    c = model.config
    return (f"a {c.n_layer}-layer model with {c.n_head} heads of size {c.n_embd // c.n_head}"
            f"{'' if getattr(c, 'attention_only', False) else ' and MLPs'}")


# 1 · Reading attention ------------------------------------------------------------------------

def _random_pattern(g, batch, heads, positions):
    scores = torch.randn(batch, heads, positions, positions, generator=g) * 2
    future = torch.ones(positions, positions, dtype=torch.bool).triu(1)
    return scores.masked_fill(future, float("-inf")).softmax(dim=-1)


def check_detector_scores(detector_scores, seeds=VISIBLE_SEEDS):
    learner = _exercise(detector_scores, "detector_scores")
    for seed in seeds:
        g = _generator(seed)
        batch, heads, positions = (int(torch.randint(lo, hi, (), generator=g))
                                   for lo, hi in ((2, 5), (2, 6), (5, 12)))
        pattern = _random_pattern(g, batch, heads, positions)
        expect_tensor(learner(pattern), ref.detector_scores(pattern),
                      f"detector_scores(pattern) for a pattern of shape {tuple(pattern.shape)}",
                      "rows are (current, previous, first); average over the batch and the "
                      "queries q ≥ 2 the attention from q to key q, to key q - 1 and to key 0")
    passed("detector_scores", len(seeds))


# 2 · Repeated random tokens -------------------------------------------------------------------

def check_next_token_log_probs(next_token_log_probs, seeds=VISIBLE_SEEDS):
    learner = _exercise(next_token_log_probs, "next_token_log_probs")
    for seed in seeds:
        g = _generator(seed)
        batch, positions, vocab = (int(torch.randint(lo, hi, (), generator=g))
                                   for lo, hi in ((2, 5), (4, 10), (6, 20)))
        logits = torch.randn(batch, positions, vocab, generator=g) * 3
        tokens = torch.randint(0, vocab, (batch, positions), generator=g)
        expect_tensor(learner(logits, tokens), ref.next_token_log_probs(logits, tokens),
                      f"next_token_log_probs(logits, tokens) with logits of shape "
                      f"{tuple(logits.shape)}",
                      "take log_softmax over the vocabulary, and at position i read the "
                      "log-probability of token i + 1")
    passed("next_token_log_probs", len(seeds))


def check_copy_losses(copy_losses, seeds=VISIBLE_SEEDS):
    learner = _exercise(copy_losses, "copy_losses", ("next_token_log_probs",))
    for seed in seeds:
        for model, tokens in _models(seed):
            length = (tokens.shape[1] - 1) // 2
            head = (seed % model.config.n_layer, seed % model.config.n_head)
            for patches in (None, ref.ablation_patches(model, tokens, [head], "zero")):
                got = learner(model, tokens, patches=patches)
                expected = ref.copy_losses(model, tokens, patches=patches)
                if not isinstance(got, tuple) or len(got) != 2:
                    raise CheckFailed("copy_losses should return a pair (first, second), got "
                                      f"{type(got).__name__}.")
                hint = (("pass `patches` to run_with_cache; " if patches else "")
                        + "the first copy's loss averages the predictions of tokens 2 .. L, the "
                        f"second's those of tokens L + 2 .. 2L (here L = {length})")
                what = (f"copy_losses on {_describe(model)}"
                        f"{' with a head ablated' if patches else ''}")
                expect_number(got[0], expected[0], f"the first-copy loss of {what}", hint)
                expect_number(got[1], expected[1], f"the second-copy loss of {what}", hint)
    passed("copy_losses", len(seeds))


# 3 · Induction heads ------------------------------------------------------------------------

def check_head_scores(head_scores, seeds=VISIBLE_SEEDS):
    learner = _exercise(head_scores, "head_scores", ("detector_scores",))
    for seed in seeds:
        for model, tokens in _models(seed):
            got = learner(model, tokens)
            if not isinstance(got, tuple) or len(got) != 2:
                raise CheckFailed("head_scores should return a pair (previous, induction), got "
                                  f"{type(got).__name__}.")
            expected = ref.head_scores(model, tokens)
            length = (tokens.shape[1] - 1) // 2
            for name, value, reference in zip(("previous-token", "induction"), got, expected):
                expect_tensor(value, reference,
                              f"the {name} scores of {_describe(model)} (L = {length})",
                              "one (layers, heads) grid per score; the induction score averages, "
                              "over the queries of the second copy (positions L + 1 .. 2L), the "
                              "attention to the key L - 1 positions back")
    passed("head_scores", len(seeds))


# 4 · The logit lens -------------------------------------------------------------------------

def check_logit_lens(logit_lens, seeds=VISIBLE_SEEDS):
    learner = _exercise(logit_lens, "logit_lens")
    for seed in seeds:
        for model, tokens in _models(seed):
            expect_tensor(learner(model, tokens), ref.logit_lens(model, tokens),
                          f"logit_lens on {_describe(model)}",
                          "stack blocks.0.hook_resid_pre and every blocks.L.hook_resid_post, "
                          "then apply model.transformer.ln_f and model.lm_head", atol=1e-4)
    passed("logit_lens", len(seeds))


# 5 · Direct logit attribution ----------------------------------------------------------------

def check_direct_logit_attribution(direct_logit_attribution, seeds=VISIBLE_SEEDS):
    learner = _exercise(direct_logit_attribution, "direct_logit_attribution")
    for seed in seeds:
        for model, tokens in _models(seed):
            expect_tensor(learner(model, tokens), ref.direct_logit_attribution(model, tokens),
                          f"direct_logit_attribution on {_describe(model)}",
                          "centre every component, divide by the frozen scale "
                          "sqrt(var(x) + eps) of the real final residual x, multiply by ln_f's "
                          "weight, add ln_f's bias to the rest, and dot with the unembedding of "
                          "the next token", atol=1e-4)
    passed("direct_logit_attribution", len(seeds))


# 6 · Ablation ---------------------------------------------------------------------------------

def _patched_activations(patches, model, tokens):
    """The logits and every z of a run under the learner's patches (whose errors are theirs)."""
    if not isinstance(patches, dict):
        raise CheckFailed(f"ablation_patches should return a dict {{name: fn}}, got "
                          f"{type(patches).__name__}.")
    names = [f"blocks.{layer}.attn.hook_z" for layer in range(model.config.n_layer)]
    try:
        with captured_output():
            return run_with_cache(model, tokens, names=names, patches=patches)
    except CheckFailed:
        raise
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else "(no message)"
        raise CheckFailed(f"running the model with the patches from ablation_patches raised "
                          f"{type(exc).__name__}: {message}") from None


def check_ablation_patches(ablation_patches, seeds=VISIBLE_SEEDS):
    learner = _exercise(ablation_patches, "ablation_patches")
    for seed in seeds:
        for model, tokens in _models(seed):
            g = _generator(seed)
            every = [(layer, head) for layer in range(model.config.n_layer)
                     for head in range(model.config.n_head)]
            chosen = [every[int(i)] for i in torch.randperm(len(every), generator=g)[:3]]
            for method in ("mean", "zero"):
                got = _patched_activations(learner(model, tokens, chosen, method=method),
                                           model, tokens)
                expected = run_with_cache(model, tokens, names=list(got[1]) or None,
                                          patches=ref.ablation_patches(model, tokens, chosen,
                                                                       method))
                what = f"{method}-ablating heads {chosen} of {_describe(model)}"
                for name, z in expected[1].items():
                    expect_tensor(got[1][name], z, f"{name} when {what}",
                                  "replace z[:, :, head] of each chosen head only (by zeros, or by "
                                  "its mean over the batch and the positions of a clean run)")
                expect_tensor(got[0], expected[0], f"the logits when {what}", atol=1e-4)
    passed("ablation_patches", len(seeds))


# 7 · Circuits -------------------------------------------------------------------------------

def _weight_models(seed):
    return (_shipped(), _random_model(seed), _random_model(seed + 1000, n_layer=3))


def check_head_weights(head_weights, seeds=VISIBLE_SEEDS):
    learner = _exercise(head_weights, "head_weights")
    for seed in seeds:
        for model in _weight_models(seed):
            layer = seed % model.config.n_layer
            got = learner(model, layer)
            if not isinstance(got, (tuple, list)) or len(got) != 4:
                raise CheckFailed("head_weights should return four tensors (W_Q, W_K, W_V, W_O).")
            for name, value, expected in zip(("W_Q", "W_K", "W_V", "W_O"), got,
                                             ref.head_weights(model, layer)):
                expect_tensor(value, expected, f"{name} of layer {layer} of {_describe(model)}",
                              "c_attn.weight is (d_model, 3 d_model) with the Q, K, V columns "
                              "side by side, and each head owns d_head consecutive columns (rows "
                              "of c_proj.weight for W_O)")
    passed("head_weights", len(seeds))


def _check_circuit(fn, name, reference, hint, seeds, dependencies=("head_weights",)):
    learner = _exercise(fn, name, dependencies)
    for seed in seeds:
        for model in _weight_models(seed):
            layer, head = seed % model.config.n_layer, (seed + 1) % model.config.n_head
            expect_tensor(learner(model, layer, head), reference(model, layer, head),
                          f"{name}(model, {layer}, {head}) on {_describe(model)}", hint)
    passed(name, len(seeds))


def check_ov_circuit(ov_circuit, seeds=VISIBLE_SEEDS):
    _check_circuit(ov_circuit, "ov_circuit", ref.ov_circuit,
                   "multiply W_E (vocab, d_model), the head's W_V and W_O, and W_U = "
                   "model.lm_head.weight transposed, in that order", seeds)


def check_positional_qk_circuit(positional_qk_circuit, seeds=VISIBLE_SEEDS):
    _check_circuit(positional_qk_circuit, "positional_qk_circuit", ref.positional_qk_circuit,
                   "compute W_pos W_Q W_Kᵀ W_posᵀ with W_pos = model.transformer.wpe.weight, "
                   "queries along the rows and no scaling", seeds)


def check_copying_score(copying_score, seeds=VISIBLE_SEEDS):
    learner = _exercise(copying_score, "copying_score")
    for seed in seeds:
        g = _generator(seed)
        size = int(torch.randint(4, 9, (), generator=g))
        basis = torch.randn(size, size, generator=g)
        positive = basis @ torch.diag(torch.rand(size, generator=g) + 0.1) @ torch.linalg.inv(basis)
        mixed = basis @ torch.diag(torch.randn(size, generator=g)) @ torch.linalg.inv(basis)
        cases = {"a random matrix": torch.randn(size, size, generator=g),
                 "a matrix with only positive eigenvalues": positive,
                 "a matrix with eigenvalues of both signs": mixed,
                 "a matrix with mostly negative eigenvalues": -positive + 0.2 * mixed}
        for what, matrix in cases.items():
            expect_number(learner(matrix), ref.copying_score(matrix),
                          f"copying_score of {what} ({size} × {size})",
                          "divide the sum of the complex eigenvalues (torch.linalg.eigvals; its "
                          "real part) by the sum of their absolute values")
    passed("copying_score", len(seeds))


def check_k_composition_scores(k_composition_scores, seeds=VISIBLE_SEEDS):
    learner = _exercise(k_composition_scores, "k_composition_scores",
                        ("head_weights", "composition_score"))
    for seed in seeds:
        for model in _weight_models(seed):
            pairs = [(0, 1)] + ([(1, 2), (0, 2)] if model.config.n_layer >= 3 else [])
            for writer, reader in pairs:
                expect_tensor(learner(model, writer=writer, reader=reader),
                              ref.k_composition_scores(model, writer=writer, reader=reader),
                              f"k_composition_scores(model, writer={writer}, reader={reader}) on "
                              f"{_describe(model)}",
                              "rows are writer heads, columns reader heads; the score of a pair "
                              "is composition_score(W_QK, W_OVᵀ) with W_QK = W_Q W_Kᵀ of the "
                              "reader and W_OV = W_V W_O of the writer")
    passed("k_composition_scores", len(seeds))


# 8 · The phase change -----------------------------------------------------------------------

def _training_log(g, n_layers, n_heads, formed_at):
    """A fake log whose best layer ≥ 1 induction score first reaches 0.5 at index formed_at
    (exactly 0.5 there), with distractions: a high layer-0 score earlier, a dip later, and a
    mean over heads that stays below 0.5."""
    steps = [50 * i for i in range(12)]
    scores = []
    for i in range(len(steps)):
        grid = (torch.rand(n_layers, n_heads, generator=g) * 0.2).tolist()
        if i >= formed_at and i != formed_at + 2:
            grid[1 + i % (n_layers - 1)][i % n_heads] = 0.5 if i == formed_at else 0.75
        if i == formed_at + 2:
            grid[1][1] = 0.45  # a dip below the threshold after the heads formed
        scores.append(grid)
    scores[formed_at - 2][0][0] = 0.9  # layer 0 cannot be an induction head
    scores[formed_at - 1][1][0] = 0.499
    return {"steps": steps, "induction_scores": scores,
            "previous_token_scores": [[[0.9] * n_heads] * n_layers for _ in steps]}


def check_phase_change_step(phase_change_step, seeds=VISIBLE_SEEDS):
    learner = _exercise(phase_change_step, "phase_change_step")
    for seed in seeds:
        g = _generator(seed)
        n_layers, n_heads = int(torch.randint(2, 4, (), generator=g)), 4
        formed_at = int(torch.randint(3, 8, (), generator=g))
        log = _training_log(g, n_layers, n_heads, formed_at)
        for threshold in (0.5, 0.7):
            got = learner(log, threshold=threshold)
            expected = ref.phase_change_step(log, threshold=threshold)
            if got != expected or isinstance(got, bool):
                raise CheckFailed(f"phase_change_step(log, threshold={threshold}) returned "
                                  f"{got!r}, expected the step {expected}: return "
                                  f"log['steps'][i] for the first i at which the largest "
                                  f"induction score of layers 1 and up is ≥ threshold")
        never = dict(log, induction_scores=[[[0.1] * n_heads] * n_layers for _ in log["steps"]])
        if learner(never) is not None:
            raise CheckFailed("phase_change_step should return None when no induction score ever "
                              "reaches the threshold.")
    passed("phase_change_step", len(seeds))
