"""Grading checks for chapter 04, the IOI circuit.

Each ``check_<exercise>(fn, seeds=...)`` grades one exercise on its own: it runs the learner's
function on inputs drawn from each seed and compares the result with the reference solution. The
inputs are real IOI prompts on the shipped ``world-5l`` (a seeded template and handful of
prompts) and IOI-shaped random token batches on small random GPT-2 models whose sizes change with
the seed, so that an answer that hard-codes the shipped model's sizes or positions fails.
"""

import functools

import torch

from reference_impl.course.grading import (CheckFailed, Exercise, expect_number, expect_tensor,
                                         passed)
from reference_impl.hooks import run_with_cache
from reference_impl.ioi_circuit import solutions as ref
from reference_impl.ioi_circuit.data import IOIBatch, group_by_template, heldout_examples, ioi_batch
from reference_impl.zoo import load_model, random_test_model

SOLUTION_MODULE = ref.__name__
VISIBLE_SEEDS = (0, 1, 2)
# The functions the notebook hands over, which every patching answer may call.
GIVEN = ("scalar", "normalised", "final_metric", "copied_from", "logit_diff_directions",
         "final_layer_norm", "sender_activation", "HEAD_ACTIVATIONS")


def _generator(seed):
    return torch.Generator().manual_seed(seed)


def _exercise(fn, name, dependencies=()):
    return Exercise(fn, name, SOLUTION_MODULE,
                    {d: getattr(ref, d) for d in (*GIVEN, *dependencies)})


@functools.lru_cache(maxsize=1)
def _shipped():
    return load_model("world-5l")


