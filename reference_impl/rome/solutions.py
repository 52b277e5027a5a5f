"""Chapter 06 reference solutions: locating and editing facts (Meng et al., 2022).

Every exercise of the chapter is one function here; the chapter notebooks are generated from these
functions (the body after the docstring is the answer region). The model zoo uses causal tracing
and the rank-one edit from here too, to measure ``facts-6l``.

Conventions: a model is a ``transformers`` GPT-2 (``GPT2LMHeadModel``). A prompt is a 1-D tensor
of token ids that starts with BOS and ends just before the answer, so the answer is the next token
after the last position. ``subject`` is the (start, stop) range of the subject's token positions.
``target`` is one token id. A layer's MLP is ``model.transformer.h[layer].mlp``; its output
projection ``c_proj`` is a ``Conv1D`` whose weight has shape (d_mlp, d_model) and which computes
``k @ weight + bias``.
"""

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from reference_impl.hooks import hook_names, patched, run_with_cache
from reference_impl.zoo.training import last_token_logits

# ---------------------------------------------------------------------------------------------
# 1 · Causal tracing
# ---------------------------------------------------------------------------------------------

# What "restoring a state" restores, by kind: the residual stream leaving a block, the MLP's
# output or the attention output.
SITES = {"resid": "hook_resid_post", "mlp": "hook_mlp_out", "attn": "hook_attn_out"}


def check_subject(tokens, subject):
    """The subject's (start, stop) as ints, or a ValueError that says what is wrong with it."""
    start, stop = (int(i) for i in subject)
    if not 1 <= start < stop <= len(tokens) - 1:
        raise ValueError(f"the subject span {tuple(subject)} is not inside the prompt: it must lie "
                         f"between position 1 (after BOS) and {len(tokens) - 1} (before the last "
                         f"token), with start < stop")
    return start, stop


def check_layer(model, layer):
    """``layer`` if the model has it, or a ValueError naming the model's layers."""
    n_layer = model.config.n_layer
    if not (isinstance(layer, int) and 0 <= layer < n_layer):
        raise ValueError(f"layer {layer!r} is not a layer of this model, which has layers 0 to "
                         f"{n_layer - 1}")
    return layer


def site_names(model, kind):
    """The activation names of ``kind`` ("resid", "mlp" or "attn"), one per layer."""
    if kind not in SITES:
        raise ValueError(f"kind must be one of {', '.join(SITES)}, got {kind!r}")
    names = [f"blocks.{layer}.{SITES[kind]}" for layer in range(model.config.n_layer)]
    if names[0] not in hook_names(model):
        raise ValueError(f"this model has no {names[0]} (an attention-only model has no MLPs)")
    return names


def noise_scale(model, token_ids, multiple=3.0):
    """``multiple`` times the standard deviation of the token embeddings of ``token_ids`` (the
    subjects' tokens): the noise level of the original experiments."""
    embeddings = model.get_input_embeddings().weight.detach()[torch.as_tensor(token_ids)]
    return multiple * embeddings.std().item()


def subject_noise(samples, subject_length, d_model, scale, seed=0):
    """The noise added to the subject's token embeddings: (samples, subject_length, d_model), one
    draw per noisy copy."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(samples, subject_length, d_model, generator=generator) * scale


def add_subject_noise(noise, subject):
    """A patch for ``hook_embed`` that adds ``noise`` to the subject's embeddings of every copy."""
    def patch(embed, _):
        start, stop = check_subject(embed[0], subject)  # len(embed[0]): the prompt's length
        return torch.cat([embed[:, :start], embed[:, start:stop] + noise, embed[:, stop:]], dim=1)
    return patch


def corrupted_probabilities(model, tokens, subject, target, noise):
    """The probability of ``target`` after the prompt when the subject's token embeddings are
    corrupted: one noisy copy of the prompt per row of ``noise`` (samples, subject length,
    d_model), run as one batch, with ``noise[i]`` added to the subject's ``hook_embed`` in copy
    i. Returns (samples,)."""
    copies = tokens[None].expand(len(noise), -1)
    patches = {"hook_embed": add_subject_noise(noise, subject)}
    logits, _ = run_with_cache(model, copies, names=[], patches=patches)
    return logits[:, -1].softmax(dim=-1)[:, target]


