"""Figures for chapter 03. Each function takes tensors (or the training log) and returns a
matplotlib Figure."""

import matplotlib.pyplot as plt
import numpy as np
import torch


def plot_attention_patterns(patterns, tokens=None, title="", columns=2):
    """One sequence's attention pattern for every head, a heatmap of query × key per head, in a
    grid of ``columns`` heads side by side: patterns (layers, heads, query, key). With
    ``tokens`` (the sequence's token strings) both axes of every panel are labelled with them."""
    patterns = torch.as_tensor(patterns).detach()
    n_layers, n_heads, length = patterns.shape[:3]
    rows = -(-n_layers * n_heads // columns)
    side = max(2.2, 0.17 * length)  # inches per panel: room for a label per token
    fig, axes = plt.subplots(rows, columns, figsize=(side * columns + 1.2, side * rows + 0.6),
                             squeeze=False, layout="constrained")
    for ax in axes.flat[n_layers * n_heads:]:
        ax.axis("off")
    for index, ax in enumerate(axes.flat[:n_layers * n_heads]):
        layer, head = divmod(index, n_heads)
        image = ax.imshow(patterns[layer, head].numpy(), cmap="Blues", vmin=0, vmax=1)
        ax.set_title(f"head {layer}.{head}", fontsize=9)
        if tokens is None:
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            ax.set_xticks(range(length), tokens, rotation=90, fontsize=6.5)
            ax.set_yticks(range(length), tokens, fontsize=6.5)
        ax.set_xlabel("key (attended to)", fontsize=8)
        ax.set_ylabel("query (attending)", fontsize=8)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.5, label="attention weight")
    fig.suptitle(title, fontsize=10)
    return fig


def _shade_copies(ax, length):
    ax.axvspan(0.5, length + 0.5, color="tab:blue", alpha=0.07, lw=0)
    ax.axvspan(length + 0.5, 2 * length + 0.5, color="tab:orange", alpha=0.07, lw=0)
    ax.text(length / 2 + 0.5, 1.0, "first copy", transform=ax.get_xaxis_transform(),
            ha="center", va="bottom", fontsize=8)
    ax.text(1.5 * length + 0.5, 1.0, "second copy", transform=ax.get_xaxis_transform(),
            ha="center", va="bottom", fontsize=8)


def plot_copy_losses(loss_by_token, length):
    """Mean loss on every token (tokens 1 .. 2L) of ``[BOS] + r + r`` batches."""
    loss = torch.as_tensor(loss_by_token).detach().numpy()
    fig, ax = plt.subplots(figsize=(7, 3))
    _shade_copies(ax, length)
    ax.plot(np.arange(1, len(loss) + 1), loss, marker="o", ms=3, color="black")
    ax.axhline(np.log(288), color="grey", ls=":", lw=0.8)
    ax.text(1, np.log(288), " uniform guess", va="bottom", fontsize=8, color="grey")
    ax.set_xlabel("token position")
    ax.set_ylabel("loss (nats)")
    fig.tight_layout()
    return fig


def plot_head_grids(grids, cmap="viridis", vmin=0, vmax=None, fmt="{:.2f}", rows="layer",
                    columns="head"):
    """Side-by-side annotated heatmaps, by default layer × head: grids is {title: (rows, columns)}."""
    fig, axes = plt.subplots(1, len(grids), figsize=(3.6 * len(grids), 2.6), squeeze=False)
    for ax, (title, grid) in zip(axes[0], grids.items()):
        grid = torch.as_tensor(grid).detach().float().numpy()
        image = ax.imshow(grid, cmap=cmap, vmin=vmin, vmax=vmax)
        for (layer, head), value in np.ndenumerate(grid):
            red, green, blue, _ = image.cmap(image.norm(value))
            light = 0.299 * red + 0.587 * green + 0.114 * blue > 0.5  # the cell's luminance
            ax.text(head, layer, fmt.format(value), ha="center", va="center", fontsize=8,
                    color="black" if light else "white")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(columns)
        ax.set_ylabel(rows)
        ax.set_xticks(range(grid.shape[1]))
        ax.set_yticks(range(grid.shape[0]))
    fig.tight_layout()
    return fig


def plot_logit_lens(accuracy, labels, length):
    """Top-1 accuracy of every lens stage on every predicted token: accuracy (stages, 2L)."""
    accuracy = torch.as_tensor(accuracy).detach().numpy()
    fig, ax = plt.subplots(figsize=(7, 3))
    _shade_copies(ax, length)
    for stage, label in enumerate(labels):
        ax.plot(np.arange(1, accuracy.shape[1] + 1), accuracy[stage], marker="o", ms=3,
                label=label)
    ax.set_xlabel("position of the predicted token")
    ax.set_ylabel("top-1 accuracy")
    ax.set_ylim(-0.05, 1.05)
    ax.legend(fontsize=8, loc="center left")
    fig.tight_layout()
    return fig


def plot_attribution(contributions, labels):
    """Mean direct contribution of each component to the correct-token logit:
    contributions is {title: (components,)}, one group of bars per title."""
    fig, ax = plt.subplots(figsize=(8, 3))
    width = 0.8 / len(contributions)
    x = np.arange(len(labels))
    for i, (title, values) in enumerate(contributions.items()):
        ax.bar(x + (i - (len(contributions) - 1) / 2) * width,
               torch.as_tensor(values).detach().numpy(), width, label=title)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel("logit contribution")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_circuits(matrices, xlabels, ylabels):
    """Heatmaps of circuit matrices, {title: (rows, columns)}, each on a symmetric colour scale."""
    fig, axes = plt.subplots(1, len(matrices), figsize=(4 * len(matrices), 3.6), squeeze=False)
    for ax, (title, matrix), xlabel, ylabel in zip(axes[0], matrices.items(), xlabels, ylabels):
        matrix = torch.as_tensor(matrix).detach().numpy()
        limit = np.nanmax(np.abs(matrix[np.isfinite(matrix)]))
        ax.imshow(matrix, cmap="RdBu", vmin=-limit, vmax=limit)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    fig.tight_layout()
    return fig


def plot_phase_change(log, formed_at):
    """Training loss, second-copy loss and the best head scores over training, with the step at
    which the induction heads formed marked."""
    steps = np.array(log["steps"])
    best_induction = [max(max(row) for row in scores[1:]) for scores in log["induction_scores"]]
    best_previous = [max(scores[0]) for scores in log["previous_token_scores"]]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 4.6), sharex=True)
    loss = [np.nan if value is None else value for value in log["loss"]]
    top.plot(steps, loss, label="training loss", color="black")
    top.plot(steps, log["first_copy_loss"], label="loss on the first copy", color="tab:blue")
    top.plot(steps, log["second_copy_loss"], label="loss on the second copy", color="tab:orange")
    top.set_ylabel("loss (nats)")
    top.legend(fontsize=8)
    bottom.plot(steps, best_induction, label="best induction score (layer 1)", color="tab:red")
    bottom.plot(steps, best_previous, label="best previous-token score (layer 0)",
                color="tab:green")
    bottom.set_ylabel("score")
    bottom.set_xlabel("training step")
    bottom.legend(fontsize=8)
    for ax in (top, bottom):
        ax.axvline(formed_at, color="grey", ls="--", lw=0.8)
    fig.tight_layout()
    return fig
