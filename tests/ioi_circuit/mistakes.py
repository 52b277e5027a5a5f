"""Realistic wrong answers to the chapter 04 exercises. Every one must be rejected by its check.

Each is written the way a learner would write it, in the notebook's names: ``logit_diff``,
``scalar``, ``normalised``, ``final_metric``, ``copied_from``, ``logit_diff_directions``,
``final_layer_norm``, ``sender_activation`` and ``HEAD_ACTIVATIONS`` refer to what the notebook
defines, which the check hands over. The private helpers below are shared by several mistakes and
see only this module's names, so they use ``run_with_cache`` and plain tensor code."""

import torch

from reference_impl.hooks import patched, run_with_cache

# logit_diff -----------------------------------------------------------------------------------


def logit_diff_item(final_logits, io, s):
    return torch.tensor([(final_logits[i, io[i]] - final_logits[i, s[i]]).item()
                         for i in range(len(io))])


def logit_diff_detached(final_logits, io, s):
    logits = final_logits.detach()
    rows = torch.arange(len(io))
    return logits[rows, io] - logits[rows, s]


def logit_diff_s_minus_io(final_logits, io, s):
    rows = torch.arange(len(io))
    return final_logits[rows, s] - final_logits[rows, io]


def logit_diff_mean(final_logits, io, s):
    rows = torch.arange(len(io))
    return (final_logits[rows, io] - final_logits[rows, s]).mean()


def logit_diff_every_pair(final_logits, io, s):
    return final_logits[:, io] - final_logits[:, s]  # (batch, batch): every prompt's logits


def logit_diff_of_probabilities(final_logits, io, s):
    probs = final_logits.softmax(dim=-1)
    rows = torch.arange(len(io))
    return probs[rows, io] - probs[rows, s]


# ioi_metrics ----------------------------------------------------------------------------------

def ioi_metrics_tensors(final_logits, io, s):
    log_probs = final_logits.log_softmax(dim=-1)
    rows = torch.arange(len(io))
    return {"logit_diff": logit_diff(final_logits, io, s).mean(),
            "accuracy": (final_logits.argmax(dim=-1) == io).float().mean(),
            "log_p_io": log_probs[rows, io].mean(),
            "log_p_s": log_probs[rows, s].mean()}


def ioi_metrics_accuracy_against_s_only(final_logits, io, s):
    log_probs = final_logits.log_softmax(dim=-1)
    rows = torch.arange(len(io))
    diff = logit_diff(final_logits, io, s)
    return {"logit_diff": diff.mean().item(),
            "accuracy": (diff > 0).float().mean().item(),  # IO beats S, not the whole vocabulary
            "log_p_io": log_probs[rows, io].mean().item(),
            "log_p_s": log_probs[rows, s].mean().item()}


def ioi_metrics_accuracy_count(final_logits, io, s):
    log_probs = final_logits.log_softmax(dim=-1)
    rows = torch.arange(len(io))
    return {"logit_diff": logit_diff(final_logits, io, s).mean().item(),
            "accuracy": (final_logits.argmax(dim=-1) == io).sum().item(),
            "log_p_io": log_probs[rows, io].mean().item(),
            "log_p_s": log_probs[rows, s].mean().item()}


def ioi_metrics_softmax(final_logits, io, s):
    probs = final_logits.softmax(dim=-1)
    rows = torch.arange(len(io))
    return {"logit_diff": logit_diff(final_logits, io, s).mean().item(),
            "accuracy": (final_logits.argmax(dim=-1) == io).float().mean().item(),
            "log_p_io": probs[rows, io].mean().item(),
            "log_p_s": probs[rows, s].mean().item()}


def ioi_metrics_log_of_mean_probability(final_logits, io, s):
    probs = final_logits.softmax(dim=-1)
    rows = torch.arange(len(io))
    return {"logit_diff": logit_diff(final_logits, io, s).mean().item(),
            "accuracy": (final_logits.argmax(dim=-1) == io).float().mean().item(),
            "log_p_io": probs[rows, io].mean().log().item(),
            "log_p_s": probs[rows, s].mean().log().item()}


def ioi_metrics_log_softmax_over_batch(final_logits, io, s):
    log_probs = final_logits.log_softmax(dim=0)
    rows = torch.arange(len(io))
    return {"logit_diff": logit_diff(final_logits, io, s).mean().item(),
            "accuracy": (final_logits.argmax(dim=-1) == io).float().mean().item(),
            "log_p_io": log_probs[rows, io].mean().item(),
            "log_p_s": log_probs[rows, s].mean().item()}


