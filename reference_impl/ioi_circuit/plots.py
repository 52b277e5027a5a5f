"""Figures for chapter 04. Each function takes tensors and returns a matplotlib Figure whose axes,
colours and values are named, so that a reader needs no code to read it. Layer × head grids use
chapter 03's ``plot_head_grids``."""

import matplotlib.pyplot as plt
import numpy as np
import torch

from reference_impl.induction_heads.plots import plot_head_grids

__all__ = ["plot_accumulated", "plot_attribution", "plot_head_grids", "plot_position_grid",
           "plot_estimate_against_patching"]


def plot_accumulated(values, title):
    """The logit difference read from the residual stream after the embeddings and after each
    block: values (n_layer + 1,)."""
    values = torch.as_tensor(values).detach().numpy()
    labels = ["embeddings"] + [f"block {layer}" for layer in range(len(values) - 1)]
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(range(len(values)), values, "o-", color="black")
    for x, value in enumerate(values):
        ax.annotate(f"{value:.2f}", (x, value), textcoords="offset points", xytext=(0, 6),
                    ha="center", fontsize=8)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(range(len(values)), labels)
    ax.set_xlabel("residual stream after")
    ax.set_ylabel("logit(IO) − logit(S)")
    ax.set_title(title, fontsize=10)
    ax.margins(y=0.2)
    fig.tight_layout()
    return fig


def plot_attribution(values, labels, title):
    """Each part's direct contribution to the logit difference, a horizontal bar per part."""
    values = torch.as_tensor(values).detach().numpy()
    fig, ax = plt.subplots(figsize=(6, 0.22 * len(values) + 1.2))
    y = np.arange(len(values))[::-1]
    ax.barh(y, values, color=["tab:blue" if v >= 0 else "tab:red" for v in values])
    ax.set_yticks(y, labels, fontsize=8)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel("direct contribution to logit(IO) − logit(S)")
    ax.set_ylabel("part (head layer.head, MLP, embeddings)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_position_grid(grid, words, title, rows="layer", row_labels=None,
                       value="share of the clean metric"):
    """A (rows, pos) grid of patching results with the prompt's words along the x axis, red for
    positive, blue for negative, each cell's value written in it; ``row_labels`` name the rows
    (default: their index)."""
    grid = torch.as_tensor(grid).detach().float().numpy()
    fig, ax = plt.subplots(figsize=(0.5 * grid.shape[1] + 2, 0.45 * grid.shape[0] + 1.6))
    image = ax.imshow(grid, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    for (row, pos), cell in np.ndenumerate(grid):
        if abs(cell) >= 0.005:
            ax.text(pos, row, f"{cell:.2f}", ha="center", va="center", fontsize=6.5,
                    color="white" if abs(cell) > 0.6 else "black")
    ax.set_xticks(range(len(words)), words, rotation=60, fontsize=8)
    ax.set_yticks(range(grid.shape[0]), row_labels or range(grid.shape[0]), fontsize=8)
    ax.set_xlabel("position patched (the first prompt's words)")
    ax.set_ylabel(rows)
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, label=value, shrink=0.8)
    fig.tight_layout()
    return fig


def plot_estimate_against_patching(pairs, title):
    """Attribution-patching estimates against activation-patching results, one panel per grid:
    pairs is {grid name: (patched, estimated)}; the dotted line is where they would agree."""
    fig, axes = plt.subplots(1, len(pairs), figsize=(3.8 * len(pairs), 3.6), squeeze=False)
    for ax, (name, (patched, estimated)) in zip(axes[0], pairs.items()):
        x = torch.as_tensor(patched).detach().flatten().numpy()
        y = torch.as_tensor(estimated).detach().flatten().numpy()
        ax.scatter(x, y, s=14, alpha=0.7)
        low, high = min(x.min(), y.min(), 0) - 0.05, max(x.max(), y.max(), 1) + 0.05
        ax.plot([low, high], [low, high], "k:", lw=0.8, label="estimate = patching")
        ax.set_xlabel("activation patching (normalised)")
        ax.set_ylabel("attribution patching estimate")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
