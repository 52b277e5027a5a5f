"""The training step the zoo's language models share."""

import torch
import torch.nn.functional as F
from transformers import GPT2Config

from reference_impl.world import BOS_ID
from reference_impl.zoo import build_model


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


def new_gpt2(tokenizer, recipe):
    """A freshly initialised zoo GPT-2 with MLPs of a recipe's sizes (``n_layer``, ``d_model``,
    ``n_head``, ``d_mlp``, ``n_positions``), without dropout."""
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=recipe["n_positions"],
                        n_embd=recipe["d_model"], n_layer=recipe["n_layer"],
                        n_head=recipe["n_head"], n_inner=recipe["d_mlp"], resid_pdrop=0.0,
                        embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=BOS_ID, eos_token_id=BOS_ID)
    return build_model(config)


def adamw_with_linear_decay(model, recipe):
    """AdamW with a recipe's ``lr``, ``betas`` and ``weight_decay``, and its schedule: a linear
    warmup over ``warmup`` steps, then a linear decay to 5 % of the peak at ``steps``."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], betas=recipe["betas"],
                                  weight_decay=recipe["weight_decay"])
    steps = recipe["steps"]
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / recipe["warmup"]) * max(0.05, 1 - s / steps))
    return optimizer, schedule