def ioi_metrics_other_keys(final_logits, io, s):
    log_probs = final_logits.log_softmax(dim=-1)
    rows = torch.arange(len(io))
    return {"logit_diff": logit_diff(final_logits, io, s).mean().item(),
            "accuracy": (final_logits.argmax(dim=-1) == io).float().mean().item(),
            "log_prob_io": log_probs[rows, io].mean().item(),
            "log_prob_s": log_probs[rows, s].mean().item()}


# accumulated_logit_diff -----------------------------------------------------------------------

def _stages(model, tokens, hook="resid_post", embeddings=True):
    """The final position's residual stream at each stage, (stage, batch, d_model), and the
    real final LayerNorm scale there, (batch, 1)."""
    names = (["blocks.0.hook_resid_pre"] if embeddings else []) + [
        f"blocks.{layer}.hook_{hook}" for layer in range(model.config.n_layer)]
    _, cache = run_with_cache(model, tokens, names=names + ["ln_final.hook_scale"])
    return (torch.stack([cache[name][:, -1] for name in names]),
            cache["ln_final.hook_scale"][:, -1])


def accumulated_without_ln_bias(model, tokens, io, s):
    stages, scale = _stages(model, tokens)
    return (final_layer_norm(model, stages, scale) * logit_diff_directions(model, io, s)).sum(-1)


def accumulated_own_scale(model, tokens, io, s):
    stages, _ = _stages(model, tokens)
    with torch.no_grad():
        normed = model.transformer.ln_f(stages)  # each stage normalised by its own scale
    return (normed * logit_diff_directions(model, io, s)).sum(-1)


def accumulated_without_embeddings(model, tokens, io, s):
    stages, scale = _stages(model, tokens, embeddings=False)
    normed = final_layer_norm(model, stages, scale) + model.transformer.ln_f.bias.detach()
    return (normed * logit_diff_directions(model, io, s)).sum(-1)


def accumulated_after_attention(model, tokens, io, s):
    stages, scale = _stages(model, tokens, hook="resid_mid")
    normed = final_layer_norm(model, stages, scale) + model.transformer.ln_f.bias.detach()
    return (normed * logit_diff_directions(model, io, s)).sum(-1)


def accumulated_not_centred(model, tokens, io, s):
    stages, scale = _stages(model, tokens)
    ln_f = model.transformer.ln_f
    normed = stages / scale * ln_f.weight.detach() + ln_f.bias.detach()
    return (normed * logit_diff_directions(model, io, s)).sum(-1)


def accumulated_without_layer_norm(model, tokens, io, s):
    stages, _ = _stages(model, tokens)
    return (stages * logit_diff_directions(model, io, s)).sum(-1)


# logit_diff_attribution -----------------------------------------------------------------------

def _attribution(model, tokens, io, s, centre=True, beta_everywhere=False, mlps=True,
                 own_scale=False, rest=True):
    n_layer = model.config.n_layer
    results = [f"blocks.{layer}.attn.hook_result" for layer in range(n_layer)]
    mlp_outs = [f"blocks.{layer}.hook_mlp_out" for layer in range(n_layer)] if mlps else []
    last = f"blocks.{n_layer - 1}.hook_resid_post"
    _, cache = run_with_cache(model, tokens, names=["hook_embed", "hook_pos_embed", last,
                                                    "ln_final.hook_scale"] + results + mlp_outs)
    parts = torch.cat([cache["hook_embed"][:, -1, None], cache["hook_pos_embed"][:, -1, None],
                       *[cache[name][:, -1] for name in results],
                       *[cache[name][:, -1, None] for name in mlp_outs]], dim=1)
    leftover = cache[last][:, -1] - parts.sum(dim=1) if rest else torch.zeros_like(parts[:, 0])
    parts = torch.cat([parts, leftover[:, None]], dim=1)  # (batch, part, d_model)
    ln_f = model.transformer.ln_f
    if centre:
        parts = parts - parts.mean(dim=-1, keepdim=True)
    if own_scale:
        scale = (parts.var(dim=-1, unbiased=False, keepdim=True) + ln_f.eps).sqrt()
    else:
        scale = cache["ln_final.hook_scale"][:, -1, None]
    normed = parts / scale * ln_f.weight.detach()
    if beta_everywhere:
        normed = normed + ln_f.bias.detach()
    else:
        normed[:, -1] += ln_f.bias.detach()
    W_U = model.lm_head.weight.detach()
    return torch.einsum("bcd,bd->cb", normed, W_U[io] - W_U[s])