def restored_probabilities(model, tokens, subject, target, noise, kind, layers, position):
    """As ``corrupted_probabilities``, but with the clean state of ``kind`` restored at
    ``position`` in each of ``layers``: every noisy copy gets the value that activation
    (``site_names(model, kind)[layer]``) has at that position in the clean run. Returns
    (samples,)."""
    names = [site_names(model, kind)[layer] for layer in layers]
    _, clean = run_with_cache(model, tokens[None], names=names)

    def restore(activation, name):
        restored = activation.clone()
        restored[:, position] = clean[name][0, position]
        return restored

    copies = tokens[None].expand(len(noise), -1)
    patches = {"hook_embed": add_subject_noise(noise, subject), **{name: restore for name in names}}
    logits, _ = run_with_cache(model, copies, names=[], patches=patches)
    return logits[:, -1].softmax(dim=-1)[:, target]


@dataclass
class Trace:
    """Probabilities of the answer at the final position, each the mean over the noisy copies.

    ``restored[i, t]``: with the site restored at the t-th of ``positions`` in the layers
    ``i .. i + window - 1``.
    """

    kind: str
    window: int
    clean: float
    corrupted: float
    restored: torch.Tensor  # (n_layer - window + 1, len(positions))
    positions: list

    @property
    def total_effect(self):
        return self.clean - self.corrupted

    @property
    def indirect_effect(self):
        """What each restoration brings back: restored − corrupted probability."""
        return self.restored - self.corrupted

    @property
    def recovered(self):
        """The share of the total effect each restoration brings back."""
        return self.indirect_effect / self.total_effect


@torch.no_grad()
def trace(model, tokens, subject, target, noise, kind="resid", window=1, positions=None):
    """Causal tracing of one prompt: the clean and the corrupted probability of ``target``, and
    the probability with the state of ``kind`` restored at each position (``positions``, default
    all) for each window of ``window`` consecutive layers (rows: the window's first layer).

    Returns a ``Trace``. A restoration changes nothing below its window's first layer, so each
    row can start from the corrupted residual stream entering that layer (one batched pass per
    row, every position at once); every restoration uses the same noise."""
    start, stop = check_subject(tokens, subject)
    n_layer = model.config.n_layer
    if not 1 <= window <= n_layer:
        raise ValueError(f"window must be between 1 and {n_layer}, got {window}")
    positions = list(range(len(tokens))) if positions is None else [int(p) for p in positions]
    names = site_names(model, kind)
    samples = len(noise)

    logits, clean = run_with_cache(model, tokens[None], names=names)
    clean_prob = logits[0, -1].softmax(-1)[target].item()
    entering = [f"blocks.{layer}.hook_resid_pre" for layer in range(n_layer)]
    logits, corrupted = run_with_cache(model, tokens[None].expand(samples, -1), names=entering,
                                       patches={"hook_embed": add_subject_noise(noise, subject)})
    corrupted_prob = logits[:, -1].softmax(-1)[:, target].mean().item()

    restored = torch.zeros(n_layer - window + 1, len(positions))
    rows = torch.arange(len(positions) * samples)  # row = (position index) * samples + copy
    restored_at = torch.tensor(positions).repeat_interleave(samples)
    for first in range(n_layer - window + 1):
        hidden = corrupted[entering[first]].repeat(len(positions), 1, 1)

        def restore(activation, name):
            activation = activation.clone()
            activation[rows, restored_at] = clean[name][0, restored_at]
            return activation

        with patched(model, {names[layer]: restore for layer in range(first, first + window)}):
            logits = final_logits_from(model, first, hidden)
        restored[first] = logits.softmax(-1)[:, target].reshape(len(positions), samples).mean(1)
    return Trace(kind, window, clean_prob, corrupted_prob, restored, positions)


def final_logits_from(model, layer, hidden):
    """The final position's logits when ``hidden`` enters block ``layer`` (causal attention)."""
    length = hidden.shape[1]
    future = torch.ones(length, length, dtype=torch.bool).triu(1)
    mask = torch.zeros(length, length).masked_fill(future, torch.finfo(hidden.dtype).min)
    for block in model.transformer.h[layer:]:
        output = block(hidden, attention_mask=mask[None, None])
        hidden = output[0] if isinstance(output, tuple) else output
    return model.lm_head(model.transformer.ln_f(hidden[:, -1]))


