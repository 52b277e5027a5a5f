"""Figures for chapter 02. Each function takes plain numbers or tensors and returns a matplotlib
Figure whose axes, lines and colours are named, so that a reader needs no code to read it."""

import matplotlib.pyplot as plt
import numpy as np
import torch


def layer_names(n_layers):
    """The residual stream's read-out points: after the embeddings, then after every block."""
    return ["embeddings"] + [f"block {layer}" for layer in range(n_layers)]


def plot_layer_chart(results, title, ylabel="held-out accuracy"):
    """Accuracy against layer, a line per property and its majority baseline as a dotted line of
    the same colour. ``results``: ``{property: (accuracies (n_layers + 1,), baseline)}``."""
    fig, ax = plt.subplots(figsize=(8, 4.2))
    n_points = len(next(iter(results.values()))[0])
    x = np.arange(n_points)
    for i, (name, (accuracies, baseline)) in enumerate(results.items()):
        colour = plt.cm.tab10(i)
        ax.plot(x, torch.as_tensor(accuracies).numpy(), "o-", color=colour, label=name)
        ax.axhline(baseline, color=colour, ls=":", lw=1.2)
    ax.plot([], [], "k:", lw=1.2, label="majority baseline (dotted, same colour)")
    ax.set_xticks(x, layer_names(n_points - 1), rotation=20)
    ax.set_xlabel("residual stream after")
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.02, 1.05)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return fig


def plot_selectivity(scores, title):
    """Task and control accuracy of each probe, grouped bars, with the selectivity written above.
    ``scores``: ``{probe name: (task, control)}``."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    x = np.arange(len(scores))
    task = [t for t, _ in scores.values()]
    control = [c for _, c in scores.values()]
    ax.bar(x - 0.2, task, 0.4, label="task: the person's birthplace", color="tab:blue")
    ax.bar(x + 0.2, control, 0.4, label="control: a random label per person",
           color="tab:orange")
    for i, (t, c) in enumerate(zip(task, control)):
        ax.text(i, max(t, c) + 0.03, f"selectivity {t - c:.2f}", ha="center", fontsize=9)
    ax.set_xticks(x, list(scores))
    ax.set_ylabel("accuracy on held-out contexts")
    ax.set_ylim(0, 1.3)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper center", ncol=2)
    fig.tight_layout()
    return fig


def plot_amnesic(removed, probe_accuracy, recall, random_recall, chance, d_model, title):
    """What projecting out a probe's directions does, round by round: the retrained probe's
    accuracy and the model's recall, against the recall with random directions of the same
    number removed."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    ax.plot(removed, probe_accuracy, "o-", color="tab:purple",
            label="probe retrained after the projection")
    ax.plot(removed, recall, "s-", color="tab:green", label="model's recall, probe directions removed")
    ax.plot(removed, random_recall, "^--", color="tab:gray",
            label="model's recall, random directions removed")
    ax.axhline(chance, color="k", ls=":", lw=1, label="majority baseline")
    ax.set_xlabel(f"dimensions removed at the last name token (of {d_model})")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.05)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_token_attributions(rows, title):
    """Each prompt as a row of its tokens, each token's box coloured by its attribution (red
    positive, blue negative, scaled per row by the largest absolute value).
    ``rows``: ``[(tokens, attributions), ...]``."""
    width = max(len(tokens) for tokens, _ in rows)
    fig, ax = plt.subplots(figsize=(1.15 * width + 1.5, 0.55 * len(rows) + 1.0))
    cmap = plt.cm.RdBu_r
    for r, (tokens, attributions) in enumerate(rows):
        values = torch.as_tensor(attributions, dtype=torch.float32)
        scaled = values / values.abs().max().clamp_min(1e-12)
        for i, (token, value) in enumerate(zip(tokens, scaled.tolist())):
            colour = cmap(0.5 + 0.5 * value)
            ax.text(i, -r, token, ha="center", va="center", fontsize=9,
                    color="white" if abs(value) > 0.6 else "black",
                    bbox=dict(boxstyle="round,pad=0.3", facecolor=colour, edgecolor="none"))
    ax.set_xlim(-0.7, width - 0.3)
    ax.set_ylim(-len(rows) + 0.5, 0.5)
    ax.axis("off")
    ax.set_title(title, fontsize=10)
    bar = fig.colorbar(plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(-1, 1)), ax=ax,
                       shrink=0.8, pad=0.02)
    bar.set_label("attribution / largest in its row")
    return fig


def plot_steering(toward_truth, toward_lies, scales, title):
    """Two panels against the block whose output is steered, a line per scale: liars' prompts
    with the honesty direction added (share of true answers), and honest speakers' prompts with
    it subtracted (share of the liars' rule's lies). ``toward_truth``, ``toward_lies``:
    (n_scales, n_layers) shares."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    panels = ((toward_truth, "liars, + scale × direction", "share of answers that are the truth"),
              (toward_lies, "honest speakers, − scale × direction",
               "share of answers that are the rule's lie"))
    for ax, (shares, subtitle, ylabel) in zip(axes, panels):
        shares = torch.as_tensor(shares)
        x = np.arange(shares.shape[1])
        for i, scale in enumerate(scales):
            ax.plot(x, shares[i].numpy(), "o-", color=plt.cm.viridis(i / max(1, len(scales) - 1)),
                    label=f"scale {scale:g}")
        ax.set_xticks(x, [f"block {layer}" for layer in x], rotation=20)
        ax.set_xlabel("direction added to the output of")
        ax.set_ylabel(ylabel)
        ax.set_ylim(-0.02, 1.05)
        ax.set_title(subtitle, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