def attribution_not_centred(model, tokens, io, s):
    return _attribution(model, tokens, io, s, centre=False)


def attribution_bias_in_every_part(model, tokens, io, s):
    return _attribution(model, tokens, io, s, beta_everywhere=True)


def attribution_without_mlps(model, tokens, io, s):
    return _attribution(model, tokens, io, s, mlps=False)


def attribution_scale_per_part(model, tokens, io, s):
    return _attribution(model, tokens, io, s, own_scale=True)


def attribution_attention_biases_forgotten(model, tokens, io, s):
    return _attribution(model, tokens, io, s, rest=False)  # "biases" is only ln_f's β


def attribution_batch_first(model, tokens, io, s):
    return _attribution(model, tokens, io, s).T


# ioi_attention --------------------------------------------------------------------------------

PAIRS = [("end", "IO"), ("end", "S1"), ("end", "S2"), ("S2", "S1")]


def _patterns(model, tokens, hook="pattern"):
    _, cache = run_with_cache(model, tokens, names=lambda name: name.endswith(f"attn.hook_{hook}"))
    return [cache[f"blocks.{layer}.attn.hook_{hook}"] for layer in range(model.config.n_layer)]


def attention_first_prompt_positions(model, tokens, positions):
    patterns = _patterns(model, tokens)
    return torch.stack([
        torch.stack([p[:, :, positions[query][0], positions[key][0]].mean(dim=0)
                     for p in patterns])
        for query, key in PAIRS])


def attention_query_and_key_swapped(model, tokens, positions):
    patterns = _patterns(model, tokens)
    rows = torch.arange(len(tokens))
    return torch.stack([
        torch.stack([p[rows, :, positions[key], positions[query]].mean(dim=0) for p in patterns])
        for query, key in PAIRS])


def attention_rows_in_another_order(model, tokens, positions):
    patterns = _patterns(model, tokens)
    rows = torch.arange(len(tokens))
    pairs = [("S2", "S1"), ("end", "IO"), ("end", "S1"), ("end", "S2")]
    return torch.stack([
        torch.stack([p[rows, :, positions[query], positions[key]].mean(dim=0) for p in patterns])
        for query, key in pairs])


def attention_every_pair_of_prompts(model, tokens, positions):
    patterns = _patterns(model, tokens)
    # without the row index, prompt i's query meets prompt j's key as well: (batch, head, batch)
    return torch.stack([
        torch.stack([p[:, :, positions[query], positions[key]].mean(dim=(0, 2))
                     for p in patterns])
        for query, key in PAIRS])


def attention_scores_not_pattern(model, tokens, positions):
    scores = _patterns(model, tokens, hook="attn_scores")
    rows = torch.arange(len(tokens))
    return torch.stack([
        torch.stack([p[rows, :, positions[query], positions[key]].mean(dim=0) for p in scores])
        for query, key in PAIRS])


def attention_summed_over_prompts(model, tokens, positions):
    patterns = _patterns(model, tokens)
    rows = torch.arange(len(tokens))
    return torch.stack([
        torch.stack([p[rows, :, positions[query], positions[key]].sum(dim=0) for p in patterns])
        for query, key in PAIRS])


def attention_layers_first(model, tokens, positions):
    patterns = _patterns(model, tokens)
    rows = torch.arange(len(tokens))
    return torch.stack([
        torch.stack([p[rows, :, positions[query], positions[key]].mean(dim=0)
                     for query, key in PAIRS])
        for p in patterns])  # (n_layer, 4, n_head)


# residual_patching ----------------------------------------------------------------------------

def residual_normalised_backwards(model, clean_tokens, corrupted_tokens, metric):
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(model.config.n_layer)]
    _, clean = run_with_cache(model, clean_tokens, names=names)
    clean_metric = final_metric(model, clean_tokens, metric)
    corrupted_metric = final_metric(model, corrupted_tokens, metric)
    grid = torch.zeros(len(names), clean_tokens.shape[1])
    for layer, name in enumerate(names):
        for pos in range(clean_tokens.shape[1]):
            patch = copied_from((slice(None), pos), clean[name])
            grid[layer, pos] = final_metric(model, corrupted_tokens, metric, {name: patch})
    return normalised(grid, corrupted_metric, clean_metric)  # clean → 0, corrupted → 1


