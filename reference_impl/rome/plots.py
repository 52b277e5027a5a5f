"""Figures for chapter 06. Each function takes numbers and returns a matplotlib Figure whose axes,
colours and values are named, so that a reader needs no code to read it."""

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["plot_trace_grids", "plot_position_classes", "plot_edit_scores"]

KIND_LABELS = {"resid": "residual stream", "mlp": "MLP output", "attn": "attention output"}
KIND_COLOURS = {"resid": "Purples", "mlp": "Greens", "attn": "Reds"}


def plot_trace_grids(traces, token_labels, subject):
    """One heat map per kind of state: traces {kind: Trace over every position}; the rows are
    the prompt's tokens (the subject's marked with *), the columns the window's first layer."""
    fig, axes = plt.subplots(1, len(traces), figsize=(3.6 * len(traces), 0.45 * len(token_labels)
                                                      + 1.6), sharey=True)
    axes = np.atleast_1d(axes)
    start, stop = subject
    labels = [f"{t}*" if start <= i < stop else t for i, t in enumerate(token_labels)]
    for ax, (kind, t) in zip(axes, traces.items()):
        values = t.restored.numpy().T  # (position, window start)
        image = ax.imshow(values, cmap=KIND_COLOURS[kind], vmin=min(t.corrupted, values.min()),
                          vmax=max(t.clean, values.max()), aspect="auto")
        ax.set_xticks(range(values.shape[1]))
        window = "" if t.window == 1 else f" (window of {t.window}: its first layer)"
        ax.set_xlabel(f"restored layer{window}")
        ax.set_title(f"restoring the {KIND_LABELS[kind]}", fontsize=10)
        fig.colorbar(image, ax=ax, label="p(answer)", shrink=0.8)
    axes[0].set_yticks(range(len(labels)), labels)
    axes[0].set_ylabel("restored position (* subject)")
    first = next(iter(traces.values()))
    fig.suptitle(f"causal trace: p(answer) is {first.clean:.2f} clean, {first.corrupted:.2f} "
                 f"with the subject corrupted", fontsize=10)
    fig.tight_layout()
    return fig


def plot_position_classes(effects, classes, n_prompts):
    """The average indirect effect by position class: effects {kind: (rows, classes) array}, one
    line per class over the window's first layer."""
    fig, axes = plt.subplots(1, len(effects), figsize=(3.8 * len(effects), 3.3), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, (kind, values) in zip(axes, effects.items()):
        values = np.asarray(values, dtype=float)
        for c, (label, marker) in enumerate(zip(classes, "osD^")):
            ax.plot(range(len(values)), values[:, c], marker=marker, label=label)
        ax.set_xticks(range(len(values)))
        ax.set_xlabel("restored layer (first of the window)")
        ax.set_title(f"restoring the {KIND_LABELS[kind]}", fontsize=10)
        ax.axhline(0, color="grey", linewidth=0.6)
    axes[0].set_ylabel("average indirect effect\n(restored − corrupted p(answer))")
    axes[-1].legend(fontsize=8, title="restored position", title_fontsize=8)
    fig.suptitle(f"average over {n_prompts} prompts", fontsize=10)
    fig.tight_layout()
    return fig


def plot_edit_scores(scores, names):
    """Grouped bars: scores {method: {score: value}} for the score ``names``, values in [0, 1]."""
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    width = 0.8 / len(scores)
    for i, (method, values) in enumerate(scores.items()):
        x = np.arange(len(names)) + (i - (len(scores) - 1) / 2) * width
        heights = [values[n] for n in names]
        bars = ax.bar(x, heights, width, label=method)
        for bar, h in zip(bars, heights):
            ax.text(bar.get_x() + bar.get_width() / 2, h + 0.01, f"{h:.2f}", ha="center",
                    fontsize=7)
    ax.set_xticks(range(len(names)), [n.replace("_", " ") for n in names])
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("score (share of prompts)")
    ax.set_title("what an edit changes: the fact, its paraphrases, and what should stay",
                 fontsize=10)
    ax.legend(fontsize=8, loc="upper center", ncol=len(scores), bbox_to_anchor=(0.5, -0.14))
    fig.tight_layout()
    return fig
