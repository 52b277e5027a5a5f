"""Realistic wrong answers to the chapter 03 exercises. Every one must be rejected by its check.

Each is written the way a learner would write it, in the notebook's names (``detector_scores``,
``next_token_log_probs``, ``head_weights`` ... refer to whatever the notebook defines)."""

import torch

from reference_impl.hooks import run_with_cache

# detector_scores ------------------------------------------------------------------------------


def detector_scores_every_query(pattern):
    queries = torch.arange(pattern.shape[-2])
    previous = pattern[:, :, queries[1:], queries[1:] - 1].mean(dim=(0, 2))
    return torch.stack([pattern[:, :, queries, queries].mean(dim=(0, 2)), previous,
                        pattern[:, :, queries, 0].mean(dim=(0, 2))])


def detector_scores_next_token(pattern):
    queries = torch.arange(2, pattern.shape[-2])
    return torch.stack([pattern[:, :, queries, queries],
                        pattern[:, :, queries - 1, queries],  # query and key mixed up
                        pattern[:, :, queries, 0]]).mean(dim=(1, 3))


def detector_scores_last_key_as_first(pattern):
    queries = torch.arange(2, pattern.shape[-2])
    return torch.stack([pattern[:, :, queries, queries], pattern[:, :, queries, queries - 1],
                        pattern[:, :, queries, -1]]).mean(dim=(1, 3))


def detector_scores_heads_averaged(pattern):
    queries = torch.arange(2, pattern.shape[-2])
    return torch.stack([pattern[:, :, queries, queries], pattern[:, :, queries, queries - 1],
                        pattern[:, :, queries, 0]]).mean(dim=(2, 3))  # over heads, not the batch


def detector_scores_transposed(pattern):
    queries = torch.arange(2, pattern.shape[-2])
    return torch.stack([pattern[:, :, queries, queries], pattern[:, :, queries, queries - 1],
                        pattern[:, :, queries, 0]], dim=-1).mean(dim=(0, 2))


def detector_scores_summed(pattern):
    queries = torch.arange(2, pattern.shape[-2])
    return torch.stack([pattern[:, :, queries, queries], pattern[:, :, queries, queries - 1],
                        pattern[:, :, queries, 0]]).mean(dim=1).sum(dim=-1)


# next_token_log_probs -------------------------------------------------------------------------

def log_probs_softmax_over_positions(logits, tokens):
    return logits[:, :-1].log_softmax(dim=1).gather(-1, tokens[:, 1:, None]).squeeze(-1)


def log_probs_without_log(logits, tokens):
    return logits[:, :-1].softmax(dim=-1).gather(-1, tokens[:, 1:, None]).squeeze(-1)


def log_probs_current_token(logits, tokens):
    return logits[:, :-1].log_softmax(dim=-1).gather(-1, tokens[:, :-1, None]).squeeze(-1)


def log_probs_shifted_logits(logits, tokens):
    return logits[:, 1:].log_softmax(dim=-1).gather(-1, tokens[:, 1:, None]).squeeze(-1)


def log_probs_raw_logits(logits, tokens):
    return logits[:, :-1].gather(-1, tokens[:, 1:, None]).squeeze(-1)


def log_probs_as_loss(logits, tokens):
    return torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:],
                                             reduction="none")


# copy_losses ----------------------------------------------------------------------------------

def copy_losses_with_first_tokens(model, tokens, patches=None):
    length = (tokens.shape[1] - 1) // 2
    logits, _ = run_with_cache(model, tokens, names=[], patches=patches)
    losses = -next_token_log_probs(logits, tokens)
    return losses[:, :length].mean().item(), losses[:, length:].mean().item()


def copy_losses_off_by_one(model, tokens, patches=None):
    length = (tokens.shape[1] - 1) // 2
    logits, _ = run_with_cache(model, tokens, names=[], patches=patches)
    losses = -next_token_log_probs(logits, tokens)
    return losses[:, 2:length + 1].mean().item(), losses[:, length + 2:].mean().item()


