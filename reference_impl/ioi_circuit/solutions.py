"""Chapter 04 reference solutions: the indirect-object-identification circuit.

Every exercise of the chapter is one function here. The chapter notebooks are generated from these
functions: the body after the docstring is the solution region that learners write themselves.

Conventions: a model is a ``transformers`` GPT-2 (``GPT2LMHeadModel``); token batches have shape
``(batch, pos)``, start with BOS, and hold prompts of one template, so that every prompt ends at
the last position. ``io`` and ``s`` are (batch,) token ids. A *metric* takes the logits at the
final position, (batch, vocab), and returns one number as a 0-d tensor (so that it can be
differentiated), for example the mean logit difference. A head is ``(layer, head)``.
"""

import torch

from reference_impl.hooks import patched, run_with_cache

# ---------------------------------------------------------------------------------------------
# 1 · Metrics
# ---------------------------------------------------------------------------------------------


def logit_diff(final_logits, io, s):
    """logit(IO) − logit(S) of every prompt: (batch,), differentiable.

    final_logits: (batch, vocab), the logits at the final position.
    """
    rows = torch.arange(len(io))
    return final_logits[rows, io] - final_logits[rows, s]


def ioi_metrics(final_logits, io, s):
    """The four numbers the chapter follows, each a Python float averaged over the batch.

    ``logit_diff``: mean logit(IO) − logit(S); ``accuracy``: the share of prompts whose top-1 token
    over the whole vocabulary is IO; ``log_p_io`` and ``log_p_s``: mean log-probabilities of IO
    and of S.
    """
    log_probs = final_logits.log_softmax(dim=-1)
    rows = torch.arange(len(io))
    return {"logit_diff": logit_diff(final_logits, io, s).mean().item(),
            "accuracy": (final_logits.argmax(dim=-1) == io).float().mean().item(),
            "log_p_io": log_probs[rows, io].mean().item(),
            "log_p_s": log_probs[rows, s].mean().item()}


