"""What chapter 01's figures show, as its text describes them."""

import matplotlib
import torch

from reference_impl.superposition.plots import plot_gram_and_norms

matplotlib.use("Agg")


def test_the_gram_heatmap_draws_positive_red_and_negative_blue():
    """The text reads the WᵀW heatmap as red for positive, blue for negative."""
    fig = plot_gram_and_norms(torch.eye(2, 3)[None], torch.zeros(1, 3), ["one instance"])
    image = fig.axes[0].images[0]
    red, _, blue, _ = image.cmap(image.norm(1.0))
    assert red > 0.5 > blue
    red, _, blue, _ = image.cmap(image.norm(-1.0))
    assert blue > 0.5 > red
    assert any(ax.get_ylabel() == "W_i · W_j" for ax in fig.axes)  # the colour bar says so