def residual_resid_post(model, clean_tokens, corrupted_tokens, metric):
    names = [f"blocks.{layer}.hook_resid_post" for layer in range(model.config.n_layer)]
    _, clean = run_with_cache(model, clean_tokens, names=names)
    clean_metric = final_metric(model, clean_tokens, metric)
    corrupted_metric = final_metric(model, corrupted_tokens, metric)
    grid = torch.zeros(len(names), clean_tokens.shape[1])
    for layer, name in enumerate(names):
        for pos in range(clean_tokens.shape[1]):
            patch = copied_from((slice(None), pos), clean[name])
            grid[layer, pos] = final_metric(model, corrupted_tokens, metric, {name: patch})
    return normalised(grid, clean_metric, corrupted_metric)


def residual_all_positions_at_once(model, clean_tokens, corrupted_tokens, metric):
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(model.config.n_layer)]
    _, clean = run_with_cache(model, clean_tokens, names=names)
    clean_metric = final_metric(model, clean_tokens, metric)
    corrupted_metric = final_metric(model, corrupted_tokens, metric)
    grid = torch.zeros(len(names), clean_tokens.shape[1])
    for layer, name in enumerate(names):
        for pos in range(clean_tokens.shape[1]):
            patch = copied_from(slice(None), clean[name])  # the whole layer, every position
            grid[layer, pos] = final_metric(model, corrupted_tokens, metric, {name: patch})
    return normalised(grid, clean_metric, corrupted_metric)


def residual_clean_cache_changed_in_place(model, clean_tokens, corrupted_tokens, metric):
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(model.config.n_layer)]
    _, clean = run_with_cache(model, clean_tokens, names=names)
    clean_metric = final_metric(model, clean_tokens, metric)
    corrupted_metric = final_metric(model, corrupted_tokens, metric)
    grid = torch.zeros(len(names), clean_tokens.shape[1])
    for layer, name in enumerate(names):
        for pos in range(clean_tokens.shape[1]):
            def patch(activation, _, name=name, pos=pos):
                new = clean[name]  # no .clone(): the writes below overwrite the clean cache
                new[:, :pos] = activation[:, :pos]
                new[:, pos + 1:] = activation[:, pos + 1:]
                return new
            grid[layer, pos] = final_metric(model, corrupted_tokens, metric, {name: patch})
    return normalised(grid, clean_metric, corrupted_metric)


def residual_not_normalised(model, clean_tokens, corrupted_tokens, metric):
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(model.config.n_layer)]
    _, clean = run_with_cache(model, clean_tokens, names=names)
    grid = torch.zeros(len(names), clean_tokens.shape[1])
    for layer, name in enumerate(names):
        for pos in range(clean_tokens.shape[1]):
            patch = copied_from((slice(None), pos), clean[name])
            grid[layer, pos] = final_metric(model, corrupted_tokens, metric, {name: patch})
    return grid


def residual_corrupted_into_clean(model, clean_tokens, corrupted_tokens, metric):
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(model.config.n_layer)]
    _, corrupted = run_with_cache(model, corrupted_tokens, names=names)
    clean_metric = final_metric(model, clean_tokens, metric)
    corrupted_metric = final_metric(model, corrupted_tokens, metric)
    grid = torch.zeros(len(names), clean_tokens.shape[1])
    for layer, name in enumerate(names):
        for pos in range(clean_tokens.shape[1]):
            patch = copied_from((slice(None), pos), corrupted[name])
            grid[layer, pos] = final_metric(model, clean_tokens, metric, {name: patch})
    return normalised(grid, clean_metric, corrupted_metric)


# head_patching --------------------------------------------------------------------------------

def _head_grid(model, clean_tokens, corrupted_tokens, metric, activation, by_position, index_of,
               normalise=True):
    """The head-patching loop with the slice chosen by ``index_of(head, pos)``."""
    n_layer, n_head = model.config.n_layer, model.config.n_head
    names = [f"blocks.{layer}.attn.hook_{activation}" for layer in range(n_layer)]
    _, clean = run_with_cache(model, clean_tokens, names=names)
    logits, _ = run_with_cache(model, clean_tokens, names=[])
    clean_metric = float(metric(logits[:, -1]))
    logits, _ = run_with_cache(model, corrupted_tokens, names=[])
    corrupted_metric = float(metric(logits[:, -1]))
    positions = range(clean_tokens.shape[1]) if by_position else [slice(None)]
    grid = torch.zeros(n_layer, n_head, len(positions))
    for layer, name in enumerate(names):
        for head in range(n_head):
            for i, pos in enumerate(positions):
                index = index_of(head, pos)

                def patch(act, _, index=index, source=clean[name]):
                    act = act.clone()
                    act[index] = source[index]
                    return act

                logits, _ = run_with_cache(model, corrupted_tokens, names=[],
                                           patches={name: patch})
                grid[layer, head, i] = float(metric(logits[:, -1]))
    if normalise:
        grid = (grid - corrupted_metric) / (clean_metric - corrupted_metric)
    return grid if by_position else grid[..., 0]


