"""Figures for chapter 01. Each function takes tensors and returns a matplotlib Figure."""

import matplotlib.pyplot as plt
import numpy as np
import torch


def plot_gram_and_norms(W, interference, titles):
    """Per instance: the WᵀW heatmap above bars of feature norms ‖W_i‖, coloured by how much of
    feature i's direction other features share (its interference)."""
    W, interference = W.detach(), interference.detach()
    n_instances, _, n_features = W.shape
    fig, axes = plt.subplots(2, n_instances, figsize=(2.4 * n_instances, 5.2),
                             gridspec_kw={"height_ratios": [1, 1.1]}, squeeze=False)
    colours = plt.cm.viridis
    for i in range(n_instances):
        gram = (W[i].T @ W[i]).numpy()
        # Reversed so that red is positive and blue negative, as the chapter describes it.
        gram_image = axes[0, i].imshow(gram, cmap="RdBu_r", vmin=-1.2, vmax=1.2)
        axes[0, i].set_title(titles[i], fontsize=9)
        axes[0, i].set_xticks([])
        axes[0, i].set_yticks([])
        norms = W[i].norm(dim=0).numpy()
        share = (interference[i] / W[i].norm(dim=0).pow(2).clamp_min(1e-12)).clamp(0, 1).numpy()
        axes[1, i].barh(np.arange(n_features), norms, color=colours(share))
        axes[1, i].invert_yaxis()
        axes[1, i].set_xlim(0, 1.3)
        axes[1, i].set_yticks([])
        axes[1, i].set_xlabel("‖W_i‖", fontsize=8)
    axes[0, 0].set_ylabel("WᵀW")
    fig.colorbar(gram_image, ax=axes[0, :].tolist(), shrink=0.8).set_label("W_i · W_j")
    axes[1, 0].set_ylabel("features (most important on top)")
    bar = fig.colorbar(plt.cm.ScalarMappable(cmap=colours), ax=axes[1, :].tolist(), shrink=0.8)
    bar.set_label("interference / ‖W_i‖²")
    return fig


def plot_feature_vectors(W, labels):
    """The columns of 2-dimensional weight matrices as arrows, one panel per instance."""
    W = W.detach()
    n_instances = W.shape[0]
    columns = min(n_instances, 4)
    rows = (n_instances + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.6 * rows), squeeze=False)
    for ax in axes.flat[n_instances:]:
        ax.axis("off")
    for i, ax in enumerate(axes.flat[:n_instances]):
        for j in range(W.shape[2]):
            x, y = W[i, :, j].tolist()
            ax.plot([0, x], [0, y], color=plt.cm.tab10(j), lw=2)
            ax.scatter([x], [y], color=plt.cm.tab10(j), s=18)
        ax.set_xlim(-1.5, 1.5)
        ax.set_ylim(-1.5, 1.5)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(labels[i], fontsize=9)
    return fig


def plot_dimensionality(density, dims_per_feature, feature_dims):
    """Dimensions per feature against density, with each feature's D_i behind it."""
    density = np.asarray(density)
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for k, d in enumerate(density):
        ax.scatter(np.full(feature_dims.shape[1], d), feature_dims[k], s=4, color="tab:blue",
                   alpha=0.15, lw=0)
    ax.plot(density, dims_per_feature, color="black", marker="o", ms=3, label="m / ‖W‖²_F")
    for fraction, label in [(1, "1"), (1 / 2, "1/2"), (2 / 5, "2/5"), (1 / 3, "1/3")]:
        ax.axhline(fraction, color="grey", lw=0.6, ls=":")
        ax.text(density.min(), fraction, f" {label}", va="bottom", fontsize=8, color="grey")
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("feature density p (sparser to the right)")
    ax.set_ylabel("dimensions per feature")
    ax.set_ylim(0, 1.1)
    ax.legend(loc="upper left")
    return fig


def plot_phase_diagram(phase, relative_importance, density):
    """The phase of feature 2 for every (relative importance, density) cell of the sweep."""
    phase = torch.as_tensor(phase).reshape(len(density), len(relative_importance)).numpy()
    colours = plt.matplotlib.colors.ListedColormap(["#d9d9d9", "#4c9be8", "#e8744c"])
    fig, ax = plt.subplots(figsize=(5.4, 4.2))
    ax.pcolormesh(_edges(relative_importance), _edges(density), phase, cmap=colours, vmin=-0.5,
                  vmax=2.5)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("relative importance of feature 2")
    ax.set_ylabel("feature density p")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours(k))
               for k in range(3)]
    ax.legend(handles, ["not represented", "dedicated dimension", "superposition"],
              loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, fontsize=8)
    fig.tight_layout()
    return fig


def _edges(centres):
    """Cell edges halfway (in log space) between log-spaced centres."""
    logs = np.log(np.asarray(centres, dtype=float))
    middle = (logs[1:] + logs[:-1]) / 2
    return np.exp(np.concatenate([[2 * logs[0] - middle[0]], middle,
                                  [2 * logs[-1] - middle[-1]]]))


def plot_training(history, labels):
    """Loss curves of every instance of a training run."""
    fig, ax = plt.subplots(figsize=(6, 3))
    for i, label in enumerate(labels):
        ax.plot(history[:, i].numpy(), label=label, lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=7)
    return fig
