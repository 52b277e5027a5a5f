"""Chapter 04's figures are labelled so that a reader needs no code to read them."""

import matplotlib
import torch

from reference_impl.ioi_circuit.plots import (plot_accumulated, plot_attribution,
                                              plot_estimate_against_patching, plot_position_grid)

matplotlib.use("Agg")


def test_position_grid_names_its_rows_and_the_words():
    words = ["<|bos|>", "When", "Ana", "and", "Bo", "left", ",", "Bo", "said", "to"]
    fig = plot_position_grid(torch.rand(4, len(words)), words, "title", rows="head",
                             row_labels=["0.0", "0.1", "1.0", "1.1"])
    ax, colorbar = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == words
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0.0", "0.1", "1.0", "1.1"]
    assert ax.get_ylabel() == "head" and "position patched" in ax.get_xlabel()
    assert colorbar.get_ylabel() == "share of the clean metric"


def test_accumulated_and_attribution_name_their_axes():
    ax = plot_accumulated(torch.tensor([0.0, 0.1, 5.0, 9.0]), "title").axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["embeddings", "block 0", "block 1",
                                                            "block 2"]
    assert ax.get_ylabel() == "logit(IO) − logit(S)"
    ax = plot_attribution(torch.tensor([1.0, -2.0]), ["1.0", "mlp 0"], "title").axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["1.0", "mlp 0"]
    assert "direct contribution" in ax.get_xlabel()


def test_estimate_against_patching_labels_both_axes_and_the_diagonal():
    fig = plot_estimate_against_patching({"heads": (torch.rand(2, 4), torch.rand(2, 4))}, "title")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "activation patching (normalised)"
    assert ax.get_ylabel() == "attribution patching estimate"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["estimate = patching"]
