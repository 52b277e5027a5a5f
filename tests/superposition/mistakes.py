"""Realistic wrong answers to the chapter 01 exercises. Every one must be rejected by its check.

Each is written the way a learner would write it, in the notebook's names (``generate_batch``,
``importance_weighted_loss`` ... refer to whatever the notebook defines)."""

import math

import torch
from tqdm.auto import tqdm


# reconstruct ---------------------------------------------------------------------------------

def reconstruct_without_bias(W, b, x, relu=True):
    out = torch.einsum("ihf,bih->bif", W, torch.einsum("ihf,bif->bih", W, x))
    return torch.relu(out) if relu else out


def reconstruct_always_relu(W, b, x, relu=True):
    out = torch.einsum("ihf,bih->bif", W, torch.einsum("ihf,bif->bih", W, x)) + b
    return torch.relu(out)


def reconstruct_relu_before_bias(W, b, x, relu=True):
    out = torch.einsum("ihf,bih->bif", W, torch.einsum("ihf,bif->bih", W, x))
    return (torch.relu(out) if relu else out) + b


def reconstruct_relu_on_hidden(W, b, x, relu=True):
    hidden = torch.einsum("ihf,bif->bih", W, x)
    if relu:
        hidden = torch.relu(hidden)
    return torch.einsum("ihf,bih->bif", W, hidden) + b


def reconstruct_in_place(W, b, x, relu=True):
    x += 0  # looks harmless, but writes into the caller's tensor
    x.mul_(1.0)
    out = torch.einsum("ihf,bih->bif", W, torch.einsum("ihf,bif->bih", W, x)) + b
    b.add_(0.1)
    return torch.relu(out) if relu else out


# generate_batch ------------------------------------------------------------------------------

def generate_batch_sparsity_for_density(batch_size, density, n_features, generator=None):
    shape = (batch_size, density.shape[0], n_features)
    present = torch.rand(shape, generator=generator) < 1 - density[:, None]
    return torch.where(present, torch.rand(shape, generator=generator), 0.0)


def generate_batch_ones(batch_size, density, n_features, generator=None):
    shape = (batch_size, density.shape[0], n_features)
    return (torch.rand(shape, generator=generator) < density[:, None]).float()


def generate_batch_one_mask_per_sample(batch_size, density, n_features, generator=None):
    shape = (batch_size, density.shape[0], n_features)
    present = torch.rand(batch_size, density.shape[0], 1, generator=generator) < density[:, None]
    return torch.where(present, torch.rand(shape, generator=generator), 0.0)


def generate_batch_same_mask_for_batch(batch_size, density, n_features, generator=None):
    shape = (batch_size, density.shape[0], n_features)
    present = torch.rand(1, density.shape[0], n_features, generator=generator) < density[:, None]
    return torch.where(present, torch.rand(shape, generator=generator), 0.0)


def generate_batch_normal(batch_size, density, n_features, generator=None):
    shape = (batch_size, density.shape[0], n_features)
    present = torch.rand(shape, generator=generator) < density[:, None]
    return torch.where(present, torch.randn(shape, generator=generator).abs().clamp(max=1), 0.0)


def generate_batch_transposed(batch_size, density, n_features, generator=None):
    shape = (density.shape[0], batch_size, n_features)
    present = torch.rand(shape, generator=generator) < density[:, None, None]
    return torch.where(present, torch.rand(shape, generator=generator), 0.0)


def generate_batch_float64(batch_size, density, n_features, generator=None):
    shape = (batch_size, density.shape[0], n_features)
    present = torch.rand(shape, generator=generator) < density[:, None]
    return torch.where(present, torch.rand(shape, generator=generator, dtype=torch.float64), 0.0)


def generate_batch_global_rng(batch_size, density, n_features, generator=None):
    shape = (batch_size, density.shape[0], n_features)
    present = torch.rand(shape) < density[:, None]  # forgets `generator`: the global RNG
    return torch.where(present, torch.rand(shape), 0.0)


def generate_batch_own_seed(batch_size, density, n_features, generator=None):
    generator = torch.Generator().manual_seed(0)  # "for reproducibility"
    shape = (batch_size, density.shape[0], n_features)
    present = torch.rand(shape, generator=generator) < density[:, None]
    return torch.where(present, torch.rand(shape, generator=generator), 0.0)


def generate_batch_mask_shared_by_instances(batch_size, density, n_features, generator=None):
    shape = (batch_size, density.shape[0], n_features)
    # one random number per feature of a sample, compared with each instance's density
    present = torch.rand(batch_size, 1, n_features, generator=generator) < density[:, None]
    return torch.where(present, torch.rand(shape, generator=generator), 0.0)


