"""Grading checks for chapter 01, toy models of superposition.

Each ``check_<exercise>(fn, seeds=...)`` grades one exercise on its own: it runs the learner's
function on inputs drawn from each seed and compares the result with the reference solution.
"""

import torch

from reference_impl.superposition import solutions as ref
from reference_impl.course.grading import CheckFailed, Exercise, expect_tensor, passed

SOLUTION_MODULE = ref.__name__
VISIBLE_SEEDS = (0, 1, 2)


def _generator(seed):
    return torch.Generator().manual_seed(seed)


def _shapes(seed):
    g = _generator(seed)
    instances, hidden, features, batch = (int(torch.randint(lo, hi, (), generator=g))
                                          for lo, hi in ((2, 5), (2, 4), (5, 9), (3, 7)))
    return g, instances, hidden, features, batch


def _exercise(fn, name, dependencies=()):
    return Exercise(fn, name, SOLUTION_MODULE, {d: getattr(ref, d) for d in dependencies})


def check_reconstruct(reconstruct, seeds=VISIBLE_SEEDS):
    learner = _exercise(reconstruct, "reconstruct")
    for seed in seeds:
        g, instances, hidden, features, batch = _shapes(seed)
        W = torch.randn(instances, hidden, features, generator=g)
        b = torch.randn(instances, features, generator=g)
        x = torch.rand(batch, instances, features, generator=g)
        for relu in (True, False):
            got = learner(W, b, x, relu=relu)
            expect_tensor(got, ref.reconstruct(W, b, x, relu=relu),
                          f"reconstruct(W, b, x, relu={relu})",
                          "compute h = Wx, then Wᵀh + b, and apply the ReLU last (only if relu=True)")
    passed("reconstruct", len(seeds))