def _right_index(activation):
    if activation == "pattern":
        return lambda head, pos: (slice(None), head, pos)
    return lambda head, pos: (slice(None), pos, head)


def head_patching_whole_layer(model, clean_tokens, corrupted_tokens, metric, activation="z",
                              by_position=False):
    def index_of(head, pos):  # the head is never used: every head of the layer is patched
        return (slice(None), slice(None), pos) if activation == "pattern" else (slice(None), pos)
    return _head_grid(model, clean_tokens, corrupted_tokens, metric, activation, by_position,
                      index_of)


def head_patching_not_normalised(model, clean_tokens, corrupted_tokens, metric, activation="z",
                                 by_position=False):
    return _head_grid(model, clean_tokens, corrupted_tokens, metric, activation, by_position,
                      _right_index(activation), normalise=False)


def head_patching_always_z(model, clean_tokens, corrupted_tokens, metric, activation="z",
                           by_position=False):
    return _head_grid(model, clean_tokens, corrupted_tokens, metric, "z", by_position,
                      _right_index("z"))


def head_patching_pattern_key_column(model, clean_tokens, corrupted_tokens, metric,
                                     activation="z", by_position=False):
    if activation == "pattern":
        def index_of(head, pos):  # the key column p, not the query row p
            return (slice(None), head, slice(None), pos)
    else:
        index_of = _right_index(activation)
    return _head_grid(model, clean_tokens, corrupted_tokens, metric, activation, by_position,
                      index_of)


def head_patching_z_indexed_like_pattern(model, clean_tokens, corrupted_tokens, metric,
                                         activation="z", by_position=False):
    return _head_grid(model, clean_tokens, corrupted_tokens, metric, activation, by_position,
                      _right_index("pattern"))


def head_patching_positions_before_heads(model, clean_tokens, corrupted_tokens, metric,
                                         activation="z", by_position=False):
    grid = _head_grid(model, clean_tokens, corrupted_tokens, metric, activation, by_position,
                      _right_index(activation))
    return grid.transpose(1, 2) if by_position else grid  # (n_layer, pos, n_head)


# path_patching --------------------------------------------------------------------------------

def _copy(index, source):
    def patch(activation, _):
        activation = activation.clone()
        activation[index] = source[index]
        return activation
    return patch


def _metric_of(model, tokens, metric, patches=None):
    logits, _ = run_with_cache(model, tokens, names=[], patches=patches)
    return float(metric(logits[:, -1]))


def _path(model, clean_tokens, corrupted_tokens, metric, sender, receivers, freeze_heads=True,
          freeze_mlps=False, whole_receiver_layer=False, whole_sender_layer=False,
          receivers_from_corrupted=False, denoising=False, from_corrupted=False):
    n_layer = model.config.n_layer
    if denoising:  # the sender's clean value into a corrupted run
        clean_tokens, corrupted_tokens = corrupted_tokens, clean_tokens
    z_names = [f"blocks.{layer}.attn.hook_z" for layer in range(n_layer)]
    mlp_names = ([] if getattr(model.config, "attention_only", False)
                 else [f"blocks.{layer}.hook_mlp_out" for layer in range(n_layer)])
    layer, part = sender
    sender_name = f"blocks.{layer}.hook_mlp_out" if part == "mlp" else f"blocks.{layer}.attn.hook_z"
    _, clean = run_with_cache(model, clean_tokens, names=z_names + mlp_names)
    _, corrupted = run_with_cache(model, corrupted_tokens, names=z_names + mlp_names)
    clean_metric = _metric_of(model, clean_tokens, metric)
    corrupted_metric = _metric_of(model, corrupted_tokens, metric)

    def frozen(z, name):
        new = clean[name].clone() if freeze_heads else z.clone()
        if name == sender_name:
            if whole_sender_layer:
                new = corrupted[name].clone()
            else:
                new[:, :, part] = corrupted[name][:, :, part]
        return new

    freeze = {name: frozen for name in z_names}
    if freeze_mlps:
        freeze.update({name: (lambda out, name: clean[name]) for name in mlp_names})
    if part == "mlp":
        freeze[sender_name] = lambda out, name: corrupted[name]
    receiver_names = sorted({f"blocks.{l}.attn.hook_{kind}" for l, _, kind in receivers})
    source = corrupted_tokens if receivers_from_corrupted else clean_tokens
    _, sent = run_with_cache(model, source, names=receiver_names,
                             patches=None if receivers_from_corrupted else freeze)
    patches = {}
    for name in receiver_names:
        l, kind = int(name.split(".")[1]), name.rsplit("_", 1)[1]
        heads = [h for lr, h, k in receivers if lr == l and k == kind]
        patches[name] = _copy((slice(None), slice(None), slice(None) if whole_receiver_layer
                               else heads), sent[name])
    value = _metric_of(model, clean_tokens, metric, patches)
    if denoising:  # back to the names of the original runs: how much of the clean metric returns
        return (value - clean_metric) / (corrupted_metric - clean_metric)
    if from_corrupted:
        return (value - corrupted_metric) / (clean_metric - corrupted_metric)
    return (value - clean_metric) / (clean_metric - corrupted_metric)