def generate_batch_one_magnitude_per_sample(batch_size, density, n_features, generator=None):
    shape = (batch_size, density.shape[0], n_features)
    present = torch.rand(shape, generator=generator) < density[:, None]
    magnitude = torch.rand(batch_size, density.shape[0], 1, generator=generator)
    return present.float() * magnitude


# importance_weighted_loss --------------------------------------------------------------------

def loss_importance_twice(x, x_hat, importance):
    return (importance**2 * (x - x_hat) ** 2).sum(dim=-1).mean(dim=0)


def loss_mean_over_features(x, x_hat, importance):
    return (importance * (x - x_hat) ** 2).mean(dim=(0, 2))


def loss_not_squared(x, x_hat, importance):
    return (importance * (x - x_hat).abs()).sum(dim=-1).mean(dim=0)


def loss_summed_to_scalar(x, x_hat, importance):
    return (importance * (x - x_hat) ** 2).sum(dim=-1).mean()


def loss_without_importance(x, x_hat, importance):
    return ((x - x_hat) ** 2).sum(dim=-1).mean(dim=0)


# train ---------------------------------------------------------------------------------------

def train_without_zero_grad(model, steps=10_000, batch_size=1024, lr=1e-3, seed=0, progress=True):
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for _ in range(steps):
        x = generate_batch(batch_size, model.density, model.n_features, generator)  # noqa: F821
        loss = importance_weighted_loss(x, model(x), model.importance)  # noqa: F821
        loss.sum().backward()
        optimizer.step()
        history.append(loss.detach())
    return torch.stack(history)


def train_with_sgd(model, steps=10_000, batch_size=1024, lr=1e-3, seed=0, progress=True):
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    history = []
    for _ in range(steps):
        x = generate_batch(batch_size, model.density, model.n_features, generator)  # noqa: F821
        loss = importance_weighted_loss(x, model(x), model.importance)  # noqa: F821
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()
        history.append(loss.detach())
    return torch.stack(history)


def train_on_one_batch(model, steps=10_000, batch_size=1024, lr=1e-3, seed=0, progress=True):
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    x = generate_batch(batch_size, model.density, model.n_features, generator)  # noqa: F821
    history = []
    for _ in range(steps):
        loss = importance_weighted_loss(x, model(x), model.importance)  # noqa: F821
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()
        history.append(loss.detach())
    return torch.stack(history)


def train_new_optimizer_every_step(model, steps=10_000, batch_size=1024, lr=1e-3, seed=0,
                                   progress=True):
    generator = torch.Generator().manual_seed(seed)
    history = []
    for _ in range(steps):
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)  # forgets Adam's moments
        x = generate_batch(batch_size, model.density, model.n_features, generator)  # noqa: F821
        loss = importance_weighted_loss(x, model(x), model.importance)  # noqa: F821
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()
        history.append(loss.detach())
    return torch.stack(history)


def train_unseeded(model, steps=10_000, batch_size=1024, lr=1e-3, seed=0, progress=True):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for _ in range(steps):
        x = generate_batch(batch_size, model.density, model.n_features)  # noqa: F821
        loss = importance_weighted_loss(x, model(x), model.importance)  # noqa: F821
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()
        history.append(loss.detach())
    return torch.stack(history)


def train_loss_after_update(model, steps=10_000, batch_size=1024, lr=1e-3, seed=0, progress=True):
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for _ in range(steps):
        x = generate_batch(batch_size, model.density, model.n_features, generator)  # noqa: F821
        loss = importance_weighted_loss(x, model(x), model.importance)  # noqa: F821
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()
        with torch.no_grad():  # the loss "after learning from this batch"
            history.append(importance_weighted_loss(x, model(x), model.importance))  # noqa: F821
    return torch.stack(history)


def train_noisy_but_right(model, steps=10_000, batch_size=1024, lr=1e-3, seed=0, progress=True):
    """Correct, with a progress bar, prints and warnings: must pass."""
    import warnings
    import sys
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for step in tqdm(range(steps)):  # ignores `progress`: the bar goes to stderr
        x = generate_batch(batch_size, model.density, model.n_features, generator)  # noqa: F821
        loss = importance_weighted_loss(x, model(x), model.importance)  # noqa: F821
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()
        history.append(loss.detach())
        print("step", step, file=sys.stderr)
        warnings.warn("just saying")
    return torch.stack(history)


# interference --------------------------------------------------------------------------------

def interference_including_self(W):
    unit = W / W.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return (torch.einsum("ihf,ihg->ifg", unit, W) ** 2).sum(dim=-1)


def interference_unnormalised(W):
    overlaps = torch.einsum("ihf,ihg->ifg", W, W) ** 2
    return overlaps.sum(dim=-1) - torch.diagonal(overlaps, dim1=-2, dim2=-1)


