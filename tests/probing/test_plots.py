"""Chapter 02's figures are labelled so that a reader needs no code to read them."""

import matplotlib
import torch

from reference_impl.probing.plots import (plot_amnesic, plot_layer_chart, plot_selectivity,
                                          plot_steering, plot_token_attributions)

matplotlib.use("Agg")


def test_layer_chart_names_every_read_out_point_and_line():
    results = {"relation": (torch.rand(4), 0.3), "birthplace": (torch.rand(4), 0.05)}
    fig = plot_layer_chart(results, "title")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["embeddings", "block 0", "block 1",
                                                           "block 2"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("residual stream after", "held-out accuracy")
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["relation", "birthplace", "majority baseline (dotted, same colour)"]
    # each baseline is drawn in its line's colour
    lines = [line for line in ax.get_lines() if line.get_label() in results]
    baselines = [line for line in ax.get_lines() if line.get_linestyle() == ":"][:2]
    assert [l.get_color() for l in lines] == [b.get_color() for b in baselines]


def test_selectivity_bars_say_task_control_and_selectivity():
    fig = plot_selectivity({"linear": (0.9, 0.4), "MLP": (0.95, 0.9)}, "title")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["linear", "MLP"]
    assert [t.get_text() for t in ax.texts] == ["selectivity 0.50", "selectivity 0.05"]
    assert ax.get_ylabel() == "accuracy on held-out contexts"
    assert len(ax.get_legend().get_texts()) == 2


def test_amnesic_figure_names_its_axes_and_lines():
    fig = plot_amnesic([19, 38], [0.3, 0.1], [1.0, 0.99], [1.0, 1.0], 0.05, 96, "title")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "dimensions removed at the last name token (of 96)"
    assert len(ax.get_legend().get_texts()) == 4


def test_token_attributions_show_every_token_and_a_labelled_scale():
    rows = [(["<|bos|>", "Zoe", "Jensen", "owns", "a"], torch.tensor([0.0, 2.0, 1.0, -0.5, 0.1]))]
    fig = plot_token_attributions(rows, "title")
    ax, colorbar = fig.axes
    assert [t.get_text() for t in ax.texts] == rows[0][0]
    assert colorbar.get_ylabel() == "attribution / largest in its row"


def test_steering_panels_say_what_was_steered_and_what_is_counted():
    toward_truth, toward_lies = torch.rand(3, 6), torch.rand(3, 6)
    fig = plot_steering(toward_truth, toward_lies, (1.0, 2.0, 4.0), "title")
    left, right = fig.axes
    assert left.get_title() == "liars, + scale × direction"
    assert right.get_title() == "honest speakers, − scale × direction"
    assert left.get_ylabel() == "share of answers that are the truth"
    assert right.get_ylabel() == "share of answers that are the rule's lie"
    for ax, shares in ((left, toward_truth), (right, toward_lies)):
        assert ax.get_xlabel() == "direction added to the output of"
        assert [t.get_text() for t in ax.get_xticklabels()] == [f"block {b}" for b in range(6)]
        for line, row in zip(ax.get_lines(), shares):
            assert list(line.get_ydata()) == list(row.numpy())
    assert [t.get_text() for t in left.get_legend().get_texts()] == ["scale 1", "scale 2",
                                                                    "scale 4"]