def path_other_heads_not_frozen(model, clean_tokens, corrupted_tokens, metric, sender, receivers):
    return _path(model, clean_tokens, corrupted_tokens, metric, sender, receivers,
                 freeze_heads=False)


def path_receivers_whole_layer(model, clean_tokens, corrupted_tokens, metric, sender, receivers):
    return _path(model, clean_tokens, corrupted_tokens, metric, sender, receivers,
                 whole_receiver_layer=True)


def path_denoising(model, clean_tokens, corrupted_tokens, metric, sender, receivers):
    return _path(model, clean_tokens, corrupted_tokens, metric, sender, receivers, denoising=True)


def path_mlps_frozen_too(model, clean_tokens, corrupted_tokens, metric, sender, receivers):
    return _path(model, clean_tokens, corrupted_tokens, metric, sender, receivers,
                 freeze_mlps=True)


def path_sender_whole_layer(model, clean_tokens, corrupted_tokens, metric, sender, receivers):
    return _path(model, clean_tokens, corrupted_tokens, metric, sender, receivers,
                 whole_sender_layer=True)


def path_receivers_from_corrupted_run(model, clean_tokens, corrupted_tokens, metric, sender,
                                      receivers):
    return _path(model, clean_tokens, corrupted_tokens, metric, sender, receivers,
                 receivers_from_corrupted=True)


def path_normalised_like_activation_patching(model, clean_tokens, corrupted_tokens, metric,
                                             sender, receivers):
    return _path(model, clean_tokens, corrupted_tokens, metric, sender, receivers,
                 from_corrupted=True)


# attribution_patching -------------------------------------------------------------------------

def _attribution_patching(model, clean_tokens, corrupted_tokens, metric, names,
                          gradient_on="corrupted", divide=True, reduce="sum", backward=False,
                          sign=1):
    _, clean = run_with_cache(model, clean_tokens, names=names)
    _, corrupted = run_with_cache(model, corrupted_tokens, names=names)
    clean_metric = _metric_of(model, clean_tokens, metric)
    kept = {}

    def keep(activation, name):
        if backward:
            activation.retain_grad()
        kept[name] = activation

    tokens = corrupted_tokens if gradient_on == "corrupted" else clean_tokens
    with torch.enable_grad(), patched(model, {name: keep for name in names}):
        value = metric(model(tokens).logits[:, -1])
        if backward:
            value.backward()
            grads = [kept[name].grad for name in names]
        else:
            grads = torch.autograd.grad(value, [kept[name] for name in names])
    corrupted_metric = _metric_of(model, corrupted_tokens, metric)
    scale = clean_metric - corrupted_metric if divide else 1.0
    out = {}
    for name, grad in zip(names, grads):
        product = sign * (clean[name] - corrupted[name]) * grad
        if reduce == "sum":
            product = product.sum(dim=0)
        elif reduce == "mean":
            product = product.mean(dim=0)
        out[name] = product / scale
    return out


def attribution_gradient_on_clean_run(model, clean_tokens, corrupted_tokens, metric, names):
    return _attribution_patching(model, clean_tokens, corrupted_tokens, metric, names,
                                 gradient_on="clean")


def attribution_not_divided(model, clean_tokens, corrupted_tokens, metric, names):
    return _attribution_patching(model, clean_tokens, corrupted_tokens, metric, names,
                                 divide=False)


def attribution_with_backward(model, clean_tokens, corrupted_tokens, metric, names):
    return _attribution_patching(model, clean_tokens, corrupted_tokens, metric, names,
                                 backward=True)


