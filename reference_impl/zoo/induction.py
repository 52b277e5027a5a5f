"""Measurements of induction behaviour on sequences ``[BOS] + r + r`` of repeated random tokens."""

import torch
import torch.nn.functional as F

from reference_impl.hooks import run_with_cache


def head_scores(model, tokens):
    """Previous-token and induction scores of every head, as two (layers, heads) tensors.

    tokens: (batch, 1 + 2L), a BOS then a random sequence of length L twice. The previous-token
    score is the mean attention from each token after BOS to the token before it; the induction
    score is the mean attention from each token of the second copy to the token right after its
    first occurrence (L - 1 positions back)."""
    length = (tokens.shape[1] - 1) // 2
    _, cache = run_with_cache(model, tokens, names=lambda n: n.endswith("attn.pattern"))
    patterns = torch.stack([cache[f"blocks.{l}.attn.pattern"]
                            for l in range(model.config.n_layer)])  # (layer, batch, head, q, k)
    # diagonal(offset=-k)[..., j] is the attention from query k + j to key j.
    previous = patterns.diagonal(offset=-1, dim1=-2, dim2=-1)[..., 1:]  # queries 2 .. 2L
    induction = patterns.diagonal(offset=-(length - 1), dim1=-2, dim2=-1)[..., 2:]  # L+1 .. 2L
    return previous.mean(dim=(1, 3)), induction.mean(dim=(1, 3))


def copy_losses(model, tokens, patches=None):
    """Mean next-token loss on the first and on the second copy of the repeated sequence."""
    length = (tokens.shape[1] - 1) // 2
    logits, _ = run_with_cache(model, tokens, names=[], patches=patches)
    losses = F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none")
    # Position i predicts token i + 1: the first copy is tokens 1..L, the second L+1..2L.
    first = losses[:, 1:length].mean()  # the first token of a copy cannot be predicted
    second = losses[:, length + 1:].mean()
    return first.item(), second.item()


def mean_ablation(model, tokens, heads):
    """Patches that replace the output ``z`` of each (layer, head) by its mean over the batch and
    positions of ``tokens``."""
    names = sorted({f"blocks.{layer}.attn.z" for layer, _ in heads})
    _, cache = run_with_cache(model, tokens, names=names)
    patches = {}
    for name in names:
        layer = int(name.split(".")[1])
        chosen = [head for l, head in heads if l == layer]
        mean = cache[name].mean(dim=(0, 1))  # (head, d_head)

        def patch(z, _, chosen=chosen, mean=mean):
            z = z.clone()
            z[:, :, chosen] = mean[chosen]
            return z

        patches[name] = patch
    return patches