POSITION_CLASSES = ("earlier subject tokens", "last subject token", "further tokens",
                    "last token")


def average_indirect_effect(traces, subjects):
    """The average indirect effect of each window by position class, over prompts.

    ``traces``: one ``Trace`` per prompt, over positions that include every position from its
    subject's start to its last token; ``subjects``: their (start, stop). The classes are
    ``POSITION_CLASSES``: the subject's tokens before its last, its last token, the tokens after
    it before the last, and the last token (positions before the subject are left out). Within
    one prompt a class's effect is the mean of ``indirect_effect`` over its positions; then each
    class is averaged over the prompts that have such positions. Returns (rows, 4)."""
    totals = torch.zeros(len(traces[0].restored), len(POSITION_CLASSES))
    counts = torch.zeros(len(POSITION_CLASSES))
    for t, (start, stop) in zip(traces, subjects):
        last = max(t.positions)
        classes = (range(start, stop - 1), [stop - 1], range(stop, last), [last])
        for c, positions in enumerate(classes):
            if len(positions):
                columns = [t.positions.index(p) for p in positions]
                totals[:, c] += t.indirect_effect[:, columns].mean(dim=1)
                counts[c] += 1
    return totals / counts


# ---------------------------------------------------------------------------------------------
# 2 · Rank-one model editing
# ---------------------------------------------------------------------------------------------


def key_name(layer):
    """The keys of layer ``layer``'s MLP memory: the input of its output projection."""
    return f"blocks.{layer}.mlp.hook_post"


def subject_key(model, prompts, layer):
    """k*: the mean key (``blocks.{layer}.mlp.hook_post``) at the subject's last token.

    ``prompts``: a list of ``(tokens, subject_last_position)``, the subject in several contexts.
    Returns (d_mlp,)."""
    keys = [run_with_cache(model, tokens[None], names=[key_name(layer)])[1][key_name(layer)][0, pos]
            for tokens, pos in prompts]
    return torch.stack(keys).mean(dim=0)


def key_second_moment(model, tokens, mask, layer):
    """C = E[k kᵀ]: the uncentred second moment of the keys of layer ``layer`` over the real
    tokens of a batch of text (``tokens`` (batch, pos), ``mask`` (batch, pos): 1 at real tokens,
    0 at padding). In float64; returns (d_mlp, d_mlp)."""
    _, cache = run_with_cache(model, tokens, names=[key_name(layer)])
    keys = cache[key_name(layer)][mask.bool()].double()
    return keys.T @ keys / len(keys)


def added_at(delta, positions):
    """A patch that adds ``delta`` to an activation (batch, pos, d) at ``positions[i]`` of row i
    (``positions``: one position per row, or one int for every row)."""
    def patch(activation, _):
        where = torch.as_tensor(positions).expand(activation.shape[0])
        at = F.one_hot(where, activation.shape[1]).to(activation.dtype)
        return activation + at[:, :, None] * delta
    return patch


def padded(prompts, pad_id=0):
    """One batch of ``prompts`` (a list of ``(tokens, subject_last_position)``), padded at the
    end with ``pad_id``: (tokens (batch, pos), each row's subject position, each row's last
    position)."""
    length = max(len(tokens) for tokens, _ in prompts)
    batch = torch.full((len(prompts), length), pad_id, dtype=torch.long)
    for row, (tokens, _) in enumerate(prompts):
        batch[row, :len(tokens)] = tokens
    return (batch, torch.tensor([int(pos) for _, pos in prompts]),
            torch.tensor([len(tokens) - 1 for tokens, _ in prompts]))