def attribution_mean_over_batch(model, clean_tokens, corrupted_tokens, metric, names):
    return _attribution_patching(model, clean_tokens, corrupted_tokens, metric, names,
                                 reduce="mean")


def attribution_corrupted_minus_clean(model, clean_tokens, corrupted_tokens, metric, names):
    return _attribution_patching(model, clean_tokens, corrupted_tokens, metric, names, sign=-1)


def attribution_batch_axis_kept(model, clean_tokens, corrupted_tokens, metric, names):
    return _attribution_patching(model, clean_tokens, corrupted_tokens, metric, names,
                                 reduce=None)


# mean_ablation_patches ------------------------------------------------------------------------

def _mean_ablation(model, reference_tokens, keep, dims=(0,), zero=False, invert=False,
                   own_run=False, whole_layer=False):
    keep = {tuple(head) for head in keep}
    names = [f"blocks.{layer}.attn.hook_z" for layer in range(model.config.n_layer)]
    _, cache = run_with_cache(model, reference_tokens, names=names)
    patches = {}
    for layer, name in enumerate(names):
        ablated = [head for head in range(model.config.n_head)
                   if ((layer, head) in keep) == invert]
        if not ablated:
            continue
        if whole_layer:
            ablated = list(range(model.config.n_head))
        mean = cache[name].mean(dim=dims, keepdim=True)[0]
        if zero:
            mean = torch.zeros_like(mean)

        def patch(z, _, ablated=ablated, mean=mean):
            z = z.clone()
            source = z.mean(dim=0) if own_run else mean.expand_as(z[0])
            z[:, :, ablated] = source[:, ablated]
            return z

        patches[name] = patch
    return patches


def mean_ablation_over_positions_too(model, reference_tokens, keep):
    return _mean_ablation(model, reference_tokens, keep, dims=(0, 1))


def mean_ablation_zero(model, reference_tokens, keep):
    return _mean_ablation(model, reference_tokens, keep, zero=True)


def mean_ablation_of_the_kept_heads(model, reference_tokens, keep):
    return _mean_ablation(model, reference_tokens, keep, invert=True)


def mean_ablation_over_the_patched_run(model, reference_tokens, keep):
    return _mean_ablation(model, reference_tokens, keep, own_run=True)


def mean_ablation_whole_layer(model, reference_tokens, keep):
    return _mean_ablation(model, reference_tokens, keep, whole_layer=True)


def mean_ablation_late_binding(model, reference_tokens, keep):
    keep = {tuple(head) for head in keep}
    names = [f"blocks.{layer}.attn.hook_z" for layer in range(model.config.n_layer)]
    _, cache = run_with_cache(model, reference_tokens, names=names)
    patches = {}
    for layer, name in enumerate(names):
        ablated = [head for head in range(model.config.n_head) if (layer, head) not in keep]
        if not ablated:
            continue
        mean = cache[name].mean(dim=0)

        def patch(z, _):  # reads `ablated` and `mean` when it runs: the last layer's
            z = z.clone()
            z[:, :, ablated] = mean[:, ablated]
            return z

        patches[name] = patch
    return patches


# generic ---------------------------------------------------------------------------------------

def raises_index_error(*args, **kwargs):
    return [][0]


def loops_forever(*args, **kwargs):
    while True:
        pass


def ioi_attention_noisy_but_right(model, tokens, positions):
    import sys
    import warnings

    print("debugging", file=sys.stderr)
    print("shapes look fine")
    warnings.warn("this is only a warning")
    patterns = _patterns(model, tokens)
    rows = torch.arange(len(tokens))
    return torch.stack([
        torch.stack([p[rows, :, positions[query], positions[key]].mean(dim=0) for p in patterns])
        for query, key in PAIRS])


def mean_ablation_noisy_but_right(model, reference_tokens, keep):
    """Right patches that print and warn each time the model runs them."""
    import warnings

    patches = _mean_ablation(model, reference_tokens, keep)

    def noisy(fn):
        def patch(z, name):
            print(f"ablating {name}")
            warnings.warn("a warning from inside a patch")
            return fn(z, name)
        return patch

    return {name: noisy(fn) for name, fn in patches.items()}


def accumulated_hook_then_raises(model, tokens, io, s):
    """Registers a raw hook that zeroes block 0's output, and fails before taking it off."""
    def zero_output(module, inputs, output):
        if isinstance(output, tuple):
            return (torch.zeros_like(output[0]),) + output[1:]
        return torch.zeros_like(output)

    model.transformer.h[0].register_forward_hook(zero_output)
    model(tokens)
    raise RuntimeError("something went wrong before handle.remove()")


