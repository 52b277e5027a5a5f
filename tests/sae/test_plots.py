"""Chapter 05's figures are labelled so that a reader needs no code to read them."""

import matplotlib
import torch

from reference_impl.sae.plots import (plot_concepts, plot_density, plot_mmcs_grid, plot_steering,
                                      plot_tradeoff)

matplotlib.use("Agg")


def test_mmcs_grid_names_sizes_penalties_and_values():
    fig = plot_mmcs_grid(torch.tensor([[0.5, 0.7], [0.9, 1.0]]), (4, 8), (0.1, 0.3), n_true=8)
    ax, colorbar = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.1", "0.3"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["4 (0.5×)", "8 (1×)"]
    assert [t.get_text() for t in ax.texts] == ["0.50", "0.70", "0.90", "1.00"]
    assert ax.get_xlabel() == "L1 coefficient λ" and "true features" in ax.get_ylabel()
    assert colorbar.get_ylabel() == "mean max cosine similarity"


def test_tradeoff_and_density_name_each_sae():
    ax = plot_tradeoff({"L1": (25.0, 0.05), "TopK": (24.0, 0.03)}).axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["L1", "TopK"]
    assert "L0" in ax.get_xlabel() and "variance unexplained" in ax.get_ylabel()
    assert "L0 25.0, FVU 0.050" in [t.get_text() for t in ax.texts]
    ax = plot_density({"L1": torch.tensor([0.0, 0.01, 0.1])}).axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["L1 (1 never fire)"]
    assert "log10" in ax.get_xlabel() and ax.get_ylabel() == "number of latents"


def test_concepts_and_steering_label_both_series():
    ax = plot_concepts(["the city Calder"], [1.0], [0.1], 0.8).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["the city Calder"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "best SAE latent", "best MLP neuron (block 2)"]
    assert "recall 0.8" in ax.get_xlabel()
    left, right = plot_steering([0, 4], [0.0, 0.5], [0.8, 0.9], "Anna").axes
    assert "Anna" in left.get_ylabel() and "loss on unrelated text" in right.get_ylabel()
    assert "steering strength" in left.get_xlabel()
