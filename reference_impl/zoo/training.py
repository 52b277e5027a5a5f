"""The training step the zoo's language models share."""

import torch
import torch.nn.functional as F

from reference_impl.world import BOS_ID


def encode_batch(tokenizer, texts, length=None):
    """Token ids padded with BOS to ``length`` (default: the longest text), and the loss mask
    (batch, length - 1) of the predicted tokens, which leaves the padding out."""
    encoded = [tokenizer(text).input_ids for text in texts]
    length = length or max(map(len, encoded))
    ids = torch.full((len(texts), length), BOS_ID, dtype=torch.long)
    mask = torch.zeros(len(texts), length - 1)
    for row, tokens in enumerate(encoded):
        ids[row, :len(tokens)] = torch.tensor(tokens)
        mask[row, :len(tokens) - 1] = 1.0
    return ids, mask


@torch.no_grad()
def last_token_logits(model, tokenizer, texts):
    """The model's next-token logits after the last token of each text (one padded batch)."""
    ids, mask = encode_batch(tokenizer, texts)
    lengths = mask.sum(dim=1).long() + 1
    return model(ids).logits[torch.arange(len(texts)), lengths - 1]


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