def optimise_value(model, prompts, kl_prompts, layer, target, steps=20, lr=0.5,
                   kl_factor=0.0625, weight_decay=0.5):
    """v*: the MLP output at the subject's last token that makes the model say ``target``.

    A vector δ is added to ``blocks.{layer}.hook_mlp_out`` at the subject's last token of every
    prompt (``prompts`` and ``kl_prompts``: lists of ``(tokens, subject_last_position)``) and
    trained by Adam (``lr``) for ``steps`` steps on the loss

        mean over prompts of −log p(target) after the prompt
        + kl_factor · KL(p_δ ‖ p_0), the next-token distributions after the kl_prompts, with δ
          and without it (mean over the kl_prompts)
        + weight_decay · ‖δ‖ / ‖v₀‖²,

    where v₀ is the unedited MLP output at the subject of the first prompt. The model's weights
    are not trained or changed. Returns (v* = v₀ + δ, (d_model,), and the mean probability of
    ``target`` over ``prompts`` with the final δ)."""
    name = f"blocks.{layer}.hook_mlp_out"
    tokens, subjects, lasts = padded([*prompts, *kl_prompts])  # one batch: prompts, then KL rows
    rows, n = torch.arange(len(tokens)), len(prompts)

    def log_probs(delta):
        with patched(model, {name: added_at(delta, subjects)}):
            return model(tokens).logits[rows, lasts].log_softmax(dim=-1)

    with torch.no_grad():
        kl_before = log_probs(torch.zeros(model.config.n_embd))[n:]
    v0 = run_with_cache(model, tokens[:1], names=[name])[1][name][0, subjects[0]]
    delta = torch.zeros(model.config.n_embd, requires_grad=True)
    optimizer = torch.optim.Adam([delta], lr=lr)
    for _ in range(steps):
        after = log_probs(delta)
        nll = -after[:n, target].mean()
        kl = F.kl_div(kl_before, after[n:], log_target=True, reduction="batchmean")
        loss = nll + kl_factor * kl + weight_decay * delta.norm() / v0.norm() ** 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        prob = log_probs(delta)[:n, target].exp().mean().item()
    return v0 + delta.detach(), prob


def rank_one_update(weight, bias, key, value, second_moment):
    """The new ``c_proj.weight`` (Conv1D layout (d_mlp, d_model): output ``k @ W + b``) that maps
    ``key`` to ``value`` and changes the output of C-typical keys as little as possible:

        W' = W + u rᵀ,  u = C⁻¹k* / ((C⁻¹k*)ᵀ k*),  r = v* − (k* W + b).

    Computed in float64 and returned in ``weight``'s dtype."""
    key = key.double()
    c_inv_key = solve_second_moment(second_moment, key)
    u = c_inv_key / (c_inv_key @ key)
    residual = value.double() - (key @ weight.double() + bias.double())
    return (weight.double() + torch.outer(u, residual)).to(weight.dtype)


def solve_second_moment(second_moment, key):
    """C⁻¹ k, or a ValueError when C is singular (too few tokens of text, or dead neurons: add a
    ridge with ``with_ridge``)."""
    try:
        solved = torch.linalg.solve(second_moment.double(), key.double())
    except RuntimeError:  # torch's message for an exactly singular matrix
        solved = None
    if solved is None or not torch.isfinite(solved).all() or torch.linalg.cond(
            second_moment.double()) > 1e12:
        raise ValueError("the key second moment C is singular (some keys never vary on the "
                         "text it was measured on): measure it on more text, or add a ridge "
                         "with with_ridge(C)")
    return solved


def with_ridge(second_moment, ridge=1e-4):
    """C plus ``ridge`` times its mean diagonal on the diagonal, so that it is invertible when
    some MLP neurons never fire on the text."""
    eye = torch.eye(len(second_moment), dtype=second_moment.dtype)
    return second_moment + ridge * second_moment.diagonal().mean() * eye


def c_proj(model, layer):
    return model.transformer.h[check_layer(model, layer)].mlp.c_proj


@contextlib.contextmanager
def edited(model, layer, weight):
    """Within the block, layer ``layer``'s ``c_proj.weight`` is ``weight``; afterwards the model
    is exactly as it was, even when the block raises. A weight with NaN or infinite values is
    refused before anything changes."""
    projection = c_proj(model, layer)
    if weight.shape != projection.weight.shape:
        raise ValueError(f"the edited weight has shape {tuple(weight.shape)}, but layer {layer}'s "
                         f"c_proj.weight has shape {tuple(projection.weight.shape)}")
    if not torch.isfinite(weight).all():
        raise ValueError(f"the edit of layer {layer} has NaN or infinite weights; the model was "
                         f"left unchanged")
    original = projection.weight.detach().clone()
    with torch.no_grad():
        projection.weight.copy_(weight)
    try:
        yield model
    finally:
        with torch.no_grad():
            projection.weight.copy_(original)