def copy_losses_ignores_patches(model, tokens, patches=None):
    length = (tokens.shape[1] - 1) // 2
    losses = -next_token_log_probs(model(tokens).logits, tokens)
    return losses[:, 1:length].mean().item(), losses[:, length + 1:].mean().item()


def copy_losses_log_probs(model, tokens, patches=None):
    length = (tokens.shape[1] - 1) // 2
    logits, _ = run_with_cache(model, tokens, names=[], patches=patches)
    log_probs = next_token_log_probs(logits, tokens)
    return log_probs[:, 1:length].mean().item(), log_probs[:, length + 1:].mean().item()


def copy_losses_tensors(model, tokens, patches=None):
    length = (tokens.shape[1] - 1) // 2
    logits, _ = run_with_cache(model, tokens, names=[], patches=patches)
    losses = -next_token_log_probs(logits, tokens)
    return losses[:, 1:length].mean(dim=1), losses[:, length + 1:].mean(dim=1)


# head_scores ----------------------------------------------------------------------------------

def _patterns(model, tokens):
    _, cache = run_with_cache(model, tokens, names=lambda name: name.endswith("attn.hook_pattern"))
    return torch.stack([cache[f"blocks.{layer}.attn.hook_pattern"]
                        for layer in range(model.config.n_layer)])


def head_scores_duplicate_token_offset(model, tokens):
    length = (tokens.shape[1] - 1) // 2
    patterns = _patterns(model, tokens)
    previous = torch.stack([detector_scores(p)[1] for p in patterns])
    # attends to the earlier copy of the current token itself: a duplicate-token head
    induction = patterns.diagonal(offset=-length, dim1=-2, dim2=-1)[..., 1:]
    return previous, induction.mean(dim=(1, 3))


def head_scores_whole_diagonal(model, tokens):
    length = (tokens.shape[1] - 1) // 2
    patterns = _patterns(model, tokens)
    previous = torch.stack([detector_scores(p)[1] for p in patterns])
    induction = patterns.diagonal(offset=1 - length, dim1=-2, dim2=-1)  # first copy included
    return previous, induction.mean(dim=(1, 3))


def head_scores_swapped(model, tokens):
    length = (tokens.shape[1] - 1) // 2
    patterns = _patterns(model, tokens)
    previous = torch.stack([detector_scores(p)[1] for p in patterns])
    induction = patterns.diagonal(offset=1 - length, dim1=-2, dim2=-1)[..., 2:].mean(dim=(1, 3))
    return induction, previous


def head_scores_mean_over_heads(model, tokens):
    length = (tokens.shape[1] - 1) // 2
    patterns = _patterns(model, tokens)
    previous = torch.stack([detector_scores(p)[1] for p in patterns])
    induction = patterns.diagonal(offset=1 - length, dim1=-2, dim2=-1)[..., 2:]
    return previous, induction.mean(dim=(2, 3))


def head_scores_two_layers(model, tokens):
    length = (tokens.shape[1] - 1) // 2
    _, cache = run_with_cache(model, tokens, names=lambda name: name.endswith("attn.hook_pattern"))
    patterns = torch.stack([cache[f"blocks.{layer}.attn.hook_pattern"] for layer in (0, 1)])
    previous = torch.stack([detector_scores(p)[1] for p in patterns])
    induction = patterns.diagonal(offset=1 - length, dim1=-2, dim2=-1)[..., 2:]
    return previous, induction.mean(dim=(1, 3))


# logit_lens -----------------------------------------------------------------------------------

def _resid(model, tokens, names):
    _, cache = run_with_cache(model, tokens, names=names)
    return torch.stack([cache[name] for name in names])


def logit_lens_without_ln_f(model, tokens):
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{l}.hook_resid_post"
                                           for l in range(model.config.n_layer)]
    with torch.no_grad():
        return model.lm_head(_resid(model, tokens, names))


