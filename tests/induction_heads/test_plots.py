"""Chapter 03's figures are labelled so that a reader needs no code to read them."""

import matplotlib
import torch

from reference_impl.induction_heads.plots import plot_attention_patterns, plot_head_grids

matplotlib.use("Agg")


def test_head_grids_name_their_axes():
    fig = plot_head_grids({"scores": torch.rand(2, 4)})
    assert (fig.axes[0].get_ylabel(), fig.axes[0].get_xlabel()) == ("layer", "head")
    fig = plot_head_grids({"K-composition": torch.rand(4, 4)}, rows="layer-0 head (writes)",
                          columns="layer-1 head (reads as key)")
    assert fig.axes[0].get_ylabel() == "layer-0 head (writes)"
    assert fig.axes[0].get_xlabel() == "layer-1 head (reads as key)"


def test_attention_patterns_label_every_panel_with_the_tokens():
    tokens = ["<|bos|>", "Ada", "met", "Bo", "Ada", "met"]
    patterns = torch.rand(2, 4, 6, 6).softmax(-1)
    fig = plot_attention_patterns(patterns, tokens, "title")
    panels = [ax for ax in fig.axes if ax.get_title().startswith("head")]
    assert [ax.get_title() for ax in panels] == [f"head {l}.{h}" for l in range(2) for h in range(4)]
    for ax in panels:
        assert [t.get_text() for t in ax.get_xticklabels()] == tokens
        assert [t.get_text() for t in ax.get_yticklabels()] == tokens
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("key (attended to)", "query (attending)")
    colorbar, = [ax for ax in fig.axes if ax not in panels]
    assert colorbar.get_ylabel() == "attention weight"


def test_head_grid_values_are_readable_on_light_and_dark_cells():
    # magma_r runs from near-white (low) to near-black (high); viridis from dark purple to yellow.
    grid = torch.tensor([[1.0, 19.0]])
    for cmap, colours in (("magma_r", ["black", "white"]), ("viridis", ["white", "black"])):
        fig = plot_head_grids({"ratio": grid}, cmap=cmap, vmin=1)
        assert [text.get_color() for text in fig.axes[0].texts] == colours, cmap
