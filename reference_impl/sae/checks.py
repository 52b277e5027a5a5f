"""Grading checks for chapter 05, sparse autoencoders.

Each ``check_<exercise>(fn, seeds=...)`` grades one exercise on its own: it runs the learner's
function on inputs drawn from each seed and compares the result with the reference solution. The
SAEs are small random ones whose sizes change with the seed (biases and decoder norms far from
their initial values, so that an answer that skips one is wrong); the language-model checks use
small random GPT-2s and, on the first seed, the shipped ``world-5l`` with its SAE.
"""

import functools

import torch

from reference_impl.course.grading import (CheckFailed, Exercise, expect_number, expect_tensor,
                                         passed)
from reference_impl.sae import solutions as ref
from reference_impl.zoo import load_model, load_sae, random_test_model

SOLUTION_MODULE = ref.__name__
VISIBLE_SEEDS = (0, 1, 2)
# The functions the notebook hands over, which every answer may call.
GIVEN = ("SAE", "latents", "check_width", "masked_next_token_loss", "reset_optimizer_state")


def _generator(seed):
    return torch.Generator().manual_seed(seed)


def _exercise(fn, name, dependencies=()):
    # The encoders are what ``latents`` calls: an encoder that calls it would recurse.
    given = [d for d in GIVEN if not (name in ("encode", "topk_encode") and d == "latents")]
    return Exercise(fn, name, SOLUTION_MODULE,
                    {d: getattr(ref, d) for d in (*given, *dependencies)})


def _pick(g, lo, hi):
    return int(torch.randint(lo, hi, (), generator=g))


def random_sae(seed, k=None, d_in=None):
    """A small SAE with random weights: biases that matter and decoder rows of unequal norms."""
    g = _generator(seed)
    d_in = d_in or _pick(g, 4, 10)
    d_sae = _pick(g, 2 * d_in, 3 * d_in + 1)
    sae = ref.SAE(d_in, d_sae, k=k, hook_name=f"blocks.{seed % 2}.hook_resid_post", seed=seed)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(d_in, d_sae, generator=g))
        sae.b_enc.copy_(0.5 * torch.randn(d_sae, generator=g))
        sae.W_dec.copy_(torch.randn(d_sae, d_in, generator=g)
                        * (0.2 + 2 * torch.rand(d_sae, 1, generator=g)))
        sae.b_dec.copy_(torch.randn(d_in, generator=g))
    return sae


def _inputs(seed, sae, batch=None):
    g = _generator(1000 + seed)
    return 2 * torch.randn(batch or _pick(g, 5, 12), sae.W_enc.shape[0], generator=g)


def _saes(seed):
    """A ReLU SAE and a TopK SAE of the seed, with their inputs and a description."""
    relu = random_sae(seed)
    topk = random_sae(seed + 100, k=1 + seed % 3)
    return [(relu, _inputs(seed, relu), "a random ReLU SAE"),
            (topk, _inputs(seed + 100, topk), f"a random TopK SAE (k = {topk.k})")]


# 1 · The SAE ------------------------------------------------------------------------------

def check_encode(encode, seeds=VISIBLE_SEEDS):
    learner = _exercise(encode, "encode")
    for seed in seeds:
        sae = random_sae(seed)
        x = _inputs(seed, sae)
        got = learner(sae, x)
        if isinstance(got, torch.Tensor) and got.shape == (len(x), sae.W_enc.shape[1]) \
                and (got < 0).any():
            raise CheckFailed("encode returned negative latent activations: a latent is either "
                              "off (0) or on (> 0), so apply the ReLU last.")
        expect_tensor(got, ref.encode(sae, x), "encode(sae, x)",
                      "ReLU((x − b_dec) @ W_enc + b_enc), with W_enc of shape (d_in, d_sae)")
    passed("encode", len(seeds))


def check_decode(decode, seeds=VISIBLE_SEEDS):
    learner = _exercise(decode, "decode")
    for seed in seeds:
        sae = random_sae(seed)
        f = torch.relu(torch.randn(_pick(_generator(seed), 3, 8), sae.W_dec.shape[0],
                                   generator=_generator(seed)))
        expect_tensor(learner(sae, f), ref.decode(sae, f), "decode(sae, f)",
                      "f @ W_dec + b_dec, with W_dec of shape (d_sae, d_in); the decoder has no "
                      "nonlinearity")
    passed("decode", len(seeds))