def logit_lens_plain_layer_norm(model, tokens):
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{l}.hook_resid_post"
                                           for l in range(model.config.n_layer)]
    resid = _resid(model, tokens, names)
    with torch.no_grad():
        return model.lm_head(torch.nn.functional.layer_norm(resid, resid.shape[-1:]))


def logit_lens_tied_unembedding(model, tokens):
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{l}.hook_resid_post"
                                           for l in range(model.config.n_layer)]
    with torch.no_grad():
        return model.transformer.ln_f(_resid(model, tokens, names)) @ model.transformer.wte.weight.T


def logit_lens_after_attention(model, tokens):
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{l}.hook_resid_mid"
                                           for l in range(model.config.n_layer)]
    with torch.no_grad():
        return model.lm_head(model.transformer.ln_f(_resid(model, tokens, names)))


def logit_lens_batch_first(model, tokens):
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{l}.hook_resid_post"
                                           for l in range(model.config.n_layer)]
    with torch.no_grad():
        return model.lm_head(model.transformer.ln_f(_resid(model, tokens, names))).transpose(0, 1)


# direct_logit_attribution ---------------------------------------------------------------------

def _dla(model, tokens, fresh_scale=False, centre=True, gamma=True, beta=True, unbiased=False,
         skip_pos_embed=False, current_token=False):
    n = model.config.n_layer
    last = f"blocks.{n - 1}.hook_resid_post"
    results = [f"blocks.{l}.attn.hook_result" for l in range(n)]
    _, cache = run_with_cache(model, tokens, names=["hook_embed", "hook_pos_embed", last] + results)
    resid = cache[last]
    pos = torch.zeros_like(resid) if skip_pos_embed else cache["hook_pos_embed"]
    parts = torch.cat([cache["hook_embed"][:, :, None], pos[:, :, None],
                       *[cache[name] for name in results]], dim=2)
    parts = torch.cat([parts, (resid - parts.sum(dim=2))[:, :, None]], dim=2)
    ln_f = model.transformer.ln_f
    source = parts if fresh_scale else resid[:, :, None]
    scale = (source.var(dim=-1, unbiased=unbiased, keepdim=True) + ln_f.eps).sqrt()
    normed = (parts - parts.mean(dim=-1, keepdim=True)) if centre else parts
    normed = normed / scale * (ln_f.weight.detach() if gamma else 1)
    if beta:
        normed[:, :, -1] += ln_f.bias.detach()
    targets = tokens[:, :-1] if current_token else tokens[:, 1:]
    unembed = model.lm_head.weight.detach()[targets]
    return torch.einsum("bpcd,bpd->bpc", normed[:, :-1], unembed)


def dla_scale_per_component(model, tokens):
    return _dla(model, tokens, fresh_scale=True)


def dla_not_centred(model, tokens):
    return _dla(model, tokens, centre=False)


def dla_without_ln_weight(model, tokens):
    return _dla(model, tokens, gamma=False)


def dla_without_ln_bias(model, tokens):
    return _dla(model, tokens, beta=False)


def dla_unbiased_variance(model, tokens):
    return _dla(model, tokens, unbiased=True)


def dla_position_embedding_forgotten(model, tokens):
    return _dla(model, tokens, skip_pos_embed=True)


def dla_current_token(model, tokens):
    return _dla(model, tokens, current_token=True)


# ablation_patches -----------------------------------------------------------------------------

