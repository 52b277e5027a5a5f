"""Figures for chapter 05. Each function takes numbers and returns a matplotlib Figure whose axes,
colours and values are named, so that a reader needs no code to read it."""

import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["plot_mmcs_grid", "plot_tradeoff", "plot_density", "plot_concepts", "plot_steering"]


def plot_mmcs_grid(mmcs, dictionary_sizes, coefficients, n_true):
    """MMCS of toy SAEs: mmcs (len(dictionary_sizes), len(coefficients)), one cell per run."""
    values = np.asarray(mmcs, dtype=float)
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    image = ax.imshow(values, cmap="viridis", vmin=min(0.5, values.min()), vmax=1.0)
    for (row, col), value in np.ndenumerate(values):
        ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=9,
                color="black" if value > 0.85 else "white")
    ax.set_xticks(range(len(coefficients)), [f"{c:g}" for c in coefficients])
    ax.set_yticks(range(len(dictionary_sizes)),
                  [f"{d} ({d / n_true:g}×)" for d in dictionary_sizes])
    ax.set_xlabel("L1 coefficient λ")
    ax.set_ylabel(f"latents (× the {n_true} true features)")
    ax.set_title("recovery of the true features (MMCS)", fontsize=10)
    fig.colorbar(image, ax=ax, label="mean max cosine similarity")
    fig.tight_layout()
    return fig


def plot_tradeoff(points):
    """Sparsity against reconstruction: points {label: (l0, fvu)}."""
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for (label, (l0, fvu)), marker in zip(points.items(), "osD^v"):
        ax.scatter([l0], [fvu], s=60, marker=marker, label=label)
        ax.annotate(f"L0 {l0:.1f}, FVU {fvu:.3f}", (l0, fvu), textcoords="offset points",
                    xytext=(6, 4), fontsize=8)
    ax.set_xlabel("L0: active latents per token (lower is sparser)")
    ax.set_ylabel("fraction of variance unexplained\n(lower reconstructs better)")
    ax.set_title("the sparsity–reconstruction trade-off on world-5l", fontsize=10)
    # Room on the right and above for the labels; the lower left stays free for the legend.
    ax.set_xlim(0, 1.4 * max(l0 for l0, _ in points.values()))
    ax.set_ylim(0, 1.3 * max(fvu for _, fvu in points.values()))
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def plot_density(densities):
    """Histograms of log10 latent density: densities {label: (d_sae,) tensor}."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    densities = {label: torch.as_tensor(d).numpy() for label, d in densities.items()}
    rarest = min(d[d > 0].min() for d in densities.values())
    bins = np.linspace(min(-3.0, np.floor(np.log10(rarest))), 0, 33)
    for label, density in densities.items():
        dead = int((density == 0).sum())
        ax.hist(np.log10(density[density > 0]), bins=bins, alpha=0.6,
                label=f"{label} ({dead} never fire)")
    ax.set_xlabel("log10 of the share of tokens on which a latent fires")
    ax.set_ylabel("number of latents")
    ax.set_title("latent density on held-out text", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_concepts(concepts, latent_precision, neuron_precision, recall):
    """For each concept, the precision of the best SAE latent and of the best MLP neuron at the
    same recall, as paired horizontal bars."""
    fig, ax = plt.subplots(figsize=(6, 0.45 * len(concepts) + 1.8))
    y = np.arange(len(concepts))[::-1]
    ax.barh(y + 0.2, latent_precision, height=0.4, color="tab:blue", label="best SAE latent")
    ax.barh(y - 0.2, neuron_precision, height=0.4, color="tab:orange",
            label="best MLP neuron (block 2)")
    ax.set_yticks(y, concepts)
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"precision at recall {recall:g} (held-out half of the text)")
    ax.set_title("one unit as a classifier of a concept", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2)  # below
    fig.tight_layout()
    return fig


def plot_steering(alphas, mention_rate, loss, word):
    """Steering strength against how often completions say ``word`` and the loss on other text."""
    fig, left = plt.subplots(figsize=(6, 3.2))
    left.plot(alphas, mention_rate, "o-", color="tab:blue")
    left.set_xlabel("steering strength α (added along the latent's unit decoder direction)")
    left.set_ylabel(f"share of completions\nthat say “{word}”", color="tab:blue")
    left.set_ylim(-0.02, 1.02)
    right = left.twinx()
    right.plot(alphas, loss, "s--", color="tab:red")
    right.set_ylabel("loss on unrelated text (nats)", color="tab:red")
    left.set_title("steering with one latent", fontsize=10)
    fig.tight_layout()
    return fig
