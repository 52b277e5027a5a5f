"""Causal tracing (Meng et al., 2022): which hidden states carry a fact from subject to answer.

Corrupt a prompt by adding Gaussian noise to the embeddings of its subject tokens; the model then
mostly loses the answer. Restore one clean hidden state (or a window of consecutive layers of one
site) at one position, leaving the noise everywhere else; the share of the answer's probability
that comes back says how much that state carries.

``trace`` runs the clean prompt and its noisy copies once, then one batched pass per first layer
of a restoration window, covering every position at once: a restoration changes nothing below
its first layer, so that pass starts from the corrupted residual stream entering that layer and
runs only the blocks above. Every noisy copy uses the same noise for every restoration, so the
grid compares like with like.

Sites (``kind``): ``"resid"`` restores the residual stream leaving a block (``hook_resid_post``),
``"mlp"`` the MLP's output (``hook_mlp_out``), ``"attn"`` the attention output
(``hook_attn_out``).
"""

from dataclasses import dataclass

import torch

from reference_impl.hooks import hook_names, patched, run_with_cache

SITES = {"resid": "hook_resid_post", "mlp": "hook_mlp_out", "attn": "hook_attn_out"}


@dataclass
class Trace:
    """Probabilities of the answer token at the final position.

    ``restored[i, t]``: the mean over noisy copies when the site is restored at position ``t`` in
    the layers ``i .. i + window - 1``.
    """

    kind: str
    window: int
    clean: float
    corrupted: float
    restored: torch.Tensor  # (n_layers - window + 1, restored positions)

    @property
    def total_effect(self):
        return self.clean - self.corrupted

    @property
    def recovered(self):
        """The share of the total effect each restoration brings back."""
        return (self.restored - self.corrupted) / self.total_effect


def noise_scale(model, token_ids, multiple=3.0):
    """``multiple`` times the standard deviation of the token embeddings of ``token_ids`` (the
    subjects' tokens): the noise level of the original experiments."""
    embeddings = model.get_input_embeddings().weight[torch.as_tensor(token_ids)]
    return multiple * embeddings.std().item()


def subject_noise(samples, subject_length, d_model, scale, seed=0):
    """The noise added to the subject's embeddings: one draw per noisy copy."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(samples, subject_length, d_model, generator=generator) * scale


def _names(model, kind):
    if kind not in SITES:
        raise ValueError(f"kind must be one of {', '.join(SITES)}, got {kind!r}")
    names = [f"blocks.{layer}.{SITES[kind]}" for layer in range(model.config.n_layer)]
    if names[0] not in hook_names(model):
        raise ValueError(f"this model has no {names[0]} (an attention-only model has no MLPs)")
    return names


@torch.no_grad()
def trace(model, tokens, subject, target, kind="resid", window=1, scale=None, samples=10, seed=0,
          positions=None):
    """Trace one prompt.

    tokens: 1-D token ids of the prompt; subject: the (start, stop) token positions of the
    subject; target: the answer's token id; scale: the noise's standard deviation (default:
    ``noise_scale`` of the subject's own tokens); positions: the positions to restore (default:
    all), which are the columns of ``restored``."""
    tokens = torch.as_tensor(tokens)
    start, stop = subject
    n_layers = model.config.n_layer
    positions = range(len(tokens)) if positions is None else list(positions)
    if not 1 <= window <= n_layers:
        raise ValueError(f"window must be between 1 and {n_layers}, got {window}")
    names = _names(model, kind)
    scale = noise_scale(model, tokens[start:stop]) if scale is None else scale
    noise = subject_noise(samples, stop - start, model.config.n_embd, scale, seed)

    logits, clean = run_with_cache(model, tokens[None], names=names)
    clean_prob = logits[0, -1].softmax(-1)[target].item()

    # The corrupted run, once: every restoration computes the same thing below its first layer,
    # so each group of restorations starts from the corrupted residual stream entering it.
    entering = [f"blocks.{layer}.hook_resid_pre" for layer in range(n_layers)]
    logits, corrupted = run_with_cache(model, tokens[None].expand(samples, -1), names=entering,
                                       patches={"hook_embed": _add_noise(noise, start, stop)})
    corrupted_prob = logits[:, -1].softmax(-1)[:, target].mean().item()

    restored = torch.zeros(n_layers - window + 1, len(positions))
    rows = torch.arange(len(positions) * samples)  # row = (position index) * samples + copy
    restored_at = torch.tensor(positions).repeat_interleave(samples)
    for first in range(n_layers - window + 1):
        hidden = corrupted[entering[first]].repeat(len(positions), 1, 1)
        patches = {names[layer]: _restore(rows, restored_at, clean[names[layer]][0])
                   for layer in range(first, first + window)}
        with patched(model, patches):
            logits = _run_from(model, first, hidden)
        probs = logits.softmax(-1)[:, target].reshape(len(positions), samples).mean(dim=1)
        restored[first] = probs
    return Trace(kind, window, clean_prob, corrupted_prob, restored)


def _run_from(model, layer, hidden):
    """The final position's logits when ``hidden`` enters block ``layer`` (causal attention)."""
    transformer = model.transformer
    length = hidden.shape[1]
    future = torch.ones(length, length, dtype=torch.bool).triu(1)
    mask = torch.zeros(length, length).masked_fill(future, torch.finfo(hidden.dtype).min)
    for block in transformer.h[layer:]:
        output = block(hidden, attention_mask=mask[None, None])
        hidden = output[0] if isinstance(output, tuple) else output
    return model.lm_head(transformer.ln_f(hidden[:, -1]))


def _add_noise(noise, start, stop):
    def patch(embed, _):
        embed = embed.clone()
        embed[:, start:stop] += noise
        return embed
    return patch


def _restore(rows, positions, clean):
    def patch(activation, _):
        activation = activation.clone()
        activation[rows, positions] = clean[positions]
        return activation
    return patch