def _ablation(model, tokens, heads, method, mean_dims=(0, 1), whole_layer=False, axis=2,
              always_zero=False):
    names = sorted({f"blocks.{layer}.attn.hook_z" for layer, _ in heads})
    _, cache = run_with_cache(model, tokens, names=names)
    patches = {}
    for name in names:
        layer = int(name.split(".")[1])
        chosen = [h for l, h in heads if l == layer]
        mean = cache[name].mean(dim=mean_dims, keepdim=True)
        value = torch.zeros_like(mean) if method == "zero" or always_zero else mean

        def patch(z, _, chosen=chosen, value=value):
            z = z.clone()
            if whole_layer:
                return value.expand_as(z).clone()
            index = [slice(None)] * z.dim()
            index[axis] = chosen
            target = z[tuple(index)]
            z[tuple(index)] = value.expand_as(z)[tuple(index)] if value.dim() == z.dim() \
                else value.expand_as(target)
            return z

        patches[name] = patch
    return patches


def ablation_always_zero(model, tokens, heads, method="mean"):
    return _ablation(model, tokens, heads, method, always_zero=True)


def ablation_mean_over_batch_only(model, tokens, heads, method="mean"):
    return _ablation(model, tokens, heads, method, mean_dims=(0,))


def ablation_mean_over_positions_only(model, tokens, heads, method="mean"):
    return _ablation(model, tokens, heads, method, mean_dims=(1,))


def ablation_whole_layer(model, tokens, heads, method="mean"):
    return _ablation(model, tokens, heads, method, whole_layer=True)


def ablation_positions_for_heads(model, tokens, heads, method="mean"):
    return _ablation(model, tokens, heads, method, axis=1)


def ablation_first_layer_only(model, tokens, heads, method="mean"):
    layer = heads[0][0]
    return _ablation(model, tokens, [(layer, h) for _, h in heads], method)


# head_weights ---------------------------------------------------------------------------------

def _split(model, layer, W_qkv, W_out):
    n_heads, d_model = model.config.n_head, model.config.n_embd
    d_head = d_model // n_heads
    per_head = [W.reshape(d_model, n_heads, d_head).transpose(0, 1)
                for W in W_qkv.split(d_model, dim=1)]
    return (*per_head, W_out.reshape(n_heads, d_head, d_model))


def head_weights_linear_convention(model, layer):
    attn = model.transformer.h[layer].attn
    return _split(model, layer, attn.c_attn.weight.detach().T.reshape(model.config.n_embd, -1),
                  attn.c_proj.weight.detach().T)


def head_weights_wrong_head_split(model, layer):
    attn = model.transformer.h[layer].attn
    n_heads, d_model = model.config.n_head, model.config.n_embd
    d_head = d_model // n_heads
    W_Q, W_K, W_V = (W.reshape(n_heads, d_model, d_head)
                     for W in attn.c_attn.weight.detach().split(d_model, dim=1))
    return W_Q, W_K, W_V, attn.c_proj.weight.detach().reshape(n_heads, d_head, d_model)


def head_weights_k_for_q(model, layer):
    attn = model.transformer.h[layer].attn
    W_Q, W_K, W_V, W_O = _split(model, layer, attn.c_attn.weight.detach(),
                                attn.c_proj.weight.detach())
    return W_K, W_Q, W_V, W_O


def head_weights_output_columns(model, layer):
    attn = model.transformer.h[layer].attn
    n_heads, d_model = model.config.n_head, model.config.n_embd
    W_Q, W_K, W_V, _ = _split(model, layer, attn.c_attn.weight.detach(),
                              attn.c_proj.weight.detach())
    W_O = attn.c_proj.weight.detach().reshape(d_model, n_heads, -1).permute(1, 2, 0)
    return W_Q, W_K, W_V, W_O


def head_weights_with_bias(model, layer):
    attn = model.transformer.h[layer].attn
    W = attn.c_attn.weight.detach() + attn.c_attn.bias.detach()
    return _split(model, layer, W, attn.c_proj.weight.detach())


# ov_circuit -----------------------------------------------------------------------------------

def ov_circuit_tied_unembedding(model, layer, head):
    _, _, W_V, W_O = head_weights(model, layer)
    W_E = model.transformer.wte.weight.detach()
    return W_E @ W_V[head] @ W_O[head] @ W_E.T