def check_topk_encode(topk_encode, seeds=VISIBLE_SEEDS):
    learner = _exercise(topk_encode, "topk_encode")
    for seed in seeds:
        sae = random_sae(seed)
        x = _inputs(seed, sae)
        d_sae = sae.W_enc.shape[1]
        for k in (1, d_sae // 3, d_sae):
            got = learner(sae, x, k)
            if isinstance(got, torch.Tensor) and got.shape == (len(x), d_sae):
                if ((got != 0).sum(dim=-1) > k).any():
                    raise CheckFailed(f"topk_encode(sae, x, k={k}) left more than {k} latents "
                                      f"active in an input: keep the k largest pre-activations "
                                      f"of each input and set every other latent to exactly 0.")
                if (got < 0).any():
                    raise CheckFailed(f"topk_encode(sae, x, k={k}) returned negative latent "
                                      f"activations: apply a ReLU to the kept values.")
            expect_tensor(got, ref.topk_encode(sae, x, k), f"topk_encode(sae, x, k={k})",
                          "the k largest of (x − b_dec) @ W_enc + b_enc in each row, through a "
                          "ReLU, every other latent 0")
    passed("topk_encode", len(seeds))


# 2 · The loss and the training step ---------------------------------------------------------

def _unweighted_sparsity(sae, x):
    return ref.latents(sae, x).sum(dim=-1).mean()


def check_sae_loss(sae_loss, seeds=VISIBLE_SEEDS):
    learner = _exercise(sae_loss, "sae_loss", ("encode", "decode", "topk_encode"))
    for seed in seeds:
        for sae, x, what in _saes(seed):
            coefficient = 0.3 + seed
            got = learner(sae, x, coefficient)
            if not (isinstance(got, tuple) and len(got) == 3):
                raise CheckFailed("sae_loss should return (loss, reconstruction, sparsity), a "
                                  f"tuple of three 0-d tensors, got {type(got).__name__}.")
            loss, reconstruction, sparsity = got
            want_loss, want_reconstruction, want_sparsity = ref.sae_loss(sae, x, coefficient)
            for value, name in ((loss, "loss"), (reconstruction, "reconstruction"),
                                (sparsity, "sparsity")):
                if not isinstance(value, torch.Tensor) or value.ndim != 0:
                    raise CheckFailed(f"the {name} of sae_loss should be a 0-d tensor (a number "
                                      f"the optimiser can differentiate), got "
                                      f"{type(value).__name__}"
                                      f"{tuple(value.shape) if isinstance(value, torch.Tensor) else ''}.")
                if not value.requires_grad:
                    raise CheckFailed(f"the {name} of sae_loss cannot be differentiated: do not "
                                      f"detach it or compute it under torch.no_grad().")
            d_in, batch = x.shape[1], x.shape[0]
            r = reconstruction.item()
            for wrong, how in ((want_reconstruction.item() / d_in, "averaged over d_in"),
                               (want_reconstruction.item() * batch, "summed over the batch")):
                if abs(r - wrong) < 1e-4 * max(1, abs(wrong)) and abs(r - wrong) < abs(
                        r - want_reconstruction.item()):
                    raise CheckFailed(f"the reconstruction term of sae_loss on {what} is "
                                      f"{how}: sum the squared error over d_in and average "
                                      f"over the batch.")
            if abs(sparsity.item() - _unweighted_sparsity(sae, x).item()) < 1e-4 * max(
                    1, sparsity.item()) and abs(want_sparsity.item() - sparsity.item()) > 1e-4:
                raise CheckFailed(f"the sparsity term of sae_loss on {what} ignores the "
                                  f"decoder norms: weight each latent's activation by the norm "
                                  f"of its row of W_dec, or the SAE can shrink f and grow W_dec.")
            expect_number(reconstruction, want_reconstruction.item(),
                          f"the reconstruction term of sae_loss on {what}",
                          "‖decode(sae, f) − x‖², summed over d_in and averaged over the batch, "
                          "with f = latents(sae, x)")
            expect_number(sparsity, want_sparsity.item(), f"the sparsity term of sae_loss on {what}",
                          "Σ_i f_i ‖W_dec,i‖ per input, averaged over the batch")
            expect_number(loss, want_loss.item(), f"the loss of sae_loss on {what}",
                          "reconstruction + l1_coefficient × sparsity")
            # Right values can hide a wrong gradient: a part of the loss detached, or a square
            # root whose gradient at 0 is infinite.
            params = dict(sae.named_parameters())
            try:
                got_grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
            except RuntimeError:
                raise CheckFailed("the loss of sae_loss cannot be differentiated after sae_loss "
                                  "returns: leave backward() to training_step.") from None
            want_grads = torch.autograd.grad(want_loss, list(params.values()))
            for name, g, w in zip(params, got_grads, want_grads):
                g = torch.zeros_like(w) if g is None else g
                if not torch.isfinite(g).all():
                    raise CheckFailed(f"the loss of sae_loss on {what} has a NaN or infinite "
                                      f"gradient: a square root or a division reaches 0 "
                                      f"somewhere (take norms with .norm(), whose gradient at 0 "
                                      f"is 0).")
                if not torch.allclose(g, w, rtol=1e-4, atol=1e-5 * max(1.0, w.abs().max().item())):
                    raise CheckFailed(f"the loss of sae_loss on {what} has the right value but "
                                      f"the wrong gradient for sae.{name}: detach no part of it "
                                      f"(not f, not the decoder norms).")
    passed("sae_loss", len(seeds))


def check_training_step(training_step, seeds=VISIBLE_SEEDS):
    """A few deterministic steps on a tiny SAE must land exactly where the reference lands."""
    learner = _exercise(training_step, "training_step",
                        ("encode", "decode", "topk_encode", "sae_loss"))
    for seed in seeds:
        for index, (expected_sae, x, what) in enumerate(_saes(seed)):
            sae = random_sae(seed + 100 * index, k=expected_sae.k)
            expected_optimizer = torch.optim.Adam(expected_sae.parameters(), lr=0.05)
            optimizer = torch.optim.Adam(sae.parameters(), lr=0.05)
            for step in range(3):
                batch = x[step % 2::2]
                expected = ref.training_step(expected_sae, expected_optimizer, batch, 0.5)
                got = learner(sae, optimizer, batch, 0.5, mutable=(0, 1))
                if any(not torch.isfinite(p).all() for p in sae.parameters()):
                    raise CheckFailed(f"the SAE's parameters are NaN or infinite after step "
                                      f"{step + 1} of training_step on {what}: the loss or its "
                                      f"gradient divides by zero somewhere.")
                for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
                    expect_tensor(getattr(sae, name).detach(),
                                  getattr(expected_sae, name).detach(),
                                  f"sae.{name} after step {step + 1} of training_step on {what}",
                                  "clear the gradients (optimizer.zero_grad()), compute "
                                  "sae_loss(sae, x, l1_coefficient), call backward on the loss, "
                                  "then optimizer.step()")
                if isinstance(got, torch.Tensor):
                    raise CheckFailed("training_step returned a tensor: return the loss as a "
                                      "float (loss.item()), or the log of losses keeps every "
                                      "step's computation graph alive.")
                expect_number(got, expected, f"the loss training_step returned at step {step + 1}",
                              "return the loss of this batch, before the update, as a float")
    passed("training_step", len(seeds))


# 3 · Ground truth ---------------------------------------------------------------------------

def check_mmcs(mmcs, seeds=VISIBLE_SEEDS):
    learner = _exercise(mmcs, "mmcs")
    for seed in seeds:
        g = _generator(seed)
        d_in, n = _pick(g, 3, 8), _pick(g, 4, 10)
        features = torch.randn(n, d_in, generator=g)
        for d_sae in (n // 2, 2 * n):
            W_dec = torch.randn(d_sae, d_in, generator=g) * (0.1 + 3 * torch.rand(d_sae, 1,
                                                                                  generator=g))
            # Some latents point exactly (or exactly against) a feature's way, at another scale.
            W_dec[0] = 5 * features[0]
            W_dec[1] = -0.5 * features[1]
            expect_number(learner(W_dec, features), ref.mmcs(W_dec, features),
                          f"mmcs of {d_sae} decoder rows against {n} true features",
                          "for each true feature, the largest cosine similarity (signed) with "
                          "any decoder row; then the mean over the true features")
    passed("mmcs", len(seeds))


# 4 · Dead latents ---------------------------------------------------------------------------

def check_resample_dead_latents(resample_dead_latents, seeds=VISIBLE_SEEDS):
    learner = _exercise(resample_dead_latents, "resample_dead_latents",
                        ("encode", "decode", "topk_encode"))
    for seed in seeds:
        g = _generator(seed)
        for index, (expected_sae, x, what) in enumerate(_saes(seed)):
            d_sae = expected_sae.W_enc.shape[1]
            cases = {"some dead latents": torch.rand(d_sae, generator=g) < 0.3,
                     "more dead latents than inputs": torch.arange(d_sae) < len(x) + 2,
                     "no dead latent": torch.zeros(d_sae, dtype=torch.bool)}
            for case, dead in cases.items():
                expected_sae = random_sae(seed + 100 * index, k=expected_sae.k)
                sae = random_sae(seed + 100 * index, k=expected_sae.k)
                ref.resample_dead_latents(expected_sae, x, dead)
                before = dict(sae.named_parameters())
                learner(sae, x, dead, mutable=(0,))
                for name, param in sae.named_parameters():
                    if param is not before[name] or not (param.is_leaf and param.requires_grad):
                        raise CheckFailed(f"after resample_dead_latents, sae.{name} is no longer "
                                          f"the trainable parameter the optimiser holds: change "
                                          f"it in place under torch.no_grad() (sae.W_dec[i] = "
                                          f"...), do not replace it.")
                for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
                    expect_tensor(getattr(sae, name).detach(),
                                  getattr(expected_sae, name).detach(),
                                  f"sae.{name} after resample_dead_latents on {what}, {case}",
                                  "rank inputs by squared reconstruction error, worst first; "
                                  "dead latent j takes input j − b_dec normalised as its "
                                  "decoder row, that times 0.2 × the mean norm of the live "
                                  "encoder columns as its encoder column, and bias 0")
    passed("resample_dead_latents", len(seeds))


# 5 · Evaluating an SAE ----------------------------------------------------------------------

def check_sae_statistics(sae_statistics, seeds=VISIBLE_SEEDS):
    learner = _exercise(sae_statistics, "sae_statistics", ("encode", "decode", "topk_encode"))
    for seed in seeds:
        for sae, x, what in _saes(seed):
            got = learner(sae, x)
            expected = ref.sae_statistics(sae, x)
            if not isinstance(got, dict) or set(got) != set(expected):
                raise CheckFailed(f"sae_statistics should return a dict with the keys "
                                  f"{sorted(expected)}, got "
                                  f"{sorted(got) if isinstance(got, dict) else type(got).__name__}.")
            expect_number(got["l0"], expected["l0"], f"l0 on {what}",
                          "the number of latents > 0 in each input, averaged over inputs")
            expect_number(got["fvu"], expected["fvu"], f"fvu on {what}",
                          "Σ‖x − x̂‖² over the whole batch divided by Σ‖x − mean(x)‖², with the "
                          "mean over the batch")
            expect_tensor(got["density"], expected["density"], f"density on {what}",
                          "for each latent, the share of inputs on which it is > 0")
    passed("sae_statistics", len(seeds))


@functools.lru_cache(maxsize=1)
def _shipped():
    model, tokenizer = load_model("world-5l")
    return model, tokenizer, load_sae("world-5l-sae")


def _model_cases(seed):
    """(model, sae, tokens, loss mask, description): a random GPT-2 with a random SAE (TopK on
    even seeds, ReLU on odd ones) on one of its residual streams, and on the first visible seed
    the shipped model and SAE."""
    from reference_impl.sae.data import world_texts
    from reference_impl.zoo.training import encode_batch

    model = random_test_model(seed, 2, attention_only=seed % 2 == 1)
    g = _generator(seed)
    sae = random_sae(seed, k=2 + seed % 3 if seed % 2 == 0 else None, d_in=model.config.n_embd)
    sae.cfg["hook_name"] = f"blocks.{seed % 2}.hook_resid_post"
    with torch.no_grad():
        sae.W_dec.mul_(0.3)
    tokens = torch.randint(1, model.config.vocab_size, (3, _pick(g, 6, 10)), generator=g)
    tokens[:, 0] = 0
    mask = torch.ones(3, tokens.shape[1] - 1)
    mask[0, -2:] = 0  # a shorter text, padded
    cases = [(model, sae, tokens, mask, f"a random 2-layer model with a "
                                        f"{'ReLU' if sae.k is None else 'TopK'} SAE at "
                                        f"{sae.cfg['hook_name']}")]
    if seed == 0:
        shipped, tokenizer, shipped_sae = _shipped()
        tokens, mask = encode_batch(tokenizer, world_texts(6, seed=seed))
        cases.append((shipped, shipped_sae, tokens, mask, "world-5l with world-5l-sae"))
    return cases


def check_ce_loss_recovered(ce_loss_recovered, seeds=VISIBLE_SEEDS):
    learner = _exercise(ce_loss_recovered, "ce_loss_recovered",
                        ("encode", "decode", "topk_encode"))
    keys = ("clean", "sae", "zero", "recovered")
    for seed in seeds:
        for model, sae, tokens, mask, what in _model_cases(seed):
            got = learner(model, sae, tokens, mask)
            expected = ref.ce_loss_recovered(model, sae, tokens, mask)
            if not isinstance(got, dict) or set(got) != set(keys):
                raise CheckFailed(f"ce_loss_recovered should return a dict with the keys "
                                  f"{list(keys)}, got "
                                  f"{sorted(got) if isinstance(got, dict) else type(got).__name__}.")
            hints = {"clean": "masked_next_token_loss of the model's own logits",
                     "sae": "the activation at sae.cfg['hook_name'] replaced by "
                            "decode(sae, latents(sae, activation)) at every position but 0",
                     "zero": "the activation set to zero at every position but 0",
                     "recovered": "(zero − sae) / (zero − clean)"}
            for key in keys:
                expect_number(got[key], expected[key], f"ce_loss_recovered()['{key}'] on {what}",
                              hints[key], tol=1e-3)
    passed("ce_loss_recovered", len(seeds))


# 6 · Reading features -----------------------------------------------------------------------

def _classifier_case(seed):
    g = _generator(seed)
    n, units = _pick(g, 30, 60), _pick(g, 3, 7)
    labels = torch.rand(n, generator=g) < 0.3
    labels[:2] = True
    activations = torch.randn(n, units, generator=g) + 1.5 * labels[:, None] * torch.rand(
        units, generator=g)
    activations = torch.round(activations * 4) / 4  # ties
    return activations, labels


def check_precision_recall(precision_recall, seeds=VISIBLE_SEEDS):
    learner = _exercise(precision_recall, "precision_recall")
    for seed in seeds:
        activations, labels = _classifier_case(seed)
        activations = torch.relu(activations)
        activations[:, 0] = 0  # a unit that never fires
        got = learner(activations, labels)
        if not (isinstance(got, tuple) and len(got) == 2):
            raise CheckFailed("precision_recall should return (precision, recall), two tensors "
                              f"of shape (units,), got {type(got).__name__}.")
        precision, recall = ref.precision_recall(activations, labels)
        expect_tensor(got[0], precision, "the precision of each unit",
                      "of the inputs on which the unit is > 0, the share that are positives (0 "
                      "for a unit that never fires)")
        expect_tensor(got[1], recall, "the recall of each unit",
                      "of the positives, the share on which the unit is > 0")
    passed("precision_recall", len(seeds))


def check_precision_at_recall(precision_at_recall, seeds=VISIBLE_SEEDS):
    learner = _exercise(precision_at_recall, "precision_at_recall")
    for seed in seeds:
        activations, labels = _classifier_case(seed)
        for recall in (0.5, 0.8, 1.0):
            expect_tensor(learner(activations, labels, recall),
                          ref.precision_at_recall(activations, labels, recall),
                          f"precision_at_recall(..., recall={recall})",
                          "the threshold is the activation of the positive ranked "
                          "⌈recall × positives⌉-th from the top; every input at or above it, "
                          "ties included, counts as predicted")
    passed("precision_at_recall", len(seeds))


# 7 · Steering -------------------------------------------------------------------------------

def check_steer(steer, seeds=VISIBLE_SEEDS):
    learner = _exercise(steer, "steer")
    for seed in seeds:
        model = random_test_model(seed, 2, attention_only=False)
        g = _generator(seed)
        tokens = torch.randint(1, model.config.vocab_size, (3, _pick(g, 3, 6)), generator=g)
        tokens[:, 0] = 0
        direction = torch.randn(model.config.n_embd, generator=g)
        hook = f"blocks.{seed % 2}.hook_resid_post"
        for alpha in (0.0, 4.0):
            expect_tensor(learner(model, tokens, hook, direction, alpha, 4),
                          ref.steer(model, tokens, hook, direction, alpha, 4),
                          f"steer(..., alpha={alpha}, n_new=4) at {hook}",
                          "at every step, run the whole sequence so far with alpha × direction "
                          "added to the activation at every position, append the argmax of the "
                          "last position's logits, and return only the new tokens")
    passed("steer", len(seeds))
