"""The training step the zoo's language models share."""

import torch
import torch.nn.functional as F


def masked_lm_loss(model, ids, mask):
    """Mean next-token cross-entropy of ``ids`` over the predicted positions where ``mask``
    (batch, length - 1) is set; padding is left out by leaving it unset."""
    logits = model(ids).logits[:, :-1]
    losses = F.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
    return (losses * mask).sum() / mask.sum()


def optimise(loss, model, optimizer, schedule, grad_clip):
    """One optimiser step on ``loss``, with the gradient norm clipped to ``grad_clip``."""
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    schedule.step()


def log_loss(log, step, steps, loss, every=50):
    """Keep the loss of every ``every``-th step, and of the last, in the training log."""
    if step % every == 0 or step == steps - 1:
        log["steps"].append(step)
        log["loss"].append(round(loss.item(), 4))