def rome_weight(model, prompts, kl_prompts, layer, target, second_moment, **value_options):
    """The ROME edit of layer ``layer`` as a new ``c_proj.weight`` (the model is not changed):
    k* from ``prompts``, v* by ``optimise_value``, and the rank-one update. Returns (weight, the
    probability of ``target`` that v* reached)."""
    projection = c_proj(model, layer)
    key = subject_key(model, prompts, layer)
    value, prob = frozen_call(model, optimise_value, model, prompts, kl_prompts, layer, target,
                              **value_options)
    weight = rank_one_update(projection.weight.detach(), projection.bias.detach(), key, value,
                             second_moment)
    if not torch.isfinite(weight).all():
        raise ValueError(f"the ROME edit of layer {layer} produced NaN or infinite weights "
                         f"(v* diverged: lower the learning rate); the model was left unchanged")
    return weight, prob


def frozen_call(model, fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` with every parameter of ``model`` frozen (no gradient is kept for
    them), each parameter's ``requires_grad`` put back afterwards."""
    before = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        return fn(*args, **kwargs)
    finally:
        for p, flag in zip(model.parameters(), before):
            p.requires_grad_(flag)


# ---------------------------------------------------------------------------------------------
# 3 · Evaluating an edit
# ---------------------------------------------------------------------------------------------


SCORES = ("efficacy", "paraphrase", "neighbourhood", "same_person", "same_name")


def edit_scores(model, tokenizer, request):
    """How an edit (already applied to ``model``) does on one ``Request``, as a dict of floats:

    - ``efficacy``: 1.0 if the rewrite prompt gives the new object a larger logit than the true
      object, else 0.0;
    - ``paraphrase``: the share of the paraphrases where the new object beats the true one;
    - ``neighbourhood``: the share of the neighbours (other people with the same true object)
      where the true object still beats the new one;
    - ``same_person``: the share of the same person's prompts for other relations whose top-1
      next token is still their object;
    - ``same_name``: the same for the prompts about people who share a name token with the
      subject (this relation).
    A score with no prompts is NaN."""
    new, true = tokenizer.convert_tokens_to_ids([request.new_object, request.prompt.object])

    def share(prompts, score):
        if not prompts:
            return float("nan")
        logits = last_token_logits(model, tokenizer, [p.prompt for p in prompts])
        return score(logits, prompts).float().mean().item()

    def new_wins(logits, prompts):
        return logits[:, new] > logits[:, true]

    def still_right(logits, prompts):
        objects = torch.tensor(tokenizer.convert_tokens_to_ids([p.object for p in prompts]))
        return logits.argmax(dim=-1) == objects

    return {"efficacy": share([request.prompt], new_wins),
            "paraphrase": share(request.paraphrases, new_wins),
            "neighbourhood": share(request.neighbours, lambda logits, p: ~new_wins(logits, p)),
            "same_person": share(request.same_person, still_right),
            "same_name": share(request.same_name, still_right)}


def logits_with_weight(model, layer, weight, tokens):
    """The model's logits on ``tokens`` (batch, pos) with layer ``layer``'s ``c_proj.weight``
    replaced by ``weight`` for this call only (differentiable in ``weight``)."""
    name = f"transformer.h.{layer}.mlp.c_proj.weight"
    return torch.func.functional_call(model, {name: weight}, (tokens,)).logits


def finetune_layer(model, prompts, layer, target, steps=25, lr=5e-4, max_change=5e-3):
    """The FT-L baseline: fine-tune layer ``layer``'s ``c_proj.weight`` alone so that the model
    says ``target`` after each of ``prompts`` (1-D token tensors), with every entry kept within
    ``max_change`` of its original value.

    Adam (``lr``) for ``steps`` steps on the mean −log p(target) at the final position; after
    each step every entry is clamped back into [W − max_change, W + max_change]. The model is not
    changed. Returns the new weight, (d_mlp, d_model)."""
    original = c_proj(model, layer).weight.detach()
    weight = original.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([weight], lr=lr)
    for _ in range(steps):
        nll = -torch.stack([logits_with_weight(model, layer, weight, tokens[None])[0, -1]
                            .log_softmax(dim=-1)[target] for tokens in prompts]).mean()
        optimizer.zero_grad()
        nll.backward()
        optimizer.step()
        with torch.no_grad():
            weight.copy_(torch.maximum(torch.minimum(weight, original + max_change),
                                       original - max_change))
    return weight.detach()