def interference_rows(W):
    unit = W / W.norm(dim=2, keepdim=True).clamp_min(1e-12)
    overlaps = torch.einsum("ihf,igf->ihg", unit, W) ** 2
    return overlaps.sum(dim=-1) - torch.diagonal(overlaps, dim1=-2, dim2=-1)


def interference_not_squared(W):
    unit = W / W.norm(dim=1, keepdim=True).clamp_min(1e-12)
    overlaps = torch.einsum("ihf,ihg->ifg", unit, W).abs()
    return overlaps.sum(dim=-1) - torch.diagonal(overlaps, dim1=-2, dim2=-1)


def interference_nan_for_zero_column(W):
    unit = W / W.norm(dim=1, keepdim=True)
    overlaps = torch.einsum("ihf,ihg->ifg", unit, W) ** 2
    return overlaps.sum(dim=-1) - torch.diagonal(overlaps, dim1=-2, dim2=-1)


# feature_dimensionality ----------------------------------------------------------------------

def dimensionality_unnormalised(W):
    norms = W.norm(dim=1)
    denominator = (torch.einsum("ihf,ihg->ifg", W, W) ** 2).sum(dim=-1)
    return torch.where(norms > 0, norms**2 / denominator.clamp_min(1e-24), 0.0)


def dimensionality_excluding_self(W):
    norms = W.norm(dim=1)
    unit = W / norms[:, None, :].clamp_min(1e-12)
    overlaps = torch.einsum("ihf,ihg->ifg", unit, W) ** 2
    denominator = overlaps.sum(dim=-1) - torch.diagonal(overlaps, dim1=-2, dim2=-1)
    return torch.where(norms > 0, norms**2 / denominator.clamp_min(1e-24), 0.0)


def dimensionality_nan_for_zero_column(W):
    norms = W.norm(dim=1)
    unit = W / norms[:, None, :]
    return norms**2 / (torch.einsum("ihf,ihg->ifg", unit, W) ** 2).sum(dim=-1)


def dimensionality_norm_not_squared(W):
    norms = W.norm(dim=1)
    unit = W / norms[:, None, :].clamp_min(1e-12)
    denominator = (torch.einsum("ihf,ihg->ifg", unit, W) ** 2).sum(dim=-1)
    return torch.where(norms > 0, norms / denominator.clamp_min(1e-24), 0.0)


def dimensionality_rows(W):
    norms = W.norm(dim=2)
    unit = W / norms[:, :, None].clamp_min(1e-12)
    denominator = (torch.einsum("ihf,igf->ihg", unit, W) ** 2).sum(dim=-1)
    return torch.where(norms > 0, norms**2 / denominator.clamp_min(1e-24), 0.0)


# dimensions_per_feature ----------------------------------------------------------------------

def dims_per_feature_over_n(W):
    return W.shape[2] / W.pow(2).sum(dim=(1, 2))


def dims_per_feature_norm_not_squared(W):
    return W.shape[1] / W.pow(2).sum(dim=(1, 2)).sqrt()


def dims_per_feature_all_instances(W):
    return (W.shape[1] / W.pow(2).sum()).expand(W.shape[0])


def dims_per_feature_inverted(W):
    return W.pow(2).sum(dim=(1, 2)) / W.shape[1]


# classify_phase ------------------------------------------------------------------------------

def classify_first_feature(W, threshold=0.5):
    norms = W.norm(dim=1)
    phase = torch.full(norms.shape[:1], 1, dtype=torch.long)
    cosine = (W[:, :, 0] * W[:, :, 1]).sum(dim=1) / (norms[:, 0] * norms[:, 1]).clamp_min(1e-12)
    phase[(norms[:, 1] >= threshold) & (cosine.abs() >= 0.5)] = 2
    phase[norms[:, 0] < threshold] = 0
    return phase


def classify_squared_norm(W, threshold=0.5):
    norms = W.pow(2).sum(dim=1)
    cosine = (W[:, :, 0] * W[:, :, 1]).sum(dim=1) / (norms[:, 0] * norms[:, 1]).sqrt().clamp_min(1e-12)
    phase = torch.full(norms.shape[:1], 1, dtype=torch.long)
    phase[(norms[:, 0] >= threshold) & (cosine.abs() >= 0.5)] = 2
    phase[norms[:, 1] < threshold] = 0
    return phase


def classify_ignoring_angle(W, threshold=0.5):
    norms = W.norm(dim=1)
    phase = torch.full(norms.shape[:1], 1, dtype=torch.long)
    phase[norms[:, 0] >= threshold] = 2
    phase[norms[:, 1] < threshold] = 0
    return phase


def classify_rows(W, threshold=0.5):
    norms = W.norm(dim=2)
    if norms.shape[1] < 2:
        norms = torch.cat([norms, norms], dim=1)
    phase = torch.full(norms.shape[:1], 1, dtype=torch.long)
    phase[norms[:, 0] >= threshold] = 2
    phase[norms[:, 1] < threshold] = 0
    return phase