@functools.lru_cache(maxsize=8)
def _shipped_batch(seed, size=4):
    """``size`` held-out prompts of one template, both orders, chosen by the seed."""
    model, tokenizer = _shipped()
    groups = list(group_by_template(heldout_examples()).values())
    examples = groups[seed % len(groups)]
    chosen = []
    for order in ("ABBA", "BABA"):
        of_order = [e for e in examples if e.order == order]
        start = (7 * seed) % (len(of_order) - size // 2)
        chosen += of_order[start:start + size // 2]
    return ioi_batch(tokenizer, chosen)


@functools.lru_cache(maxsize=8)
def _random_model(seed):
    return random_test_model(seed, 2 + seed % 2, attention_only=seed % 4 == 1)


@functools.lru_cache(maxsize=8)
def _random_batch(seed):
    """An IOI-shaped batch of random tokens: IO and S at two early positions (in either order),
    S again near the end, and a corrupted copy with a third token in its place."""
    model = _random_model(seed)
    g = _generator(seed)
    size, length = 5, int(torch.randint(9, 13, (), generator=g))
    vocab = model.config.vocab_size
    tokens = torch.randint(2, vocab, (size, length), generator=g)
    tokens[:, 0] = 0
    first, second, s2 = torch.tensor(2), torch.tensor(4), torch.tensor(length - 4)
    names = torch.stack([torch.randperm(vocab - 2, generator=g)[:3] + 2 for _ in range(size)])
    io, s, c = names.T
    abba = torch.arange(size) % 2 == 0
    io_pos = torch.where(abba, first, second)
    s1_pos = torch.where(abba, second, first)
    rows = torch.arange(size)
    tokens[rows, io_pos], tokens[rows, s1_pos], tokens[rows, s2] = io, s, s
    corrupted = tokens.clone()
    corrupted[rows, s2] = c
    positions = {"IO": io_pos, "S1": s1_pos, "S2": s2.expand(size),
                 "end": torch.tensor(length - 1).expand(size)}
    return IOIBatch(tokens, corrupted, io, s, positions, [])


def _cases(seed):
    """(model, batch, description) on the shipped model and on a random one."""
    shipped, _ = _shipped()
    random_model = _random_model(seed)
    return [(shipped, _shipped_batch(seed), "world-5l on held-out prompts"),
            (random_model, _random_batch(seed), _describe(random_model))]


def _patching_cases(seed, seeds):
    """``_cases(seed)`` for the first seed of a check, the random model alone for the others:
    patching runs the model once per cell, and the shipped model is the slow one."""
    return list(enumerate(_cases(seed)))[0 if seed == seeds[0] else 1:]


def _describe(model):
    c = model.config
    return (f"a random {c.n_layer}-layer model with {c.n_head} heads of size "
            f"{c.n_embd // c.n_head}{'' if getattr(c, 'attention_only', False) else ' and MLPs'}")


def _mean_logit_diff(batch):
    return lambda final_logits: ref.logit_diff(final_logits, batch.io, batch.s).mean()


@functools.lru_cache(maxsize=256)
def _patching_reference(name, seed, case, *args, **kwargs):
    """The reference patching result ``name(model, clean, corrupted, metric, *args)`` for case
    ``case`` of ``_cases(seed)``, computed once: patching runs the model once per cell."""
    model, batch, _ = _cases(seed)[case]
    return getattr(ref, name)(model, batch.tokens, batch.corrupted, _mean_logit_diff(batch),
                              *args, **kwargs)


# 1 · Metrics -------------------------------------------------------------------------------

def _random_logits(seed):
    g = _generator(seed)
    batch = int(torch.randint(4, 9, (), generator=g))
    vocab = int(torch.randint(10, 30, (), generator=g))
    logits = torch.randn(batch, vocab, generator=g) * 3
    pairs = torch.stack([torch.randperm(vocab, generator=g)[:2] for _ in range(batch)])
    io, s = pairs.T
    # Make IO the top token of about half the prompts, so that accuracy is neither 0 nor 1.
    top = torch.rand(batch, generator=g) < 0.5
    logits[top, io[top]] = logits[top].max(dim=-1).values + 1
    return logits, io, s


def check_logit_diff(logit_diff, seeds=VISIBLE_SEEDS):
    learner = _exercise(logit_diff, "logit_diff")
    for seed in seeds:
        logits, io, s = _random_logits(seed)
        logits.requires_grad_(True)
        got = learner(logits, io, s)
        expect_tensor(got, ref.logit_diff(logits, io, s).detach(),
                      f"logit_diff for {len(io)} prompts and a vocabulary of {logits.shape[1]}",
                      "one value per prompt: final_logits[i, io[i]] - final_logits[i, s[i]]")
        if not got.requires_grad:
            raise CheckFailed("logit_diff cut the result off the computation graph (a .detach(), "
                              ".item() or torch.tensor(...) of numbers): attribution patching "
                              "needs its gradient, so index the logits tensor instead.")
    passed("logit_diff", len(seeds))


METRIC_KEYS = ("logit_diff", "accuracy", "log_p_io", "log_p_s")


def check_ioi_metrics(ioi_metrics, seeds=VISIBLE_SEEDS):
    learner = _exercise(ioi_metrics, "ioi_metrics", ("logit_diff",))
    for seed in seeds:
        logits, io, s = _random_logits(seed)
        got = learner(logits, io, s)
        if not isinstance(got, dict) or set(got) != set(METRIC_KEYS):
            raise CheckFailed(f"ioi_metrics should return a dict with the keys {METRIC_KEYS}, got "
                              f"{sorted(got) if isinstance(got, dict) else type(got).__name__}.")
        expected = ref.ioi_metrics(logits, io, s)
        hints = {"logit_diff": "the mean of logit_diff over the prompts",
                 "accuracy": "the share of prompts whose largest logit, over the whole "
                             "vocabulary, is IO's",
                 "log_p_io": "log_softmax over the vocabulary, then IO's entry, averaged",
                 "log_p_s": "log_softmax over the vocabulary, then S's entry, averaged"}
        for key in METRIC_KEYS:
            if isinstance(got[key], torch.Tensor):
                raise CheckFailed(f"ioi_metrics()['{key}'] is a tensor: return Python floats "
                                  f"(.item()), so that the numbers can be printed and compared.")
            expect_number(got[key], expected[key], f"ioi_metrics()['{key}']", hints[key])
    passed("ioi_metrics", len(seeds))


# 2 · Direct logit attribution ---------------------------------------------------------------

def _check_on_cases(fn, name, arguments, hint, seeds, skip=lambda model: False):
    """Compare ``fn(*arguments(model, batch))`` with the reference on every case of every seed
    (except the models ``skip`` rules out)."""
    learner = _exercise(fn, name)
    for seed in seeds:
        for model, batch, what in _cases(seed):
            if skip(model):
                continue
            expect_tensor(learner(*arguments(model, batch)),
                          getattr(ref, name)(*arguments(model, batch)), f"{name} on {what}", hint,
                          atol=1e-4)
    passed(name, len(seeds))


def _tokens_io_s(model, batch):
    return model, batch.tokens, batch.io, batch.s


def check_accumulated_logit_diff(accumulated_logit_diff, seeds=VISIBLE_SEEDS):
    _check_on_cases(accumulated_logit_diff, "accumulated_logit_diff", _tokens_io_s,
                    "(n_layer + 1, batch): at the final position, each stage through the final "
                    "LayerNorm with the real final scale (ln_final.hook_scale), its weight and "
                    "bias, then along W_U[IO] - W_U[S]", seeds)


def check_logit_diff_attribution(logit_diff_attribution, seeds=VISIBLE_SEEDS):
    _check_on_cases(logit_diff_attribution, "logit_diff_attribution", _tokens_io_s,
                    "parts in the order of component_labels(model), each centred, divided by the "
                    "real final scale and multiplied by ln_f's weight; ln_f's bias and the rest "
                    "of the residual go to 'biases'", seeds,
                    skip=lambda model: getattr(model.config, "attention_only", False))  # no MLPs


# 3 · Attention ----------------------------------------------------------------------------

def check_ioi_attention(ioi_attention, seeds=VISIBLE_SEEDS):
    _check_on_cases(ioi_attention, "ioi_attention",
                    lambda model, batch: (model, batch.tokens, batch.positions),
                    "rows end → IO, end → S1, end → S2, S2 → S1; read each prompt's own positions "
                    "(pattern[i, :, query[i], key[i]]) and average over the batch", seeds)


# 4 · Activation patching ----------------------------------------------------------------------

def check_residual_patching(residual_patching, seeds=VISIBLE_SEEDS):
    learner = _exercise(residual_patching, "residual_patching")
    for seed in seeds:
        for case, (model, batch, what) in _patching_cases(seed, seeds):
            metric = _mean_logit_diff(batch)
            expect_tensor(learner(model, batch.tokens, batch.corrupted, metric),
                          _patching_reference("residual_patching", seed, case),
                          f"residual_patching on {what}",
                          "(n_layer, pos): patch blocks.L.hook_resid_pre[:, p] from the clean run "
                          "into the corrupted run; 0 = corrupted metric, 1 = clean", atol=1e-3,
                          rtol=1e-3)
    passed("residual_patching", len(seeds))


def check_head_patching(head_patching, seeds=VISIBLE_SEEDS):
    learner = _exercise(head_patching, "head_patching")
    kinds = ref.HEAD_ACTIVATIONS
    for seed in seeds:
        for case, (model, batch, what) in _patching_cases(seed, seeds):
            metric = _mean_logit_diff(batch)
            # Two kinds a seed, and a third one position by position; the visible seeds cover
            # z, q, k, v and the pattern, and the pattern, z and q by position.
            runs = [(kinds[seed % 5], False), (kinds[(seed + 2) % 5], False),
                    (kinds[(seed + 4) % 5], True)]
            for activation, by_position in runs[:3 if case else 2]:
                expect_tensor(
                    learner(model, batch.tokens, batch.corrupted, metric,
                            activation=activation, by_position=by_position),
                    _patching_reference("head_patching", seed, case, activation=activation,
                                        by_position=by_position),
                    f"head_patching(activation={activation!r}, by_position={by_position}) "
                    f"on {what}",
                    "patch [:, :, head] of hook_z/q/k/v (or [:, :, head] and one position "
                    "[:, p, head]), [:, head] of hook_pattern (query row [:, head, p]); "
                    "0 = corrupted metric, 1 = clean", atol=1e-3, rtol=1e-3)
    passed("head_patching", len(seeds))


# 5 · Path patching ------------------------------------------------------------------------

def _path_cases(model, seed):
    """(sender, receivers) pairs: a head and an MLP (when there is one) of layer 0 into the
    queries, keys or values of heads of the last layer, and one into several inputs at once."""
    g = _generator(seed)
    last, n_head = model.config.n_layer - 1, model.config.n_head
    head = int(torch.randint(0, n_head, (), generator=g))
    other = (head + 1) % n_head
    cases = [((0, head), [(last, other, "q")]),
             ((0, other), [(1, head, "k"), (last, other, "v")]),
             ((0, head), [(last, h, "v") for h in range(n_head)])]
    if not getattr(model.config, "attention_only", False):
        cases.append(((0, "mlp"), [(1, head, "v"), (last, head, "q"), (last, other, "k")]))
    if model is _shipped()[0]:
        # Paths that carry the corruption in world-5l: into the S-suppressor's values, and past it
        # (where freezing the other heads matters) into the second-name movers.
        cases += [((0, "mlp"), [(1, 0, "v")]), ((0, "mlp"), [(3, 0, "q"), (4, 2, "v")])]
    return cases


def check_path_patching(path_patching, seeds=VISIBLE_SEEDS):
    learner = _exercise(path_patching, "path_patching")
    for seed in seeds:
        for case, (model, batch, what) in _patching_cases(seed, seeds):
            metric = _mean_logit_diff(batch)
            for sender, receivers in _path_cases(model, seed):
                expect_number(
                    learner(model, batch.tokens, batch.corrupted, metric, sender, receivers),
                    _patching_reference("path_patching", seed, case, sender, tuple(receivers)),
                    f"path_patching from {sender} to {receivers} on {what}",
                    "run 2 is the clean run with the sender from the corrupted run and every "
                    "other head's hook_z frozen at its clean value; run 3 patches only the "
                    "receivers' inputs from run 2; return (run 3 - clean) / (clean - corrupted)",
                    tol=1e-4)
    passed("path_patching", len(seeds))


# 6 · Attribution patching -------------------------------------------------------------------

def check_attribution_patching(attribution_patching, seeds=VISIBLE_SEEDS):
    learner = _exercise(attribution_patching, "attribution_patching")
    for seed in seeds:
        for model, batch, what in _cases(seed):
            metric = _mean_logit_diff(batch)
            layer = seed % model.config.n_layer
            names = [f"blocks.{layer}.hook_resid_pre", f"blocks.{layer}.attn.hook_z",
                     "blocks.0.attn.hook_pattern"]
            grads_before = [p.grad for p in model.parameters()]
            got = learner(model, batch.tokens, batch.corrupted, metric, names)
            if any(p.grad is not before for p, before in zip(model.parameters(), grads_before)):
                for p, before in zip(model.parameters(), grads_before):
                    p.grad = before
                raise CheckFailed("attribution_patching left gradients in the model's "
                                  "parameters (.grad): take the gradients with "
                                  "torch.autograd.grad(metric, activations) instead of "
                                  ".backward().")
            if not isinstance(got, dict) or set(got) != set(names):
                raise CheckFailed(f"attribution_patching should return {{name: tensor}} for the "
                                  f"names {names}, got "
                                  f"{sorted(got) if isinstance(got, dict) else type(got).__name__}.")
            expected = ref.attribution_patching(model, batch.tokens, batch.corrupted, metric, names)
            for name in names:
                expect_tensor(got[name], expected[name], f"attribution_patching()['{name}'] on {what}",
                              "(clean - corrupted) activation times the gradient of the metric on "
                              "the corrupted run, summed over the batch, divided by "
                              "metric(clean) - metric(corrupted)", atol=1e-4, rtol=1e-3)
    passed("attribution_patching", len(seeds))


# 7 · The circuit ----------------------------------------------------------------------------

def check_mean_ablation_patches(mean_ablation_patches, seeds=VISIBLE_SEEDS):
    learner = _exercise(mean_ablation_patches, "mean_ablation_patches")
    for seed in seeds:
        for model, batch, what in _cases(seed):
            g = _generator(seed)
            every = [(layer, head) for layer in range(model.config.n_layer)
                     for head in range(model.config.n_head)]
            keep = [every[int(i)] for i in torch.randperm(len(every), generator=g)[:3]]
            for circuit in (keep, every[:1], every):
                patches = learner(model, batch.corrupted, circuit)
                if not isinstance(patches, dict):
                    raise CheckFailed(f"mean_ablation_patches should return a dict {{name: fn}}, "
                                      f"got {type(patches).__name__}.")
                expected = ref.mean_ablation_patches(model, batch.corrupted, circuit)
                names = [f"blocks.{layer}.attn.hook_z" for layer in range(model.config.n_layer)]
                # The patches are the learner's code too: run them under the same guards.
                _, got_run = learner.run(run_with_cache, model, batch.tokens, names=names,
                                         patches=patches)
                _, want_run = run_with_cache(model, batch.tokens, names=names, patches=expected)
                for name in names:
                    expect_tensor(got_run[name], want_run[name],
                                  f"{name} when keeping heads {circuit} of {what}",
                                  "every head outside the circuit gets, at each position, its "
                                  "hook_z averaged over the reference prompts at that position; "
                                  "heads in the circuit keep their own", atol=1e-4)
    passed("mean_ablation_patches", len(seeds))