def ov_circuit_transposed_weights(model, layer, head):
    _, _, W_V, W_O = head_weights(model, layer)
    return (model.transformer.wte.weight.detach() @ W_O[head].T @ W_V[head].T
            @ model.lm_head.weight.detach().T)


def ov_circuit_qk_weights(model, layer, head):
    W_Q, W_K, _, _ = head_weights(model, layer)
    return (model.transformer.wte.weight.detach() @ W_Q[head] @ W_K[head].T
            @ model.lm_head.weight.detach().T)


def ov_circuit_transposed_result(model, layer, head):
    _, _, W_V, W_O = head_weights(model, layer)
    circuit = (model.transformer.wte.weight.detach() @ W_V[head] @ W_O[head]
               @ model.lm_head.weight.detach().T)
    return circuit.T


def ov_circuit_with_positions(model, layer, head):
    _, _, W_V, W_O = head_weights(model, layer)
    W_E = model.transformer.wte.weight.detach() + model.transformer.wpe.weight.detach().mean(dim=0)
    return W_E @ W_V[head] @ W_O[head] @ model.lm_head.weight.detach().T


# copying_score --------------------------------------------------------------------------------

def copying_score_real_parts(circuit):
    eigenvalues = torch.linalg.eigvals(circuit)
    return (eigenvalues.real.sum() / eigenvalues.real.abs().sum()).item()


def copying_score_singular_values(circuit):
    return (torch.trace(circuit) / torch.linalg.svdvals(circuit).sum()).item()


def copying_score_symmetric(circuit):
    eigenvalues = torch.linalg.eigvalsh(circuit)
    return (eigenvalues.sum() / eigenvalues.abs().sum()).item()


def copying_score_abs_of_sum(circuit):
    eigenvalues = torch.linalg.eigvals(circuit)
    return (eigenvalues.sum().abs() / eigenvalues.abs().sum()).item()


def copying_score_diagonal(circuit):
    return (torch.trace(circuit) / torch.diagonal(circuit).abs().sum()).item()


# positional_qk_circuit ------------------------------------------------------------------------

def positional_qk_transposed(model, layer, head):
    W_Q, W_K, _, _ = head_weights(model, layer)
    W_pos = model.transformer.wpe.weight.detach()
    return W_pos @ W_K[head] @ W_Q[head].T @ W_pos.T


def positional_qk_scaled(model, layer, head):
    W_Q, W_K, _, _ = head_weights(model, layer)
    W_pos = model.transformer.wpe.weight.detach()
    return W_pos @ W_Q[head] @ W_K[head].T @ W_pos.T / W_Q.shape[-1] ** 0.5


def positional_qk_queries_only(model, layer, head):
    W_Q, _, _, _ = head_weights(model, layer)
    W_pos = model.transformer.wpe.weight.detach()
    return W_pos @ W_Q[head] @ W_Q[head].T @ W_pos.T


def positional_qk_token_embeddings(model, layer, head):
    W_Q, W_K, _, _ = head_weights(model, layer)
    W_E = model.transformer.wte.weight.detach()[:model.config.n_positions]
    return W_E @ W_Q[head] @ W_K[head].T @ W_E.T


# k_composition_scores -------------------------------------------------------------------------

def _circuits(head_weights, model, writer, reader):
    _, _, W_V, W_O = head_weights(model, writer)
    W_Q, W_K, _, _ = head_weights(model, reader)
    return W_V @ W_O, W_Q @ W_K.transpose(1, 2)


def k_composition_no_transpose(model, writer=0, reader=1):
    W_OV, W_QK = _circuits(head_weights, model, writer, reader)
    return composition_score(W_QK[None], W_OV[:, None])


def k_composition_q_composition(model, writer=0, reader=1):
    W_OV, W_QK = _circuits(head_weights, model, writer, reader)
    return composition_score(W_OV[:, None], W_QK[None])