def classify_ignoring_threshold(W, threshold=0.5):
    norms = W.norm(dim=1)
    cosine = (W[:, :, 0] * W[:, :, 1]).sum(dim=1) / (norms[:, 0] * norms[:, 1]).clamp_min(1e-12)
    phase = torch.full(norms.shape[:1], 1, dtype=torch.long)
    phase[(norms[:, 0] >= 0.5) & (cosine.abs() >= 0.5)] = 2
    phase[norms[:, 1] < 0.5] = 0
    return phase


def classify_float_result(W, threshold=0.5):
    norms = W.norm(dim=1)
    cosine = (W[:, :, 0] * W[:, :, 1]).sum(dim=1) / (norms[:, 0] * norms[:, 1]).clamp_min(1e-12)
    phase = torch.full(norms.shape[:1], 1.0)
    phase[(norms[:, 0] >= threshold) & (cosine.abs() >= 0.5)] = 2.0
    phase[norms[:, 1] < threshold] = 0.0
    return phase


# Hazards that are not wrong maths ------------------------------------------------------------

def loops_forever(*args, **kwargs):
    while True:
        pass


def swallows_interrupts(*args, **kwargs):
    while True:
        try:
            while True:
                pass
        except Exception:
            pass


def returns_nan(W):
    return torch.full((W.shape[0], W.shape[2]), math.nan)


def returns_list(W):
    return [0.0] * W.shape[0]


def raises_index_error(W, b, x, relu=True):
    return W[99]


# Each mistake, with a fragment of the message that must reject it: the reason it was written for.
MISTAKES = {
    "reconstruct": {
        reconstruct_without_bias: "relu=True) has wrong values",
        reconstruct_always_relu: "relu=False) has wrong values",
        reconstruct_relu_before_bias: "relu=True) has wrong values",
        reconstruct_relu_on_hidden: "relu=True) has wrong values",
        reconstruct_in_place: "changed its input (argument 2) in place",
        raises_index_error: "raised IndexError",
    },
    "generate_batch": {
        generate_batch_sparsity_for_density: "not 1 - density",
        generate_batch_ones: "magnitudes drawn uniformly from [0, 1]",
        generate_batch_one_mask_per_sample: "not present independently of each other",
        generate_batch_same_mask_for_batch: "every sample has the same features present",
        generate_batch_normal: "magnitudes drawn uniformly from [0, 1]",
        generate_batch_transposed: "expected shape (4000, 3, 6)",
        generate_batch_float64: "expected dtype torch.float32",
        generate_batch_global_rng: "different batches for two generators seeded alike",
        generate_batch_own_seed: "the same batch for generators seeded differently",
        generate_batch_mask_shared_by_instances: "correlated across instances",
        generate_batch_one_magnitude_per_sample: "magnitudes of two features present in the same",
    },
    "importance_weighted_loss": {
        loss_importance_twice: "has wrong values",
        loss_mean_over_features: "has wrong values",
        loss_not_squared: "has wrong values",
        loss_summed_to_scalar: "expected shape",
        loss_without_importance: "has wrong values",
    },
    "train": {
        train_without_zero_grad: "zero the gradients every step",
        train_with_sgd: "torch.optim.Adam",
        train_on_one_batch: "draw a new batch every step",
        train_new_optimizer_every_step: "create one torch.optim.Adam",
        train_unseeded: "generator seeded with `seed`",
        train_loss_after_update: "before the update",
    },
    "interference": {
        interference_including_self: "has wrong values",
        interference_unnormalised: "has wrong values",
        interference_rows: "expected shape",
        interference_not_squared: "has wrong values",
        interference_nan_for_zero_column: "NaN",
        returns_nan: "NaN",
    },
    "feature_dimensionality": {
        dimensionality_unnormalised: "has wrong values",
        dimensionality_excluding_self: "has wrong values",
        dimensionality_nan_for_zero_column: "NaN",
        dimensionality_norm_not_squared: "has wrong values",
        dimensionality_rows: "expected shape",
        returns_nan: "NaN",
    },
    "dimensions_per_feature": {
        dims_per_feature_over_n: "has wrong values",
        dims_per_feature_norm_not_squared: "has wrong values",
        dims_per_feature_all_instances: "has wrong values",
        dims_per_feature_inverted: "has wrong values",
        returns_list: "should be a torch.Tensor",
    },
    "classify_phase": {
        classify_first_feature: "has wrong values",
        classify_squared_norm: "has wrong values",
        classify_ignoring_angle: "has wrong values",
        classify_rows: "has wrong values",
        classify_ignoring_threshold: "threshold=0.8) for W",
        classify_float_result: "expected dtype torch.int64",
    },
}