def _seeded_call(learner, global_seed, *args):
    """Call the learner's function with the global random state seeded with ``global_seed``, and
    leave the global random state as it was (the learner's code may draw from it)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(global_seed)
        return learner(*args)


def _correlation(a, b):
    """Pearson correlation of two flat float tensors (0 if either is constant)."""
    a, b = a - a.mean(), b - b.mean()
    scale = (a.pow(2).sum() * b.pow(2).sum()).sqrt()
    return float((a * b).sum() / scale) if scale > 0 else 0.0


def check_generate_batch(generate_batch, seeds=VISIBLE_SEEDS):
    """The batch is random, so it is judged by its statistics on a large sample, and by whether it
    is reproducible from the generator alone."""
    learner = _exercise(generate_batch, "generate_batch")
    for seed in seeds:
        g = _generator(seed)
        density = torch.tensor([0.05, 0.3, 0.9])[torch.randperm(3, generator=g)]
        n_features, batch_size = 6, 4000
        x = _seeded_call(learner, seed + 1, batch_size, density, n_features, _generator(seed))
        expected_shape = (batch_size, len(density), n_features)
        if not isinstance(x, torch.Tensor):
            raise CheckFailed(f"generate_batch should return a torch.Tensor, got {type(x).__name__}.")
        if tuple(x.shape) != expected_shape:
            raise CheckFailed(f"generate_batch: expected shape {expected_shape} for batch_size "
                              f"{batch_size}, {len(density)} instances and {n_features} features, "
                              f"got {tuple(x.shape)}.")
        if x.dtype != torch.float32:
            raise CheckFailed(f"generate_batch: expected dtype torch.float32, got {x.dtype}.")
        if not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise CheckFailed("generate_batch: every value should lie in [0, 1].")
        x = x.detach()
        present = x != 0
        if (present[0] == present[1:]).all():
            raise CheckFailed("generate_batch: every sample has the same features present: draw "
                              "a new mask for every sample of the batch.")
        observed = present.float().mean(dim=(0, 2))
        for i in range(len(density)):
            if abs(observed[i] - density[i]) > 0.03:
                raise CheckFailed(
                    f"generate_batch: in an instance with density {density[i]:.2f}, "
                    f"{observed[i]:.2f} of the features are non-zero: a feature should be present "
                    f"with probability density (not 1 - density), separately in each instance.")
        magnitudes = x[present]
        if abs(magnitudes.mean() - 0.5) > 0.03 or abs(magnitudes.var() - 1 / 12) > 0.015:
            raise CheckFailed(
                f"generate_batch: present features have mean {magnitudes.mean():.2f} and variance "
                f"{magnitudes.var():.3f}, but magnitudes drawn uniformly from [0, 1] have mean 0.5 "
                f"and variance 0.083.")
        # Features must be present independently of each other and of the other samples.
        dense = present[:, (density - 0.3).abs().argmin()].float()
        together = (dense[:, 0] * dense[:, 1]).mean()
        if abs(together - 0.09) > 0.03:
            raise CheckFailed("generate_batch: features of one sample are not present "
                              "independently of each other: draw a separate random number for "
                              "every feature of every sample.")
        # ... and independently in each instance: with one random number per (sample, feature)
        # compared with every instance's density, the instances' masks are nested. The
        # correlation of independent masks of 24,000 entries has a standard deviation of 0.0065.
        pairs = [(_correlation(present[:, i].flatten().float(), present[:, j].flatten().float()),
                  i, j) for i in range(len(density)) for j in range(i + 1, len(density))]
        r, i, j = max(pairs, key=lambda pair: abs(pair[0]))
        if abs(r) > 0.05:
            low, high = sorted((float(density[i]), float(density[j])))
            raise CheckFailed(
                f"generate_batch: the presence of a feature is correlated across instances "
                f"(correlation {r:.2f} between the instances with densities {low:.2f} and "
                f"{high:.2f}): draw a separate random number for every instance too, not one "
                f"shared by all instances.")
        # The magnitudes of two features present in the same sample must be independent (about
        # 18,000 such pairs: a standard deviation of 0.0075 for independent magnitudes).
        both = present[..., :-1] & present[..., 1:]
        r = _correlation(x[..., :-1][both], x[..., 1:][both])
        if abs(r) > 0.1:
            raise CheckFailed(
                f"generate_batch: the magnitudes of two features present in the same sample are "
                f"correlated (correlation {r:.2f}): draw a separate uniform magnitude for every "
                f"feature of every sample, not one per sample.")
        # All randomness must come from `generator`: the same seed gives the same batch whatever
        # the global random state, and another seed gives another batch.
        again = _seeded_call(learner, seed + 2, batch_size, density, n_features, _generator(seed))
        if not isinstance(again, torch.Tensor) or not torch.equal(again.detach(), x):
            raise CheckFailed("generate_batch returned different batches for two generators "
                              "seeded alike: draw all randomness from `generator` "
                              "(torch.rand(..., generator=generator)), not from torch's global "
                              "random state.")
        other = _seeded_call(learner, seed + 1, batch_size, density, n_features,
                             _generator(seed + 1_000_003))
        if isinstance(other, torch.Tensor) and torch.equal(other.detach(), x):
            raise CheckFailed("generate_batch returned the same batch for generators seeded "
                              "differently: draw all randomness from the `generator` it is given, "
                              "not from a generator or seed of your own.")
    passed("generate_batch", len(seeds))


def check_importance_weighted_loss(importance_weighted_loss, seeds=VISIBLE_SEEDS):
    learner = _exercise(importance_weighted_loss, "importance_weighted_loss")
    for seed in seeds:
        g, instances, _, features, batch = _shapes(seed)
        x = torch.rand(batch, instances, features, generator=g)
        x_hat = torch.rand(batch, instances, features, generator=g)
        importance = torch.rand(instances, features, generator=g) + 0.5
        expect_tensor(learner(x, x_hat, importance),
                      ref.importance_weighted_loss(x, x_hat, importance),
                      "importance_weighted_loss(x, x_hat, importance)",
                      "weight each squared error once by its feature's importance, sum over "
                      "features, then average over the batch (one loss per instance)")
    passed("importance_weighted_loss", len(seeds))


def check_train(train, seeds=VISIBLE_SEEDS):
    """A few deterministic steps on a tiny model must land exactly where the reference lands."""
    learner = _exercise(train, "train", ("generate_batch", "importance_weighted_loss",
                                         "reconstruct"))
    for seed in seeds:
        g, instances, hidden, features, _ = _shapes(seed)
        settings = dict(n_features=features, n_hidden=hidden, n_instances=instances,
                        importance=torch.rand(features, generator=g) + 0.5,
                        density=torch.rand(instances, generator=g) * 0.5 + 0.2, seed=seed)
        steps, batch_size, lr = 5, 16, 0.01
        expected_model = ref.ToyModel(**settings)
        expected = ref.train(expected_model, steps=steps, batch_size=batch_size, lr=lr,
                             seed=seed, progress=False)
        model = ref.ToyModel(**settings)
        history = learner(model, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                          progress=False, mutable=(0,))
        # The weights first: when the training itself is wrong, the losses are wrong too, and
        # the hint about how to train is the one that helps.
        for name in ("W", "b"):
            expect_tensor(getattr(model, name).detach(), getattr(expected_model, name).detach(),
                          f"model.{name} after {steps} steps",
                          "create one torch.optim.Adam on model.parameters() before the loop, "
                          "draw a new batch every step from a generator seeded with `seed`, "
                          "minimise the sum of the instance losses, and zero the gradients "
                          "every step")
        what = f"the loss history of train(model, steps={steps}, ...)"
        expect_tensor(history, expected, what,
                      "record importance_weighted_loss(x, model(x), model.importance) of every "
                      "step, before the update")
    passed("train", len(seeds))


def _check_function_of_weights(fn, name, hint, seeds, zero_column=True):
    """Compare ``fn(W)`` with the reference on random weights (with one all-zero column, a
    feature that is not represented at all, unless ``zero_column`` is False)."""
    learner = _exercise(fn, name)
    for seed in seeds:
        g, instances, hidden, features, _ = _shapes(seed)
        W = torch.randn(instances, hidden, features, generator=g)
        if zero_column:
            W[0, :, -1] = 0
        expect_tensor(learner(W), getattr(ref, name)(W), f"{name}(W)", hint)
    passed(name, len(seeds))


def check_interference(interference, seeds=VISIBLE_SEEDS):
    _check_function_of_weights(interference, "interference",
                               "for each feature i (a column of W), sum (Ŵ_i · W_j)² over the "
                               "other features j ≠ i, with Ŵ_i the unit vector of W_i", seeds)


def check_feature_dimensionality(feature_dimensionality, seeds=VISIBLE_SEEDS):
    _check_function_of_weights(feature_dimensionality, "feature_dimensionality",
                               "features are the columns of W; divide ‖W_i‖² by the sum over all "
                               "j (i included) of (Ŵ_i · W_j)², and give a zero column D_i = 0",
                               seeds)


def check_dimensions_per_feature(dimensions_per_feature, seeds=VISIBLE_SEEDS):
    _check_function_of_weights(dimensions_per_feature, "dimensions_per_feature",
                               "divide the number of hidden dimensions m by the squared Frobenius "
                               "norm ‖W‖_F² of each instance", seeds, zero_column=False)


def _phase_cases(g):
    """Weights of every phase, with norms and angles near the decision boundaries."""
    cases = []
    for norm_1, norm_2, angle in [(1.0, 0.1, 3.1), (1.0, 0.6, 3.1), (0.1, 1.0, 0.0),
                                  (0.6, 0.6, 3.14), (1.2, 0.4, 3.14), (0.4, 1.2, 3.14),
                                  (1.0, 1.0, 1.57), (1.0, 0.9, 0.3), (0.0, 0.0, 0.0),
                                  (0.9, 0.55, 2.2), (1.0, 0.65, 1.2)]:
        rotation = float(torch.rand((), generator=g)) * 6.283
        angles = torch.tensor([rotation, rotation + angle])
        W = torch.stack([torch.cos(angles), torch.sin(angles)]) * torch.tensor([norm_1, norm_2])
        cases.append(W)
    return torch.stack(cases)


def check_classify_phase(classify_phase, seeds=VISIBLE_SEEDS):
    learner = _exercise(classify_phase, "classify_phase")
    for seed in seeds:
        g = _generator(seed)
        W = _phase_cases(g)
        W = W[torch.randperm(len(W), generator=g)]
        one_dimensional = W[:, :1]  # models with a single hidden dimension, as in the sweep
        for weights, threshold in ((W, 0.5), (one_dimensional, 0.5), (W, 0.8)):
            expect_tensor(learner(weights, threshold=threshold),
                          ref.classify_phase(weights, threshold=threshold),
                          f"classify_phase(W, threshold={threshold}) for W of shape "
                          f"{tuple(weights.shape)}",
                          "feature i is column i of W and is represented when ‖W_i‖ ≥ threshold; "
                          "feature 2 is in superposition when feature 1 is represented too and "
                          "|cos(W_1, W_2)| ≥ 0.5")
    passed("classify_phase", len(seeds))