def k_composition_reader_rows(model, writer=0, reader=1):
    W_OV, W_QK = _circuits(head_weights, model, writer, reader)
    return composition_score(W_QK[:, None], W_OV.transpose(1, 2)[None])


def k_composition_unnormalised(model, writer=0, reader=1):
    W_OV, W_QK = _circuits(head_weights, model, writer, reader)
    return (W_QK[None] @ W_OV.transpose(1, 2)[:, None]).norm(dim=(-2, -1))


def k_composition_fixed_layers(model, writer=0, reader=1):
    W_OV, W_QK = _circuits(head_weights, model, 0, 1)
    return composition_score(W_QK[None], W_OV.transpose(1, 2)[:, None])


def k_composition_v_composition(model, writer=0, reader=1):
    W_OV, _ = _circuits(head_weights, model, writer, reader)
    _, _, W_V, W_O = head_weights(model, reader)
    return composition_score((W_V @ W_O)[None], W_OV[:, None])


# phase_change_step ----------------------------------------------------------------------------

def phase_change_including_layer_0(log, threshold=0.5):
    for step, scores in zip(log["steps"], log["induction_scores"]):
        if max(max(row) for row in scores) >= threshold:
            return step
    return None


def phase_change_index(log, threshold=0.5):
    for i, scores in enumerate(log["induction_scores"]):
        if max(max(row) for row in scores[1:]) >= threshold:
            return i
    return None


def phase_change_strictly_above(log, threshold=0.5):
    for step, scores in zip(log["steps"], log["induction_scores"]):
        if max(max(row) for row in scores[1:]) > threshold:
            return step
    return None


def phase_change_mean_over_heads(log, threshold=0.5):
    for step, scores in zip(log["steps"], log["induction_scores"]):
        if max(sum(row) / len(row) for row in scores[1:]) >= threshold:
            return step
    return None


def phase_change_last_crossing(log, threshold=0.5):
    found = None
    for step, scores in zip(log["steps"], log["induction_scores"]):
        if max(max(row) for row in scores[1:]) >= threshold:
            found = step
    return found


def phase_change_previous_token_scores(log, threshold=0.5):
    for step, scores in zip(log["steps"], log["previous_token_scores"]):
        if max(max(row) for row in scores[1:]) >= threshold:
            return step
    return None


def phase_change_minus_one_when_never(log, threshold=0.5):
    for step, scores in zip(log["steps"], log["induction_scores"]):
        if max(max(row) for row in scores[1:]) >= threshold:
            return step
    return -1


# generic ---------------------------------------------------------------------------------------

def raises_index_error(*args, **kwargs):
    return [][0]


def loops_forever(*args, **kwargs):
    while True:
        pass


def head_weights_noisy_but_right(model, layer):
    import sys
    import warnings

    print("debugging", file=sys.stderr)
    warnings.warn("this is only a warning")
    attn = model.transformer.h[layer].attn
    return _split(model, layer, attn.c_attn.weight.detach(), attn.c_proj.weight.detach())


def head_weights_in_place(model, layer):
    attn = model.transformer.h[layer].attn
    with torch.no_grad():
        attn.c_attn.weight.mul_(1.0001)  # "just a small tweak" to the shared model
    return _split(model, layer, attn.c_attn.weight.detach(), attn.c_proj.weight.detach())