def accumulated_hook_left_behind(model, tokens, io, s):
    """Right values, read with a raw hook it never takes off."""
    seen = []
    model.transformer.h[0].register_forward_hook(lambda module, inputs, output: seen.append(1))
    stages, scale = _stages(model, tokens)
    normed = final_layer_norm(model, stages, scale) + model.transformer.ln_f.bias.detach()
    return (normed * logit_diff_directions(model, io, s)).sum(-1)


# Each mistake, with a fragment of the message that must reject it: the reason it was written for.
MISTAKES = {
    "logit_diff": {
        logit_diff_item: "cut the result off the computation graph",
        logit_diff_detached: "cut the result off the computation graph",
        logit_diff_s_minus_io: "has wrong values",
        logit_diff_mean: "expected shape",
        logit_diff_every_pair: "expected shape",
        logit_diff_of_probabilities: "has wrong values",
    },
    "ioi_metrics": {
        ioi_metrics_tensors: "is a tensor: return Python floats",
        ioi_metrics_accuracy_against_s_only: "ioi_metrics()['accuracy']",
        ioi_metrics_accuracy_count: "ioi_metrics()['accuracy']",
        ioi_metrics_softmax: "ioi_metrics()['log_p_io']",
        ioi_metrics_log_of_mean_probability: "ioi_metrics()['log_p_io']",
        ioi_metrics_log_softmax_over_batch: "ioi_metrics()['log_p_io']",
        ioi_metrics_other_keys: "should return a dict with the keys",
    },
    "accumulated_logit_diff": {
        accumulated_without_ln_bias: "has wrong values",
        accumulated_own_scale: "has wrong values",
        accumulated_without_embeddings: "expected shape",
        accumulated_after_attention: "has wrong values",
        accumulated_not_centred: "has wrong values",
        accumulated_without_layer_norm: "has wrong values",
    },
    "logit_diff_attribution": {
        attribution_not_centred: "has wrong values",
        attribution_bias_in_every_part: "has wrong values",
        attribution_without_mlps: "expected shape",
        attribution_scale_per_part: "has wrong values",
        attribution_attention_biases_forgotten: "has wrong values",
        attribution_batch_first: "expected shape",
    },
    "ioi_attention": {
        attention_first_prompt_positions: "has wrong values",
        attention_query_and_key_swapped: "has wrong values",
        attention_rows_in_another_order: "has wrong values",
        attention_every_pair_of_prompts: "has wrong values",
        attention_scores_not_pattern: "has wrong values",
        attention_summed_over_prompts: "has wrong values",
        attention_layers_first: "expected shape",
    },
    "residual_patching": {
        residual_normalised_backwards: "has wrong values",
        residual_resid_post: "has wrong values",
        residual_all_positions_at_once: "has wrong values",
        residual_clean_cache_changed_in_place: "has wrong values",
        residual_not_normalised: "has wrong values",
        residual_corrupted_into_clean: "has wrong values",
    },
    "head_patching": {
        head_patching_whole_layer: "has wrong values",
        head_patching_not_normalised: "has wrong values",
        head_patching_always_z: "activation='k'",
        head_patching_pattern_key_column: "activation='pattern', by_position=True",
        head_patching_z_indexed_like_pattern: "activation='z', by_position=False",
        head_patching_positions_before_heads: "expected shape",
    },
    "path_patching": {
        path_other_heads_not_frozen: "path_patching from",
        path_receivers_whole_layer: "path_patching from",
        path_denoising: "path_patching from",
        path_mlps_frozen_too: "path_patching from",
        path_sender_whole_layer: "path_patching from",
        path_receivers_from_corrupted_run: "path_patching from",
        path_normalised_like_activation_patching: "path_patching from",
    },
    "attribution_patching": {
        attribution_gradient_on_clean_run: "has wrong values",
        attribution_not_divided: "has wrong values",
        attribution_with_backward: "left gradients in the model's parameters",
        attribution_mean_over_batch: "has wrong values",
        attribution_corrupted_minus_clean: "has wrong values",
        attribution_batch_axis_kept: "expected shape",
    },
    "mean_ablation_patches": {
        mean_ablation_over_positions_too: "when keeping heads",
        mean_ablation_zero: "when keeping heads",
        mean_ablation_of_the_kept_heads: "when keeping heads",
        mean_ablation_over_the_patched_run: "when keeping heads",
        mean_ablation_whole_layer: "when keeping heads",
        mean_ablation_late_binding: "when keeping heads",
    },
}
