"""Measurements of induction behaviour on sequences ``[BOS] + r + r`` of repeated random tokens.

The code lives in chapter 03's module, where learners write it; the zoo uses the same functions to
log and check its induction model.
"""

from reference_impl.induction_heads.solutions import ablation_patches, copy_losses, head_scores

__all__ = ["copy_losses", "head_scores", "mean_ablation"]


def mean_ablation(model, tokens, heads):
    """Patches that replace the output ``z`` of each (layer, head) by its mean over the batch and
    positions of ``tokens``."""
    return ablation_patches(model, tokens, heads, method="mean")