# Each mistake, with a fragment of the message that must reject it: the reason it was written for.
MISTAKES = {
    "detector_scores": {
        detector_scores_every_query: "has wrong values",
        detector_scores_next_token: "has wrong values",
        detector_scores_last_key_as_first: "has wrong values",
        detector_scores_heads_averaged: "expected shape",
        detector_scores_transposed: "expected shape",
        detector_scores_summed: "has wrong values",
    },
    "next_token_log_probs": {
        log_probs_softmax_over_positions: "has wrong values",
        log_probs_without_log: "has wrong values",
        log_probs_current_token: "has wrong values",
        log_probs_shifted_logits: "has wrong values",
        log_probs_raw_logits: "has wrong values",
        log_probs_as_loss: "has wrong values",
    },
    "copy_losses": {
        copy_losses_with_first_tokens: "-copy loss of copy_losses",
        copy_losses_off_by_one: "-copy loss of copy_losses",
        copy_losses_ignores_patches: "with a head ablated: expected",
        copy_losses_log_probs: "-copy loss of copy_losses",
        copy_losses_tensors: "should be a number",
    },
    "head_scores": {
        head_scores_duplicate_token_offset: "the induction scores of",
        head_scores_whole_diagonal: "the induction scores of",
        head_scores_swapped: "the previous-token scores of",
        head_scores_mean_over_heads: "expected shape",
        head_scores_two_layers: "3-layer model",
    },
    "logit_lens": {
        logit_lens_without_ln_f: "has wrong values",
        logit_lens_plain_layer_norm: "has wrong values",
        logit_lens_tied_unembedding: "has wrong values",
        logit_lens_after_attention: "and MLPs has wrong values",
        logit_lens_batch_first: "expected shape",
    },
    "direct_logit_attribution": {
        dla_scale_per_component: "has wrong values",
        dla_not_centred: "has wrong values",
        dla_without_ln_weight: "has wrong values",
        dla_without_ln_bias: "has wrong values",
        dla_unbiased_variance: "has wrong values",
        dla_position_embedding_forgotten: "has wrong values",
        dla_current_token: "has wrong values",
    },
    "ablation_patches": {
        ablation_always_zero: "when mean-ablating",
        ablation_mean_over_batch_only: "when mean-ablating",
        ablation_mean_over_positions_only: "when mean-ablating",
        ablation_whole_layer: "has wrong values",
        ablation_positions_for_heads: "has wrong values",
        ablation_first_layer_only: "has wrong values",
    },
    "head_weights": {
        head_weights_linear_convention: "has wrong values",
        head_weights_wrong_head_split: "has wrong values",
        head_weights_k_for_q: "W_Q of layer",
        head_weights_output_columns: "W_O of layer",
        head_weights_with_bias: "has wrong values",
        head_weights_in_place: "changed its input",
    },
    "ov_circuit": {
        ov_circuit_tied_unembedding: "has wrong values",
        ov_circuit_transposed_weights: "has wrong values",
        ov_circuit_qk_weights: "has wrong values",
        ov_circuit_transposed_result: "has wrong values",
        ov_circuit_with_positions: "has wrong values",
    },
    "copying_score": {
        copying_score_real_parts: "copying_score of a random matrix",
        copying_score_singular_values: "copying_score of a random matrix",
        copying_score_symmetric: "copying_score of a random matrix",
        copying_score_abs_of_sum: "expected -",  # a negative score comes out positive
        copying_score_diagonal: "copying_score of a random matrix",
    },
    "positional_qk_circuit": {
        positional_qk_transposed: "has wrong values",
        positional_qk_scaled: "has wrong values",
        positional_qk_queries_only: "has wrong values",
        positional_qk_token_embeddings: "has wrong values",
    },
    "k_composition_scores": {
        k_composition_no_transpose: "has wrong values",
        k_composition_q_composition: "has wrong values",
        k_composition_reader_rows: "has wrong values",
        k_composition_unnormalised: "has wrong values",
        k_composition_fixed_layers: "writer=1, reader=2",
        k_composition_v_composition: "has wrong values",
    },
    "phase_change_step": {
        phase_change_including_layer_0: "expected the step",
        phase_change_index: "expected the step",
        phase_change_strictly_above: "expected the step",
        phase_change_mean_over_heads: "expected the step",
        phase_change_last_crossing: "expected the step",
        phase_change_previous_token_scores: "expected the step",
        phase_change_minus_one_when_never: "should return None",
    },
}
