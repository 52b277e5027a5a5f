"""Chapter 06's figures are labelled so that a reader needs no code to read them."""

import matplotlib
import torch

from reference_impl.rome.plots import plot_edit_scores, plot_position_classes, plot_trace_grids
from reference_impl.rome.solutions import POSITION_CLASSES, SCORES, Trace

matplotlib.use("Agg")


def test_trace_grids_name_tokens_subject_kinds_and_probabilities():
    traces = {kind: Trace(kind, window, 0.9, 0.1, torch.rand(4 - window + 1, 5), list(range(5)))
              for kind, window in (("resid", 1), ("mlp", 2))}
    fig = plot_trace_grids(traces, ["[BOS]", "Zoe", "Jensen", "was", "in"], (1, 3))
    left, right = fig.axes[0], fig.axes[1]
    assert [t.get_text() for t in left.get_yticklabels()] == ["[BOS]", "Zoe*", "Jensen*", "was",
                                                             "in"]
    assert left.get_title() == "restoring the residual stream"
    assert right.get_title() == "restoring the MLP output"
    assert "window of 2" in right.get_xlabel() and left.get_xlabel() == "restored layer"
    assert "0.90 clean, 0.10 with the subject corrupted" in fig._suptitle.get_text()
    assert all(cb.get_ylabel() == "p(answer)" for cb in fig.axes[2:])


def test_position_classes_name_every_class_and_the_effect():
    effects = {"mlp": torch.rand(4, 4), "attn": torch.rand(4, 4)}
    fig = plot_position_classes(effects, POSITION_CLASSES, 100)
    assert [t.get_text() for t in fig.axes[-1].get_legend().get_texts()] == list(POSITION_CLASSES)
    assert "average indirect effect" in fig.axes[0].get_ylabel()
    assert "100 prompts" in fig._suptitle.get_text()


def test_edit_scores_label_methods_scores_and_values():
    scores = {"ROME": dict.fromkeys(SCORES, 0.5), "FT-L": dict.fromkeys(SCORES, 0.25)}
    ax = plot_edit_scores(scores, SCORES).axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["ROME", "FT-L"]
    assert [t.get_text() for t in ax.get_xticklabels()] == [s.replace("_", " ") for s in SCORES]
    assert "0.50" in [t.get_text() for t in ax.texts] and "share of prompts" in ax.get_ylabel()
