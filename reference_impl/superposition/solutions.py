"""Chapter 01 reference solutions: toy models of superposition.

Every exercise of the chapter is one function here. The chapter notebooks are generated from these
functions: the body after the docstring is the solution region that learners write themselves.

Shapes follow one convention throughout: a stack of independent models ("instances") is trained
at once, so weights are ``W: (instances, hidden, features)`` and batches are
``x: (batch, instances, features)``. Feature density ``p`` is the probability that a feature is
non-zero in a sample (sparsity is ``S = 1 - p``).
"""

import math

import torch
from torch import nn
from tqdm.auto import tqdm


class ToyModel(nn.Module):
    """A stack of independent toy models ``x' = ReLU(WᵀWx + b)`` (or without the ReLU).

    Each instance has its own weights, feature importances and feature density, so one training
    run sweeps many settings at once.
    """

    def __init__(self, n_features, n_hidden, n_instances=1, importance=None, density=1.0,
                 relu=True, seed=0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        W = torch.empty(n_instances, n_hidden, n_features)
        # Xavier-normal initialisation, drawn from our own generator so runs are reproducible.
        std = math.sqrt(2.0 / (n_hidden + n_features))
        self.W = nn.Parameter(torch.randn(W.shape, generator=generator) * std)
        self.b = nn.Parameter(torch.zeros(n_instances, n_features))
        importance = torch.ones(n_features) if importance is None else torch.as_tensor(importance)
        self.register_buffer("importance",
                             importance.float().expand(n_instances, n_features).clone())
        self.register_buffer("density",
                             torch.as_tensor(density, dtype=torch.float32).expand(n_instances).clone())
        self.relu = relu

    @property
    def n_features(self):
        return self.W.shape[-1]

    def forward(self, x):
        return reconstruct(self.W, self.b, x, relu=self.relu)


def reconstruct(W, b, x, relu=True):
    """Run the toy model: compress ``x`` to ``h = Wx``, then reconstruct ``x' = ReLU(Wᵀh + b)``.

    W: (instances, hidden, features); b: (instances, features); x: (batch, instances, features).
    With ``relu=False`` the output is the linear reconstruction ``WᵀWx + b``.
    Returns x': (batch, instances, features).
    """
    hidden = torch.einsum("ihf,bif->bih", W, x)
    out = torch.einsum("ihf,bih->bif", W, hidden) + b
    return torch.relu(out) if relu else out


def generate_batch(batch_size, density, n_features, generator=None):
    """Sample sparse feature vectors.

    density: (instances,) tensor, the probability that each feature is present in an instance.
    Every feature of every sample is present independently with that probability, and a present
    feature has a magnitude drawn uniformly from [0, 1]; absent features are exactly 0.
    Draw all randomness from ``generator`` (``torch.rand(..., generator=generator)``).
    Returns a float32 tensor of shape (batch_size, instances, n_features).
    """
    shape = (batch_size, density.shape[0], n_features)
    present = torch.rand(shape, generator=generator) < density[:, None]
    magnitude = torch.rand(shape, generator=generator)
    return torch.where(present, magnitude, torch.zeros(()))


def importance_weighted_loss(x, x_hat, importance):
    """The reconstruction loss of each instance: ``mean over batch of Σ_i I_i (x_i - x'_i)²``.

    x, x_hat: (batch, instances, features); importance: (instances, features).
    Returns a tensor of shape (instances,).
    """
    return (importance * (x - x_hat) ** 2).sum(dim=-1).mean(dim=0)


def train(model, steps=10_000, batch_size=1024, lr=1e-3, seed=0, progress=True):
    """Train every instance of a ``ToyModel`` at once with Adam.

    Each step draws a fresh batch with ``generate_batch(batch_size, model.density,
    model.n_features, generator)`` from ``generator = torch.Generator().manual_seed(seed)``,
    and minimises the sum over instances of ``importance_weighted_loss(x, model(x),
    model.importance)`` (instances are independent, so the sum trains each one separately).
    Show a tqdm progress bar unless ``progress`` is False.
    Returns the per-instance losses of every step, a tensor of shape (steps, instances).
    """
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for _ in tqdm(range(steps), disable=not progress, desc="training"):
        x = generate_batch(batch_size, model.density, model.n_features, generator)
        loss = importance_weighted_loss(x, model(x), model.importance)
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()
        history.append(loss.detach())
    return torch.stack(history)


def interference(W):
    """How much every other feature leaks into feature i's direction: ``Σ_{j≠i} (Ŵ_i · W_j)²``.

    W: (instances, hidden, features); W_i is column i and Ŵ_i its unit vector
    (a feature with a zero column has zero interference).
    Returns (instances, features).
    """
    norms = W.norm(dim=1, keepdim=True)
    unit = W / norms.clamp_min(1e-12)
    overlaps = torch.einsum("ihf,ihg->ifg", unit, W) ** 2
    return overlaps.sum(dim=-1) - torch.diagonal(overlaps, dim1=-2, dim2=-1)


def feature_dimensionality(W):
    """The fraction of a dimension each feature gets: ``D_i = ‖W_i‖² / Σ_j (Ŵ_i · W_j)²``.

    W: (instances, hidden, features); the sum runs over every feature j, i included.
    A feature whose column is zero gets D_i = 0.
    Returns (instances, features).
    """
    norms = W.norm(dim=1)
    unit = W / norms[:, None, :].clamp_min(1e-12)
    denominator = (torch.einsum("ihf,ihg->ifg", unit, W) ** 2).sum(dim=-1)
    return torch.where(norms > 1e-12, norms**2 / denominator.clamp_min(1e-24), 0.0)


def dimensions_per_feature(W):
    """Hidden dimensions per embedded feature: ``m / ‖W‖_F²`` for each instance.

    W: (instances, hidden, features), with m = hidden. Returns (instances,).
    """
    return W.shape[1] / W.pow(2).sum(dim=(1, 2))


NOT_REPRESENTED, DEDICATED, SUPERPOSITION = 0, 1, 2


def classify_phase(W, threshold=0.5):
    """Classify how a toy model stores its second feature (feature index 1).

    W: (instances, hidden, 2). A feature is represented when its column norm ‖W_i‖ is at least
    ``threshold``. For each instance, return
    - ``NOT_REPRESENTED`` (0) if feature 2 is not represented,
    - ``SUPERPOSITION`` (2) if both features are represented and share a direction
      (|cos(W_1, W_2)| ≥ 0.5, e.g. an antipodal pair),
    - ``DEDICATED`` (1) otherwise (feature 2 is represented in a direction of its own).
    Returns a long tensor of shape (instances,).
    """
    norms = W.norm(dim=1)
    represented = norms >= threshold
    cosine = (W[:, :, 0] * W[:, :, 1]).sum(dim=1) / (norms[:, 0] * norms[:, 1]).clamp_min(1e-12)
    shared = represented[:, 0] & (cosine.abs() >= 0.5)
    phase = torch.full(norms.shape[:1], DEDICATED, dtype=torch.long)
    phase[represented[:, 1] & shared] = SUPERPOSITION
    phase[~represented[:, 1]] = NOT_REPRESENTED
    return phase


def neighbour_angles(W):
    """Angles in degrees between angularly neighbouring feature vectors of 2-d models.

    W: (instances, 2, features). Returns (instances, features), going once around the circle."""
    angles = torch.sort(torch.atan2(W[:, 1], W[:, 0]), dim=-1).values
    gaps = torch.diff(angles, dim=-1, append=angles[:, :1] + 2 * math.pi)
    return torch.rad2deg(gaps)


def pentagon_instances(W, b):
    """Which instances of an n=5, m=2 model store their features as a regular pentagon.

    The rule: all five norms within 5 % of each other, every angle between neighbours 72° ± 5°,
    every feature dimensionality within 0.03 of 2/5, and every bias negative."""
    norms = W.norm(dim=1)
    equal_norms = norms.min(dim=-1).values >= 0.95 * norms.max(dim=-1).values
    regular = ((neighbour_angles(W) - 72).abs() <= 5).all(dim=-1)
    two_fifths = ((feature_dimensionality(W) - 0.4).abs() <= 0.03).all(dim=-1)
    return equal_norms & regular & two_fifths & (b < 0).all(dim=-1)


def phase_diagram_weights(relative_importance, density, copies=10, steps=500, seed=0):
    """Train n=2, m=1 models on every (relative importance r, density p) cell of a grid.

    Feature 1 has importance 1 and feature 2 importance r; both have density p. Some starting
    weights trap feature 2 in a poor local minimum, so every cell is trained from ``copies``
    random starts (all in one stack) and the copy with the lowest final loss is kept.
    Returns W: (len(density) * len(relative_importance), 1, 2), row-major in (p, r).
    """
    p, r = torch.meshgrid(density, relative_importance, indexing="ij")
    cells = p.numel()
    importance = torch.stack([torch.ones(cells), r.reshape(cells)], dim=-1).repeat(copies, 1)
    model = ToyModel(2, 1, n_instances=copies * cells, importance=importance,
                     density=p.reshape(cells).repeat(copies), seed=seed)
    history = train(model, steps=steps, batch_size=128, lr=1e-2, seed=seed)
    final_loss = history[-steps // 5:].mean(dim=0).view(copies, cells)
    best = final_loss.argmin(dim=0)
    return model.W.detach().view(copies, cells, 1, 2)[best, torch.arange(cells)]
