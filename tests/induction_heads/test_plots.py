"""Chapter 03's head grids are labelled with what their rows and columns are."""

import matplotlib
import torch

from reference_impl.induction_heads.plots import plot_head_grids

matplotlib.use("Agg")


def test_head_grids_name_their_axes():
    fig = plot_head_grids({"scores": torch.rand(2, 4)})
    assert (fig.axes[0].get_ylabel(), fig.axes[0].get_xlabel()) == ("layer", "head")
    fig = plot_head_grids({"K-composition": torch.rand(4, 4)}, rows="layer-0 head (writes)",
                          columns="layer-1 head (reads as key)")
    assert fig.axes[0].get_ylabel() == "layer-0 head (writes)"
    assert fig.axes[0].get_xlabel() == "layer-1 head (reads as key)"
