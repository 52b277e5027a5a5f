"""Rank-one model editing (ROME; Meng et al., 2022) for HF GPT-2 models.

ROME treats the second matrix of one MLP as a linear associative memory: its input ``k`` (the
post-activation, ``blocks.L.mlp.hook_post``) is a key that identifies the subject, and its output
is a value that the later layers read the subject's attributes from. To change one fact, take the key
``k*`` of the subject (at its last token), find the value ``v*`` that makes the model say the new
object, and change the matrix as little as possible -- measured on the keys of ordinary text,
whose second moment is ``C`` -- so that it maps ``k*`` to ``v*``:

    W' = W + (v* - W k*) (C^-1 k*)^T / ((C^-1 k*)^T k*)

Here ``W`` maps keys (d_mlp) to values (d_model). HF GPT-2's ``Conv1D`` stores the transpose
(``c_proj.weight`` has shape (d_mlp, d_model) and computes ``k @ weight + bias``), so the update
applied to it is the transposed outer product, and "W k*" includes the bias: it is the MLP's
current output at the subject.
"""

import torch

from reference_impl.hooks import patched, run_with_cache


def mlp_keys(model, input_ids, layer):
    """The keys of every position: ``blocks.{layer}.mlp.hook_post``, shape (batch, pos, d_mlp)."""
    name = f"blocks.{layer}.mlp.hook_post"
    _, cache = run_with_cache(model, input_ids, names=[name])
    return cache[name]


@torch.no_grad()
def key_second_moment(model, input_ids, layer, mask=None, ridge=1e-4):
    """C = E[k k^T] over the positions of ``input_ids`` (those where ``mask`` is 1; pad at the
    end of a row, so the causal model's real tokens never see it).

    The uncentred second moment, as in ROME. A small ridge (relative to C's mean diagonal) keeps
    C invertible when some MLP neurons never fire on the text."""
    keys = mlp_keys(model, input_ids, layer)
    if mask is not None:
        keys = keys[mask.bool()]
    keys = keys.reshape(-1, keys.shape[-1]).double()
    moment = keys.T @ keys / len(keys)
    return moment + ridge * moment.diagonal().mean() * torch.eye(len(moment), dtype=moment.dtype)


@torch.no_grad()
def subject_key(model, prompts, layer):
    """k*: the mean key at the subject's last token over ``prompts``, a list of
    ``(input_ids, subject_last_position)`` pairs (one prompt, or several phrasings of it)."""
    keys = [mlp_keys(model, torch.as_tensor(ids)[None], layer)[0, pos] for ids, pos in prompts]
    return torch.stack(keys).mean(0)


def optimise_value(model, prompts, layer, target, steps=40, lr=0.1, weight_decay=1e-3,
                   stop_prob=0.95):
    """v*: the MLP output at the subject's last token that makes the model predict ``target``.

    ``prompts`` is a list of ``(input_ids, subject_last_position)``; every prompt ends just
    before the object. A vector ``delta`` is added to ``blocks.{layer}.hook_mlp_out`` at the
    subject's last token and trained by Adam to minimise the mean negative log-probability of
    ``target`` at the final position (plus a small penalty on its size, so it stays near the
    model's own values). Returns ``(v*, final mean probability of target)``; the model is not changed."""
    name = f"blocks.{layer}.hook_mlp_out"
    delta = torch.zeros(model.config.n_embd, requires_grad=True)
    optimizer = torch.optim.Adam([delta], lr=lr)
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        for _ in range(steps + 1):
            log_probs, outputs = [], []
            for ids, pos in prompts:
                def add(out, _, pos=pos):
                    outputs.append(out[0, pos].detach())
                    out = out.clone()
                    out[:, pos] = out[:, pos] + delta
                    return out
                with patched(model, {name: add}):
                    logits = model(torch.as_tensor(ids)[None]).logits
                log_probs.append(logits[0, -1].log_softmax(-1)[target])
            prob = torch.stack(log_probs).exp().mean().item()
            if prob >= stop_prob:
                break
            loss = -torch.stack(log_probs).mean() + weight_decay * delta.pow(2).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
    # v* is the unedited output plus delta, averaged over the prompts' subject positions.
    return torch.stack(outputs[-len(prompts):]).mean(0) + delta.detach(), prob


@torch.no_grad()
def rank_one_update(weight, bias, key, value, second_moment):
    """The new ``c_proj.weight`` (HF Conv1D layout: (d_mlp, d_model), output ``k @ W + b``) that
    maps ``key`` to ``value`` while changing the outputs of C-typical keys as little as possible:
    ``W + u r^T`` with ``u = C^-1 k* / ((C^-1 k*)^T k*)`` and ``r = v* - (k* W + b)``."""
    key = key.double()
    c_inv_key = torch.linalg.solve(second_moment.double(), key)
    u = c_inv_key / (c_inv_key @ key)
    residual = value.double() - (key @ weight.double() + bias.double())
    return (weight.double() + torch.outer(u, residual)).to(weight.dtype)


def rome_edit(model, prompts, layer, target, second_moment, **value_kwargs):
    """Edit ``model`` in place so that the subject of ``prompts`` maps to ``target``.

    Returns the original ``c_proj.weight`` (to undo the edit: ``restore(model, layer, old)``)
    and the probability of ``target`` that the v* optimisation reached."""
    key = subject_key(model, prompts, layer)
    value, prob = optimise_value(model, prompts, layer, target, **value_kwargs)
    proj = model.transformer.h[layer].mlp.c_proj
    old = proj.weight.detach().clone()
    with torch.no_grad():
        proj.weight.copy_(rank_one_update(old, proj.bias, key, value, second_moment))
    return old, prob


@torch.no_grad()
def restore(model, layer, weight):
    """Undo ``rome_edit``: put back the saved ``c_proj.weight`` of ``layer``."""
    model.transformer.h[layer].mlp.c_proj.weight.copy_(weight)