def scalar(value, what="the metric"):
    """``value`` as a 0-d tensor, or a ValueError that says what it was instead."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return torch.tensor(float(value))
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{what} returned a {type(value).__name__}; it must return one number "
                         f"(a 0-d tensor)")
    if value.numel() != 1:
        raise ValueError(f"{what} returned a tensor of shape {tuple(value.shape)}, not one "
                         f"number: average it over the batch")
    return value.reshape(())


def normalised(value, clean, corrupted):
    """Where ``value`` lies between the corrupted (0) and the clean (1) metric."""
    return (value - corrupted) / (clean - corrupted)


# ---------------------------------------------------------------------------------------------
# 2 · Direct logit attribution
# ---------------------------------------------------------------------------------------------


def logit_diff_directions(model, io, s):
    """(batch, d_model): the unembedding direction W_U[IO] − W_U[S] of every prompt, which the
    final residual stream (after the final LayerNorm) is read along to give logit(IO) −
    logit(S). ``W_U[t]`` is row t of ``model.lm_head.weight``."""
    W_U = model.lm_head.weight.detach()
    return W_U[io] - W_U[s]


def final_layer_norm(model, x, scale):
    """The final LayerNorm applied to x with its scale frozen: (x − mean(x)) / scale · γ."""
    ln_f = model.transformer.ln_f
    return (x - x.mean(dim=-1, keepdim=True)) / scale * ln_f.weight.detach()


def accumulated_logit_diff(model, tokens, io, s):
    """The logit difference read from the residual stream at the final position after the
    embeddings (``blocks.0.hook_resid_pre``) and after every block (``blocks.L.hook_resid_post``).

    Each stage x goes through the final LayerNorm with its scale frozen at the real final
    residual's (``ln_final.hook_scale`` at the final position): ``(x − mean(x)) / scale · γ + β``,
    then along ``logit_diff_directions``. Returns (n_layer + 1, batch); the last row is the
    model's logit difference.
    """
    names = (["blocks.0.hook_resid_pre"]
             + [f"blocks.{layer}.hook_resid_post" for layer in range(model.config.n_layer)])
    _, cache = run_with_cache(model, tokens, names=names + ["ln_final.hook_scale"])
    stages = torch.stack([cache[name][:, -1] for name in names])  # (stage, batch, d_model)
    normed = (final_layer_norm(model, stages, cache["ln_final.hook_scale"][:, -1])
              + model.transformer.ln_f.bias.detach())
    return (normed * logit_diff_directions(model, io, s)).sum(dim=-1)


def component_labels(model):
    """The names of the parts ``logit_diff_attribution`` returns, in order."""
    n_layer, n_head = model.config.n_layer, model.config.n_head
    heads = [f"{layer}.{head}" for layer in range(n_layer) for head in range(n_head)]
    return ["embed", "pos_embed"] + heads + [f"mlp {layer}" for layer in range(n_layer)] + ["biases"]


def logit_diff_attribution(model, tokens, io, s):
    """Split the logit difference at the final position into what each part wrote directly.

    The final residual stream is the sum of ``hook_embed``, ``hook_pos_embed``, every head's
    ``blocks.L.attn.hook_result``, every ``blocks.L.hook_mlp_out`` and the attention output
    biases. Each part goes through the final LayerNorm with its scale frozen
    (``(c − mean(c)) / scale · γ``) and along ``logit_diff_directions``; the "biases" part is the
    rest of the residual plus the LayerNorm's β. Returns (parts, batch) in the order of
    ``component_labels(model)``; the parts add up to the logit difference.
    """
    n_layer = model.config.n_layer
    results = [f"blocks.{layer}.attn.hook_result" for layer in range(n_layer)]
    mlps = [f"blocks.{layer}.hook_mlp_out" for layer in range(n_layer)]
    last = f"blocks.{n_layer - 1}.hook_resid_post"
    _, cache = run_with_cache(model, tokens, names=["hook_embed", "hook_pos_embed", last,
                                                    "ln_final.hook_scale"] + results + mlps)
    parts = torch.cat([cache["hook_embed"][:, -1, None], cache["hook_pos_embed"][:, -1, None],
                       *[cache[name][:, -1] for name in results],
                       *[cache[name][:, -1, None] for name in mlps]], dim=1)  # (batch, part, d)
    rest = cache[last][:, -1] - parts.sum(dim=1)
    parts = torch.cat([parts, rest[:, None]], dim=1)
    normed = final_layer_norm(model, parts, cache["ln_final.hook_scale"][:, -1, None])
    normed[:, -1] += model.transformer.ln_f.bias.detach()
    return torch.einsum("bcd,bd->cb", normed, logit_diff_directions(model, io, s))


# ---------------------------------------------------------------------------------------------
# 3 · Attention
# ---------------------------------------------------------------------------------------------

ATTENTION_ROWS = ("end → IO", "end → S1", "end → S2", "S2 → S1")


def ioi_attention(model, tokens, positions):
    """How much every head attends between the IOI positions, averaged over the batch.

    positions: {"IO", "S1", "S2", "end"} → (batch,) token positions. Returns (4, n_layer, n_head):
    the attention from the final position to IO, to S1 and to S2, and from S2 to S1, in the
    order of ``ATTENTION_ROWS``.
    """
    _, cache = run_with_cache(model, tokens,
                              names=lambda name: name.endswith("attn.hook_pattern"))
    rows = torch.arange(len(tokens))
    pairs = [("end", "IO"), ("end", "S1"), ("end", "S2"), ("S2", "S1")]
    grids = []
    for query, key in pairs:
        grids.append(torch.stack([
            cache[f"blocks.{layer}.attn.hook_pattern"][rows, :, positions[query],
                                                       positions[key]].mean(dim=0)
            for layer in range(model.config.n_layer)]))
    return torch.stack(grids)


# ---------------------------------------------------------------------------------------------
# 4 · Activation patching
# ---------------------------------------------------------------------------------------------


def final_metric(model, tokens, metric, patches=None):
    """``metric`` of the final logits of one run of ``model`` on ``tokens`` under ``patches``,
    as a Python float."""
    logits, _ = run_with_cache(model, tokens, names=[], patches=patches)
    return scalar(metric(logits[:, -1])).item()


def copied_from(index, source):
    """A patch that copies ``source[index]`` into the activation (out of place)."""
    def patch(activation, _):
        activation = activation.clone()
        activation[index] = source[index]
        return activation
    return patch


def residual_patching(model, clean_tokens, corrupted_tokens, metric):
    """Patch the clean residual stream into the corrupted run, one layer and position at a time.

    For every layer L and position p, run the model on ``corrupted_tokens`` with
    ``blocks.L.hook_resid_pre[:, p]`` replaced by its value on ``clean_tokens``, and take
    ``metric`` of the final logits. Returns (n_layer, pos), normalised: 0 is the corrupted run's
    metric, 1 the clean run's.
    """
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(model.config.n_layer)]
    _, clean = run_with_cache(model, clean_tokens, names=names)
    clean_metric = final_metric(model, clean_tokens, metric)
    corrupted_metric = final_metric(model, corrupted_tokens, metric)
    grid = torch.zeros(len(names), clean_tokens.shape[1])
    for layer, name in enumerate(names):
        for pos in range(clean_tokens.shape[1]):
            patch = copied_from((slice(None), pos), clean[name])
            grid[layer, pos] = final_metric(model, corrupted_tokens, metric, {name: patch})
    return normalised(grid, clean_metric, corrupted_metric)


HEAD_ACTIVATIONS = ("z", "q", "k", "v", "pattern")


def head_patching(model, clean_tokens, corrupted_tokens, metric, activation="z",
                  by_position=False):
    """Patch one head's clean activation into the corrupted run, head by head.

    ``activation`` is one of ``HEAD_ACTIVATIONS``: ``blocks.L.attn.hook_{activation}``. For z, q,
    k and v, of shape (batch, pos, head, d_head), the head's slice is ``[:, :, head]``; for the
    pattern, (batch, head, query, key), it is ``[:, head]``. With ``by_position``, patch one
    position at a time as well: ``[:, p, head]``, or ``[:, head, p]`` (the query row p) for the
    pattern. Returns (n_layer, n_head), or (n_layer, n_head, pos) with ``by_position``,
    normalised as in ``residual_patching``.
    """
    if activation not in HEAD_ACTIVATIONS:
        raise ValueError(f"activation must be one of {HEAD_ACTIVATIONS}, got {activation!r}")
    n_layer, n_head = model.config.n_layer, model.config.n_head
    names = [f"blocks.{layer}.attn.hook_{activation}" for layer in range(n_layer)]
    _, clean = run_with_cache(model, clean_tokens, names=names)
    clean_metric = final_metric(model, clean_tokens, metric)
    corrupted_metric = final_metric(model, corrupted_tokens, metric)
    positions = range(clean_tokens.shape[1]) if by_position else [slice(None)]
    grid = torch.zeros(n_layer, n_head, len(positions))
    for layer, name in enumerate(names):
        for head in range(n_head):
            for i, pos in enumerate(positions):
                index = ((slice(None), head, pos) if activation == "pattern"
                         else (slice(None), pos, head))
                grid[layer, head, i] = final_metric(model, corrupted_tokens, metric,
                                                     {name: copied_from(index, clean[name])})
    grid = normalised(grid, clean_metric, corrupted_metric)
    return grid if by_position else grid[..., 0]


# ---------------------------------------------------------------------------------------------
# 5 · Path patching
# ---------------------------------------------------------------------------------------------


def sender_activation(sender):
    """The activation a path-patching sender writes through: its layer's ``hook_z`` for a head
    ``(layer, head)``, ``hook_mlp_out`` for ``(layer, "mlp")``."""
    layer, part = sender
    return f"blocks.{layer}.hook_mlp_out" if part == "mlp" else f"blocks.{layer}.attn.hook_z"


def path_patching(model, clean_tokens, corrupted_tokens, metric, sender, receivers):
    """The effect of one sender on the metric through the chosen receivers only (Wang et al.).

    sender: ``(layer, head)`` or ``(layer, "mlp")``. receivers: a list of ``(layer, head,
    input)`` with input "q", "k" or "v". Three runs:
    1. cache every head's ``hook_z`` on the clean and the corrupted tokens, and the sender's
       activation (``sender_activation(sender)``: its layer's ``hook_z``, of which the sender owns
       the slice ``[:, :, head]``, or ``blocks.L.hook_mlp_out``) on the corrupted tokens;
    2. run the clean tokens with the sender's activation from the corrupted run and every other
       head's ``hook_z`` frozen at its clean value (MLPs are recomputed); cache the receivers'
       ``blocks.L.attn.hook_{input}`` there;
    3. run the clean tokens with only the receivers' inputs (their head's slice) replaced by the
       values from run 2, and take ``metric``.
    Returns ``(metric_3 − clean) / (clean − corrupted)``: 0 when the path carries nothing, −1 when
    it carries the whole corruption.
    """
    n_layer = model.config.n_layer
    z_names = [f"blocks.{layer}.attn.hook_z" for layer in range(n_layer)]
    sender_name = sender_activation(sender)
    _, clean = run_with_cache(model, clean_tokens, names=z_names)
    _, corrupted = run_with_cache(model, corrupted_tokens, names=z_names + [sender_name])
    clean_metric = final_metric(model, clean_tokens, metric)
    corrupted_metric = final_metric(model, corrupted_tokens, metric)

    def frozen(z, name):
        z = clean[name].clone()
        if name == sender_name:
            z[:, :, sender[1]] = corrupted[name][:, :, sender[1]]
        return z

    freeze = {name: frozen for name in z_names}
    if sender[1] == "mlp":
        freeze[sender_name] = lambda out, name: corrupted[name]
    receiver_names = sorted({f"blocks.{layer}.attn.hook_{kind}" for layer, _, kind in receivers})
    _, sent = run_with_cache(model, clean_tokens, names=receiver_names, patches=freeze)
    patches = {}
    for name in receiver_names:
        layer, kind = int(name.split(".")[1]), name.rsplit("_", 1)[1]
        heads = [head for l, head, k in receivers if l == layer and k == kind]
        patches[name] = copied_from((slice(None), slice(None), heads), sent[name])
    value = final_metric(model, clean_tokens, metric, patches)
    return (value - clean_metric) / (clean_metric - corrupted_metric)


# ---------------------------------------------------------------------------------------------
# 6 · Attribution patching
# ---------------------------------------------------------------------------------------------


def attribution_patching(model, clean_tokens, corrupted_tokens, metric, names):
    """The first-order estimate of activation patching, for every element of every named
    activation at once, from one clean run and one forward and backward pass on the corrupted
    tokens.

    Patching an activation from clean into corrupted changes the metric by about
    ``(clean − corrupted) · ∂metric/∂activation``, the gradient taken on the corrupted run. For
    each name return that product summed over the batch and divided by
    ``metric(clean) − metric(corrupted)``, so that it estimates the normalised patching effect:
    a tensor of the activation's shape without the batch axis. Leave the model's parameters'
    ``.grad`` untouched (``torch.autograd.grad``).
    """
    _, clean = run_with_cache(model, clean_tokens, names=names)
    clean_metric = final_metric(model, clean_tokens, metric)
    corrupted = {}

    def keep(activation, name):
        corrupted[name] = activation

    with torch.enable_grad(), patched(model, {name: keep for name in names}):
        value = scalar(metric(model(corrupted_tokens).logits[:, -1]))
        grads = torch.autograd.grad(value, [corrupted[name] for name in names])
    scale = clean_metric - value.item()
    return {name: ((clean[name] - corrupted[name].detach()) * grad).sum(dim=0) / scale
            for name, grad in zip(names, grads)}


# ---------------------------------------------------------------------------------------------
# 7 · The circuit
# ---------------------------------------------------------------------------------------------


def mean_ablation_patches(model, reference_tokens, keep):
    """Patches that mean-ablate every head not in ``keep``.

    reference_tokens: (batch, pos), prompts of the same template (the ABC prompts). Each head
    outside ``keep`` gets, at every position, its ``hook_z`` averaged over the batch of
    ``reference_tokens`` at that position (one (pos, d_head) mean per head). Heads in ``keep``
    are untouched. Returns {``blocks.L.attn.hook_z``: fn}, one entry per layer with an ablated
    head.
    """
    keep = {tuple(head) for head in keep}
    names = [f"blocks.{layer}.attn.hook_z" for layer in range(model.config.n_layer)]
    _, cache = run_with_cache(model, reference_tokens, names=names)
    patches = {}
    for layer, name in enumerate(names):
        ablated = [head for head in range(model.config.n_head) if (layer, head) not in keep]
        if not ablated:
            continue
        mean = cache[name].mean(dim=0)  # (pos, head, d_head)

        def patch(z, _, ablated=ablated, mean=mean):
            z = z.clone()
            z[:, :, ablated] = mean[:, ablated]
            return z

        patches[name] = patch
    return patches


def circuit_metrics(model, batches, keep):
    """``ioi_metrics`` over several ``IOIBatch``es (one per template) with every head outside
    ``keep`` mean-ablated over its own template's ABC prompts, weighted by batch size. With
    ``keep=None`` nothing is ablated."""
    totals, count = {}, 0
    for batch in batches:
        patches = None if keep is None else mean_ablation_patches(model, batch.corrupted, keep)
        logits, _ = run_with_cache(model, batch.tokens, names=[], patches=patches)
        for key, value in ioi_metrics(logits[:, -1], batch.io, batch.s).items():
            totals[key] = totals.get(key, 0.0) + value * len(batch)
        count += len(batch)
    return {key: value / count for key, value in totals.items()}
