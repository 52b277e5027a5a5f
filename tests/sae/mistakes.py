"""Realistic wrong answers to the chapter 05 exercises. Every one must be rejected by its check.

Each is written the way a learner would write it, in the notebook's names: ``latents``,
``check_width`` and ``masked_next_token_loss`` are the functions the notebook gives, and ``encode``,
``decode``, ``topk_encode`` and ``sae_loss`` the learner's own answers to earlier exercises; in
the notebook they are defined by earlier cells, and the checks hand over the reference versions
(also to an answer under ``@torch.no_grad()``: tests/sae/test_checks.py,
``test_a_decorated_answer_is_graded_alone``). The private helpers below are shared by several
mistakes and see only this module's names, so they take what they need as arguments and use
plain tensor code."""

import torch
import torch.nn.functional as F

from reference_impl.hooks import patched

# encode ---------------------------------------------------------------------------------------


def encode_without_b_dec(sae, x):
    return F.relu(x @ sae.W_enc + sae.b_enc)


def encode_adds_b_dec(sae, x):
    return F.relu((x + sae.b_dec) @ sae.W_enc + sae.b_enc)


def encode_relu_before_bias(sae, x):
    return F.relu((x - sae.b_dec) @ sae.W_enc) + sae.b_enc


def encode_without_relu(sae, x):
    return (x - sae.b_dec) @ sae.W_enc + sae.b_enc


def encode_with_W_enc_transposed(sae, x):
    return F.relu((x - sae.b_dec) @ sae.W_enc.T + sae.b_enc)


def encode_with_decoder_transposed(sae, x):
    # tied weights: the decoder's transpose as the encoder
    return F.relu((x - sae.b_dec) @ sae.W_dec.T + sae.b_enc)


def encode_centres_in_place(sae, x):
    x -= sae.b_dec
    return F.relu(x @ sae.W_enc + sae.b_enc)


# decode ---------------------------------------------------------------------------------------

def decode_without_b_dec(sae, f):
    return f @ sae.W_dec


def decode_subtracts_b_dec(sae, f):
    return f @ sae.W_dec - sae.b_dec


def decode_with_relu(sae, f):
    return F.relu(f @ sae.W_dec + sae.b_dec)


def decode_with_encoder_transposed(sae, f):
    return f @ sae.W_enc.T + sae.b_dec


def decode_with_W_dec_transposed(sae, f):
    return f @ sae.W_dec.T + sae.b_dec


def decode_with_unit_decoder_rows(sae, f):
    return f @ F.normalize(sae.W_dec, dim=1) + sae.b_dec


# topk_encode ----------------------------------------------------------------------------------

def topk_without_relu(sae, x, k):
    pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
    values, indices = pre.topk(k, dim=-1)
    return torch.zeros_like(pre).scatter(-1, indices, values)


def topk_over_the_batch(sae, x, k):
    pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
    values, indices = pre.topk(k, dim=0)  # each latent's k best inputs, not each input's k latents
    return torch.zeros_like(pre).scatter(0, indices, F.relu(values))


def topk_kthvalue_threshold(sae, x, k):
    pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
    threshold = pre.kthvalue(k, dim=-1, keepdim=True).values  # the k-th smallest, not largest
    return F.relu(pre) * (pre >= threshold)


def topk_without_b_dec(sae, x, k):
    pre = x @ sae.W_enc + sae.b_enc
    values, indices = pre.topk(k, dim=-1)
    return torch.zeros_like(pre).scatter(-1, indices, F.relu(values))


def topk_largest_magnitudes(sae, x, k):
    pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
    indices = pre.abs().topk(k, dim=-1).indices
    return torch.zeros_like(pre).scatter(-1, indices, F.relu(pre.gather(-1, indices)))


def topk_with_the_saes_own_k(sae, x, k):
    pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
    values, indices = pre.topk(sae.k, dim=-1)  # None for the ReLU SAE the check passes
    return torch.zeros_like(pre).scatter(-1, indices, F.relu(values))


def topk_scatters_ones(sae, x, k):
    pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
    indices = pre.topk(k, dim=-1).indices
    return torch.zeros_like(pre).scatter(-1, indices, 1.0) * F.relu(pre).sign()


# sae_loss -------------------------------------------------------------------------------------

def loss_mse(sae, x, l1_coefficient):
    f = latents(sae, x)
    reconstruction = F.mse_loss(decode(sae, f), x)
    sparsity = (f * sae.W_dec.norm(dim=1)).sum(dim=-1).mean()
    return reconstruction + l1_coefficient * sparsity, reconstruction, sparsity


def loss_summed_over_the_batch(sae, x, l1_coefficient):
    f = latents(sae, x)
    reconstruction = (decode(sae, f) - x).pow(2).sum()
    sparsity = (f * sae.W_dec.norm(dim=1)).sum(dim=-1).mean()
    return reconstruction + l1_coefficient * sparsity, reconstruction, sparsity


def loss_without_decoder_norms(sae, x, l1_coefficient):
    f = latents(sae, x)
    reconstruction = (decode(sae, f) - x).pow(2).sum(dim=-1).mean()
    sparsity = f.sum(dim=-1).mean()
    return reconstruction + l1_coefficient * sparsity, reconstruction, sparsity


def loss_l1_norm_of_latents(sae, x, l1_coefficient):
    f = latents(sae, x)
    reconstruction = (decode(sae, f) - x).pow(2).sum(dim=-1).mean()
    sparsity = torch.linalg.vector_norm(f, ord=1, dim=-1).mean()
    return reconstruction + l1_coefficient * sparsity, reconstruction, sparsity


def loss_decoder_norms_over_wrong_axis(sae, x, l1_coefficient):
    f = latents(sae, x)
    reconstruction = (decode(sae, f) - x).pow(2).sum(dim=-1).mean()
    sparsity = (f * sae.W_dec.norm(dim=0)).sum(dim=-1).mean()
    return reconstruction + l1_coefficient * sparsity, reconstruction, sparsity


def loss_norm_not_squared(sae, x, l1_coefficient):
    f = latents(sae, x)
    reconstruction = (decode(sae, f) - x).norm(dim=-1).mean()
    sparsity = (f * sae.W_dec.norm(dim=1)).sum(dim=-1).mean()
    return reconstruction + l1_coefficient * sparsity, reconstruction, sparsity


def loss_relu_encoder_only(sae, x, l1_coefficient):
    f = encode(sae, x)  # not latents: a TopK SAE is encoded as if it were a ReLU SAE
    reconstruction = (decode(sae, f) - x).pow(2).sum(dim=-1).mean()
    sparsity = (f * sae.W_dec.norm(dim=1)).sum(dim=-1).mean()
    return reconstruction + l1_coefficient * sparsity, reconstruction, sparsity


def loss_coefficient_on_reconstruction(sae, x, l1_coefficient):
    f = latents(sae, x)
    reconstruction = (decode(sae, f) - x).pow(2).sum(dim=-1).mean()
    sparsity = (f * sae.W_dec.norm(dim=1)).sum(dim=-1).mean()
    return l1_coefficient * reconstruction + sparsity, reconstruction, sparsity


def loss_terms_as_floats(sae, x, l1_coefficient):
    f = latents(sae, x)
    reconstruction = (decode(sae, f) - x).pow(2).sum(dim=-1).mean()
    sparsity = (f * sae.W_dec.norm(dim=1)).sum(dim=-1).mean()
    return reconstruction + l1_coefficient * sparsity, reconstruction.item(), sparsity.item()


def loss_decoder_norms_detached(sae, x, l1_coefficient):
    f = latents(sae, x)
    reconstruction = (decode(sae, f) - x).pow(2).sum(dim=-1).mean()
    sparsity = (f * sae.W_dec.norm(dim=1).detach()).sum(dim=-1).mean()
    return reconstruction + l1_coefficient * sparsity, reconstruction, sparsity


def loss_detached(sae, x, l1_coefficient):
    f = latents(sae, x)
    reconstruction = (decode(sae, f) - x).pow(2).sum(dim=-1).mean().detach()  # for logging
    sparsity = (f * sae.W_dec.norm(dim=1)).sum(dim=-1).mean().detach()
    return reconstruction + l1_coefficient * sparsity, reconstruction, sparsity


def loss_calls_backward(sae, x, l1_coefficient):
    f = latents(sae, x)
    reconstruction = (decode(sae, f) - x).pow(2).sum(dim=-1).mean()
    sparsity = (f * sae.W_dec.norm(dim=1)).sum(dim=-1).mean()
    loss = reconstruction + l1_coefficient * sparsity
    loss.backward()  # the training step's job: the graph is freed before the step can use it
    return loss, reconstruction, sparsity


def loss_only(sae, x, l1_coefficient):
    f = latents(sae, x)
    reconstruction = (decode(sae, f) - x).pow(2).sum(dim=-1).mean()
    sparsity = (f * sae.W_dec.norm(dim=1)).sum(dim=-1).mean()
    return reconstruction + l1_coefficient * sparsity


def loss_with_norms_by_hand(sae, x, l1_coefficient):
    f = latents(sae, x)
    reconstruction = (decode(sae, f) - x).pow(2).sum(dim=-1).mean()
    # ‖f_i W_dec,i‖ written out: the right value, but a NaN gradient wherever f_i = 0
    sparsity = (f[:, :, None] * sae.W_dec).pow(2).sum(dim=-1).sqrt().sum(dim=-1).mean()
    return reconstruction + l1_coefficient * sparsity, reconstruction, sparsity


def loss_latents_under_no_grad(sae, x, l1_coefficient):
    with torch.no_grad():  # the encoder gets no gradient, and never learns
        f = latents(sae, x)
    reconstruction = (decode(sae, f) - x).pow(2).sum(dim=-1).mean()
    sparsity = (f * sae.W_dec.norm(dim=1)).sum(dim=-1).mean()
    return reconstruction + l1_coefficient * sparsity, reconstruction, sparsity


# training_step --------------------------------------------------------------------------------

def step_without_zero_grad(sae, optimizer, x, l1_coefficient):
    loss, _, _ = sae_loss(sae, x, l1_coefficient)
    loss.backward()
    optimizer.step()
    return loss.item()


def step_zero_grad_after_backward(sae, optimizer, x, l1_coefficient):
    loss, _, _ = sae_loss(sae, x, l1_coefficient)
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()
    return loss.item()


def step_backward_on_reconstruction_only(sae, optimizer, x, l1_coefficient):
    loss, reconstruction, _ = sae_loss(sae, x, l1_coefficient)
    optimizer.zero_grad()
    reconstruction.backward()
    optimizer.step()
    return loss.item()


def step_returns_the_loss_after_the_update(sae, optimizer, x, l1_coefficient):
    loss, _, _ = sae_loss(sae, x, l1_coefficient)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return sae_loss(sae, x, l1_coefficient)[0].item()


def step_returns_a_tensor(sae, optimizer, x, l1_coefficient):
    loss, _, _ = sae_loss(sae, x, l1_coefficient)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss


def step_returns_nothing(sae, optimizer, x, l1_coefficient):
    loss, _, _ = sae_loss(sae, x, l1_coefficient)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def step_normalises_decoder_rows(sae, optimizer, x, l1_coefficient):
    loss, _, _ = sae_loss(sae, x, l1_coefficient)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    with torch.no_grad():  # unit decoder rows, as some SAEs keep them: not this chapter's SAE
        sae.W_dec /= sae.W_dec.norm(dim=1, keepdim=True)
    return loss.item()


def step_loss_with_norms_by_hand(sae, optimizer, x, l1_coefficient):
    f = latents(sae, x)
    reconstruction = (decode(sae, f) - x).pow(2).sum(dim=-1).mean()
    # ‖f_i W_dec,i‖ written out: the right value, but the gradient of sqrt at 0 (an inactive
    # latent) is infinite, and 0 × ∞ is NaN
    sparsity = (f[:, :, None] * sae.W_dec).pow(2).sum(dim=-1).sqrt().sum(dim=-1).mean()
    loss = reconstruction + l1_coefficient * sparsity
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


# sae_statistics -------------------------------------------------------------------------------

def stats_l0_counts_zeros(sae, x):
    f = latents(sae, x)
    active = f >= 0
    fvu = (decode(sae, f) - x).pow(2).sum() / (x - x.mean(dim=0)).pow(2).sum()
    return {"l0": active.float().sum(dim=-1).mean().item(), "fvu": fvu.item(),
            "density": (f > 0).float().mean(dim=0)}


def stats_l0_as_a_fraction(sae, x):
    f = latents(sae, x)
    active = f > 0
    fvu = (decode(sae, f) - x).pow(2).sum() / (x - x.mean(dim=0)).pow(2).sum()
    return {"l0": active.float().mean().item(), "fvu": fvu.item(),
            "density": active.float().mean(dim=0)}


def stats_relu_encoder_only(sae, x):
    f = encode(sae, x)
    active = f > 0
    fvu = (decode(sae, f) - x).pow(2).sum() / (x - x.mean(dim=0)).pow(2).sum()
    return {"l0": active.float().sum(dim=-1).mean().item(), "fvu": fvu.item(),
            "density": active.float().mean(dim=0)}


def stats_fvu_per_input(sae, x):
    f = latents(sae, x)
    active = f > 0
    fvu = ((decode(sae, f) - x).pow(2).sum(dim=-1)
           / (x - x.mean(dim=0)).pow(2).sum(dim=-1)).mean()
    return {"l0": active.float().sum(dim=-1).mean().item(), "fvu": fvu.item(),
            "density": active.float().mean(dim=0)}


def stats_fvu_scalar_mean(sae, x):
    f = latents(sae, x)
    active = f > 0
    fvu = (decode(sae, f) - x).pow(2).sum() / (x - x.mean()).pow(2).sum()
    return {"l0": active.float().sum(dim=-1).mean().item(), "fvu": fvu.item(),
            "density": active.float().mean(dim=0)}


def stats_fvu_with_unbiased_variance(sae, x):
    f = latents(sae, x)
    active = f > 0
    fvu = (decode(sae, f) - x).pow(2).sum(dim=-1).mean() / x.var(dim=0).sum()  # divides by n − 1
    return {"l0": active.float().sum(dim=-1).mean().item(), "fvu": fvu.item(),
            "density": active.float().mean(dim=0)}


def stats_fvu_not_centred(sae, x):
    f = latents(sae, x)
    active = f > 0
    fvu = (decode(sae, f) - x).pow(2).sum() / x.pow(2).sum()
    return {"l0": active.float().sum(dim=-1).mean().item(), "fvu": fvu.item(),
            "density": active.float().mean(dim=0)}


def stats_density_per_input(sae, x):
    f = latents(sae, x)
    active = f > 0
    fvu = (decode(sae, f) - x).pow(2).sum() / (x - x.mean(dim=0)).pow(2).sum()
    return {"l0": active.float().sum(dim=-1).mean().item(), "fvu": fvu.item(),
            "density": active.float().mean(dim=1)}


def stats_density_as_counts(sae, x):
    f = latents(sae, x)
    active = f > 0
    fvu = (decode(sae, f) - x).pow(2).sum() / (x - x.mean(dim=0)).pow(2).sum()
    return {"l0": active.float().sum(dim=-1).mean().item(), "fvu": fvu.item(),
            "density": active.float().sum(dim=0)}


def stats_centres_x_in_place(sae, x):
    f = latents(sae, x)
    active = f > 0
    error = (decode(sae, f) - x).pow(2).sum()
    x -= x.mean(dim=0)
    return {"l0": active.float().sum(dim=-1).mean().item(), "fvu": (error / x.pow(2).sum()).item(),
            "density": active.float().mean(dim=0)}


# mmcs -----------------------------------------------------------------------------------------

def mmcs_max_over_decoder_rows(W_dec, true_features):
    cosines = F.normalize(true_features, dim=-1) @ F.normalize(W_dec, dim=-1).T
    return cosines.max(dim=0).values.mean().item()  # each latent's best feature


def mmcs_unsigned(W_dec, true_features):
    cosines = F.normalize(true_features, dim=-1) @ F.normalize(W_dec, dim=-1).T
    return cosines.abs().max(dim=1).values.mean().item()


def mmcs_decoder_not_normalised(W_dec, true_features):
    cosines = F.normalize(true_features, dim=-1) @ W_dec.T
    return cosines.max(dim=1).values.mean().item()


def mmcs_dot_products(W_dec, true_features):
    return (true_features @ W_dec.T).max(dim=1).values.mean().item()


def mmcs_normalised_over_wrong_axis(W_dec, true_features):
    cosines = F.normalize(true_features, dim=0) @ F.normalize(W_dec, dim=0).T
    return cosines.max(dim=1).values.mean().item()


def mmcs_single_best_pair(W_dec, true_features):
    cosines = F.normalize(true_features, dim=-1) @ F.normalize(W_dec, dim=-1).T
    return cosines.max().item()


def mmcs_max_without_values(W_dec, true_features):
    cosines = F.normalize(true_features, dim=-1) @ F.normalize(W_dec, dim=-1).T
    return cosines.max(dim=1).mean().item()


# resample_dead_latents ------------------------------------------------------------------------

def _resample(sae, x, dead, reconstruction, best_first=False, centred=True, scale_of="live",
              factor=0.2, zero_bias=True, wrap=True, one_input=False, fallback=True):
    """Resampling with the given reconstruction of ``x``, wrong in the ways the options say (to
    be called under torch.no_grad())."""
    indices = dead.nonzero().flatten()
    if len(indices) == 0:
        return
    errors = (reconstruction - x).pow(2).sum(dim=-1)
    order = errors.argsort(descending=not best_first)
    if one_input:
        chosen = order[:1].repeat(len(indices))
    elif wrap:
        chosen = order[torch.arange(len(indices)) % len(x)]
    else:
        chosen = order[:len(indices)]
    inputs = x[chosen]
    directions = F.normalize(inputs - sae.b_dec if centred else inputs, dim=-1)
    columns = sae.W_enc[:, ~dead] if scale_of == "live" else sae.W_enc
    scale = columns.norm(dim=0).mean() if columns.shape[1] or not fallback else torch.tensor(1.0)
    sae.W_dec[indices] = directions
    sae.W_enc[:, indices] = factor * scale * directions.T
    if zero_bias:
        sae.b_enc[indices] = 0.0


def resample_best_reconstructed_inputs(sae, x, dead):
    with torch.no_grad():
        _resample(sae, x, dead, decode(sae, latents(sae, x)), best_first=True)


def resample_without_b_dec(sae, x, dead):
    with torch.no_grad():
        _resample(sae, x, dead, decode(sae, latents(sae, x)), centred=False)


def resample_scale_from_every_latent(sae, x, dead):
    with torch.no_grad():
        _resample(sae, x, dead, decode(sae, latents(sae, x)), scale_of="all")


def resample_encoder_at_full_scale(sae, x, dead):
    with torch.no_grad():
        _resample(sae, x, dead, decode(sae, latents(sae, x)), factor=1.0)


def resample_keeps_encoder_bias(sae, x, dead):
    with torch.no_grad():
        _resample(sae, x, dead, decode(sae, latents(sae, x)), zero_bias=False)


def resample_without_going_round_again(sae, x, dead):
    with torch.no_grad():
        _resample(sae, x, dead, decode(sae, latents(sae, x)), wrap=False)


def resample_without_a_scale_when_none_is_alive(sae, x, dead):
    with torch.no_grad():  # the mean of no norms is NaN
        _resample(sae, x, dead, decode(sae, latents(sae, x)), fallback=False)


def resample_all_from_the_worst_input(sae, x, dead):
    with torch.no_grad():
        _resample(sae, x, dead, decode(sae, latents(sae, x)), one_input=True)


def resample_ranked_with_the_relu_encoder(sae, x, dead):
    with torch.no_grad():
        _resample(sae, x, dead, decode(sae, encode(sae, x)))  # not latents: wrong for TopK


def resample_replaces_parameters(sae, x, dead):
    with torch.no_grad():
        indices = dead.nonzero().flatten()
        errors = (decode(sae, latents(sae, x)) - x).pow(2).sum(dim=-1)
        worst = errors.argsort(descending=True)
        inputs = x[worst[torch.arange(len(indices)) % len(x)]]
        directions = F.normalize(inputs - sae.b_dec, dim=-1)
        alive = sae.W_enc[:, ~dead]
        scale = alive.norm(dim=0).mean() if alive.shape[1] else torch.tensor(1.0)
        W_dec, W_enc, b_enc = sae.W_dec.clone(), sae.W_enc.clone(), sae.b_enc.clone()
        W_dec[indices] = directions
        W_enc[:, indices] = 0.2 * scale * directions.T
        b_enc[indices] = 0.0
    # new Parameters with the right values: the optimiser still holds (and trains) the old ones
    sae.W_dec = torch.nn.Parameter(W_dec)
    sae.W_enc = torch.nn.Parameter(W_enc)
    sae.b_enc = torch.nn.Parameter(b_enc)


# ce_loss_recovered ----------------------------------------------------------------------------

def _layer_of(hook_name):
    return int(hook_name.split(".")[1])


def _replace_output(output, new):
    return (new,) + tuple(output[1:]) if isinstance(output, tuple) else new


def _output_tensor(output):
    return output[0] if isinstance(output, tuple) else output


def ce_splices_bos_too(model, sae, tokens, loss_mask):
    width = sae.W_enc.shape[0]

    def reconstruct(activation, name):
        return decode(sae, latents(sae, activation.reshape(-1, width))).reshape(activation.shape)

    def zero(activation, name):
        return torch.zeros_like(activation)

    def loss(patches):
        with torch.no_grad(), patched(model, patches):
            return masked_next_token_loss(model(tokens).logits, tokens, loss_mask).item()

    hook = sae.cfg["hook_name"]
    clean, spliced, zeroed = loss({}), loss({hook: reconstruct}), loss({hook: zero})
    return {"clean": clean, "sae": spliced, "zero": zeroed,
            "recovered": (zeroed - spliced) / (zeroed - clean)}


def ce_zero_ablates_bos_too(model, sae, tokens, loss_mask):
    width = sae.W_enc.shape[0]

    def reconstruct(activation, name):
        out = decode(sae, latents(sae, activation.reshape(-1, width))).reshape(activation.shape)
        out[:, 0] = activation[:, 0]
        return out

    def zero(activation, name):
        return torch.zeros_like(activation)

    def loss(patches):
        with torch.no_grad(), patched(model, patches):
            return masked_next_token_loss(model(tokens).logits, tokens, loss_mask).item()

    hook = sae.cfg["hook_name"]
    clean, spliced, zeroed = loss({}), loss({hook: reconstruct}), loss({hook: zero})
    return {"clean": clean, "sae": spliced, "zero": zeroed,
            "recovered": (zeroed - spliced) / (zeroed - clean)}


def ce_mean_ablation(model, sae, tokens, loss_mask):
    width = sae.W_enc.shape[0]

    def reconstruct(activation, name):
        out = decode(sae, latents(sae, activation.reshape(-1, width))).reshape(activation.shape)
        out[:, 0] = activation[:, 0]
        return out

    def mean(activation, name):  # the mean activation, not zero
        out = activation.mean(dim=(0, 1)).expand_as(activation).clone()
        out[:, 0] = activation[:, 0]
        return out

    def loss(patches):
        with torch.no_grad(), patched(model, patches):
            return masked_next_token_loss(model(tokens).logits, tokens, loss_mask).item()

    hook = sae.cfg["hook_name"]
    clean, spliced, zeroed = loss({}), loss({hook: reconstruct}), loss({hook: mean})
    return {"clean": clean, "sae": spliced, "zero": zeroed,
            "recovered": (zeroed - spliced) / (zeroed - clean)}


def ce_without_loss_mask(model, sae, tokens, loss_mask):
    width = sae.W_enc.shape[0]

    def reconstruct(activation, name):
        out = decode(sae, latents(sae, activation.reshape(-1, width))).reshape(activation.shape)
        out[:, 0] = activation[:, 0]
        return out

    def zero(activation, name):
        out = torch.zeros_like(activation)
        out[:, 0] = activation[:, 0]
        return out

    def loss(patches):
        with torch.no_grad(), patched(model, patches):
            logits = model(tokens).logits
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                               tokens[:, 1:].reshape(-1)).item()  # the padding counts too

    hook = sae.cfg["hook_name"]
    clean, spliced, zeroed = loss({}), loss({hook: reconstruct}), loss({hook: zero})
    return {"clean": clean, "sae": spliced, "zero": zeroed,
            "recovered": (zeroed - spliced) / (zeroed - clean)}


def ce_mean_of_per_text_losses(model, sae, tokens, loss_mask):
    width = sae.W_enc.shape[0]

    def reconstruct(activation, name):
        out = decode(sae, latents(sae, activation.reshape(-1, width))).reshape(activation.shape)
        out[:, 0] = activation[:, 0]
        return out

    def zero(activation, name):
        out = torch.zeros_like(activation)
        out[:, 0] = activation[:, 0]
        return out

    def loss(patches):
        with torch.no_grad(), patched(model, patches):
            logits = model(tokens).logits
        losses = F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none")
        return ((losses * loss_mask).sum(dim=1) / loss_mask.sum(dim=1)).mean().item()

    hook = sae.cfg["hook_name"]
    clean, spliced, zeroed = loss({}), loss({hook: reconstruct}), loss({hook: zero})
    return {"clean": clean, "sae": spliced, "zero": zeroed,
            "recovered": (zeroed - spliced) / (zeroed - clean)}


def ce_recovered_backwards(model, sae, tokens, loss_mask):
    width = sae.W_enc.shape[0]

    def reconstruct(activation, name):
        out = decode(sae, latents(sae, activation.reshape(-1, width))).reshape(activation.shape)
        out[:, 0] = activation[:, 0]
        return out

    def zero(activation, name):
        out = torch.zeros_like(activation)
        out[:, 0] = activation[:, 0]
        return out

    def loss(patches):
        with torch.no_grad(), patched(model, patches):
            return masked_next_token_loss(model(tokens).logits, tokens, loss_mask).item()

    hook = sae.cfg["hook_name"]
    clean, spliced, zeroed = loss({}), loss({hook: reconstruct}), loss({hook: zero})
    return {"clean": clean, "sae": spliced, "zero": zeroed,
            "recovered": (spliced - clean) / (zeroed - clean)}  # the share lost, not recovered


def ce_relu_encoder_only(model, sae, tokens, loss_mask):
    width = sae.W_enc.shape[0]

    def reconstruct(activation, name):
        flat = activation.reshape(-1, width)
        out = decode(sae, encode(sae, flat)).reshape(activation.shape)  # not latents: no TopK
        out[:, 0] = activation[:, 0]
        return out

    def zero(activation, name):
        out = torch.zeros_like(activation)
        out[:, 0] = activation[:, 0]
        return out

    def loss(patches):
        with torch.no_grad(), patched(model, patches):
            return masked_next_token_loss(model(tokens).logits, tokens, loss_mask).item()

    hook = sae.cfg["hook_name"]
    clean, spliced, zeroed = loss({}), loss({hook: reconstruct}), loss({hook: zero})
    return {"clean": clean, "sae": spliced, "zero": zeroed,
            "recovered": (zeroed - spliced) / (zeroed - clean)}


def ce_activations_not_flattened(model, sae, tokens, loss_mask):
    def reconstruct(activation, name):
        out = decode(sae, latents(sae, activation))  # (batch, pos, d_model) straight in
        out[:, 0] = activation[:, 0]
        return out

    def zero(activation, name):
        out = torch.zeros_like(activation)
        out[:, 0] = activation[:, 0]
        return out

    def loss(patches):
        with torch.no_grad(), patched(model, patches):
            return masked_next_token_loss(model(tokens).logits, tokens, loss_mask).item()

    hook = sae.cfg["hook_name"]
    clean, spliced, zeroed = loss({}), loss({hook: reconstruct}), loss({hook: zero})
    return {"clean": clean, "sae": spliced, "zero": zeroed,
            "recovered": (zeroed - spliced) / (zeroed - clean)}


def ce_reconstruction_left_flat(model, sae, tokens, loss_mask):
    width = sae.W_enc.shape[0]

    def reconstruct(activation, name):
        flat = activation.reshape(-1, width)
        return decode(sae, latents(sae, flat))  # (batch × pos, d_model), never reshaped back

    def zero(activation, name):
        out = torch.zeros_like(activation)
        out[:, 0] = activation[:, 0]
        return out

    def loss(patches):
        with torch.no_grad(), patched(model, patches):
            return masked_next_token_loss(model(tokens).logits, tokens, loss_mask).item()

    hook = sae.cfg["hook_name"]
    clean, spliced, zeroed = loss({}), loss({hook: reconstruct}), loss({hook: zero})
    return {"clean": clean, "sae": spliced, "zero": zeroed,
            "recovered": (zeroed - spliced) / (zeroed - clean)}


def ce_hooks_left_behind(model, sae, tokens, loss_mask):
    """Right values, with raw forward hooks on the block whose output the SAE reads, never taken
    off again."""
    width = sae.W_enc.shape[0]
    block = model.transformer.h[_layer_of(sae.cfg["hook_name"])]

    def reconstruct(module, inputs, output):
        activation = _output_tensor(output)
        out = decode(sae, latents(sae, activation.reshape(-1, width))).reshape(activation.shape)
        out[:, 0] = activation[:, 0]
        return _replace_output(output, out)

    def zero(module, inputs, output):
        activation = _output_tensor(output)
        out = torch.zeros_like(activation)
        out[:, 0] = activation[:, 0]
        return _replace_output(output, out)

    def loss():
        with torch.no_grad():
            return masked_next_token_loss(model(tokens).logits, tokens, loss_mask).item()

    clean = loss()
    block.register_forward_hook(reconstruct)
    spliced = loss()
    block.register_forward_hook(zero)  # runs after reconstruct, and zeroes what it returned
    zeroed = loss()
    return {"clean": clean, "sae": spliced, "zero": zeroed,
            "recovered": (zeroed - spliced) / (zeroed - clean)}


# precision_recall -----------------------------------------------------------------------------

def pr_nan_for_silent_units(activations, labels):
    predicted = activations > 0
    true_positives = (predicted & labels[:, None]).sum(dim=0).float()
    return true_positives / predicted.sum(dim=0), true_positives / labels.sum()


def pr_swapped(activations, labels):
    predicted = activations > 0
    true_positives = (predicted & labels[:, None]).sum(dim=0).float()
    return true_positives / labels.sum(), true_positives / predicted.sum(dim=0).clamp(min=1)


def pr_recall_over_every_input(activations, labels):
    predicted = activations > 0
    true_positives = (predicted & labels[:, None]).sum(dim=0).float()
    return true_positives / predicted.sum(dim=0).clamp(min=1), true_positives / len(labels)


def pr_fires_at_zero(activations, labels):
    predicted = activations >= 0
    true_positives = (predicted & labels[:, None]).sum(dim=0).float()
    return true_positives / predicted.sum(dim=0).clamp(min=1), true_positives / labels.sum()


def pr_stacked(activations, labels):
    predicted = activations > 0
    true_positives = (predicted & labels[:, None]).sum(dim=0).float()
    return torch.stack([true_positives / predicted.sum(dim=0).clamp(min=1),
                        true_positives / labels.sum()])


def pr_labels_not_broadcast(activations, labels):
    predicted = activations > 0
    true_positives = (predicted & labels).sum(dim=0).float()
    return true_positives / predicted.sum(dim=0).clamp(min=1), true_positives / labels.sum()


# precision_at_recall --------------------------------------------------------------------------

def par_ties_left_out(activations, labels, recall):
    needed = max(1, int(torch.tensor(recall * labels.sum().item()).ceil()))
    threshold = activations[labels].topk(needed, dim=0).values[-1]
    predicted = activations > threshold  # strictly above: the inputs tied at t are not predicted
    return ((predicted & labels[:, None]).sum(dim=0).float()
            / predicted.sum(dim=0).clamp(min=1))


def par_exactly_needed_true_positives(activations, labels, recall):
    needed = max(1, int(torch.tensor(recall * labels.sum().item()).ceil()))
    threshold = activations[labels].topk(needed, dim=0).values[-1]
    predicted = activations >= threshold
    return needed / predicted.sum(dim=0).float()  # the positives tied at t count too


def par_rounded_down(activations, labels, recall):
    needed = max(1, int(recall * labels.sum().item()))
    threshold = activations[labels].topk(needed, dim=0).values[-1]
    predicted = activations >= threshold
    return (predicted & labels[:, None]).sum(dim=0).float() / predicted.sum(dim=0)


def par_threshold_from_every_input(activations, labels, recall):
    needed = max(1, int(torch.tensor(recall * labels.sum().item()).ceil()))
    threshold = activations.topk(needed, dim=0).values[-1]
    predicted = activations >= threshold
    return (predicted & labels[:, None]).sum(dim=0).float() / predicted.sum(dim=0)


def par_quantile(activations, labels, recall):
    threshold = activations[labels].quantile(1 - recall, dim=0)
    predicted = activations >= threshold
    return (predicted & labels[:, None]).sum(dim=0).float() / predicted.sum(dim=0)


def par_sorted_ascending(activations, labels, recall):
    needed = max(1, int(torch.tensor(recall * labels.sum().item()).ceil()))
    threshold = activations[labels].sort(dim=0).values[needed - 1]  # the needed-th smallest
    predicted = activations >= threshold
    return (predicted & labels[:, None]).sum(dim=0).float() / predicted.sum(dim=0)


def par_share_of_every_input(activations, labels, recall):
    needed = max(1, int(torch.tensor(recall * len(labels)).ceil()))  # of all inputs
    threshold = activations[labels].topk(needed, dim=0).values[-1]
    predicted = activations >= threshold
    return (predicted & labels[:, None]).sum(dim=0).float() / predicted.sum(dim=0)


# steer ----------------------------------------------------------------------------------------

def _greedy(model, tokens, n_new):
    generated = tokens
    for _ in range(n_new):
        next_token = model(generated).logits[:, -1].argmax(dim=-1, keepdim=True)
        generated = torch.cat([generated, next_token], dim=1)
    return generated


@torch.no_grad()
def steer_last_position_only(model, tokens, hook_name, direction, alpha, n_new):
    def add(activation, name):
        out = activation.clone()
        out[:, -1] += alpha * direction
        return out

    with patched(model, {hook_name: add}):
        return _greedy(model, tokens, n_new)[:, tokens.shape[1]:]


@torch.no_grad()
def steer_returns_prompt_and_new_tokens(model, tokens, hook_name, direction, alpha, n_new):
    def add(activation, name):
        return activation + alpha * direction

    with patched(model, {hook_name: add}):
        return _greedy(model, tokens, n_new)


@torch.no_grad()
def steer_unit_direction(model, tokens, hook_name, direction, alpha, n_new):
    def add(activation, name):
        return activation + alpha * direction / direction.norm()

    with patched(model, {hook_name: add}):
        return _greedy(model, tokens, n_new)[:, tokens.shape[1]:]


@torch.no_grad()
def steer_the_prompt_only(model, tokens, hook_name, direction, alpha, n_new):
    def add(activation, name):
        return activation + alpha * direction

    with patched(model, {hook_name: add}):  # the first token steered, the others not
        first = model(tokens).logits[:, -1].argmax(dim=-1, keepdim=True)
    generated = _greedy(model, torch.cat([tokens, first], dim=1), n_new - 1)
    return generated[:, tokens.shape[1]:]


@torch.no_grad()
def steer_from_the_prompt_every_step(model, tokens, hook_name, direction, alpha, n_new):
    def add(activation, name):
        return activation + alpha * direction

    new = []
    with patched(model, {hook_name: add}):
        for _ in range(n_new):
            new.append(model(tokens).logits[:, -1].argmax(dim=-1))  # never sees its own tokens
    return torch.stack(new, dim=1)


@torch.no_grad()
def steer_scales_direction_in_place(model, tokens, hook_name, direction, alpha, n_new):
    direction *= alpha

    def add(activation, name):
        return activation + direction

    with patched(model, {hook_name: add}):
        return _greedy(model, tokens, n_new)[:, tokens.shape[1]:]


@torch.no_grad()
def steer_hook_left_behind(model, tokens, hook_name, direction, alpha, n_new):
    """Right tokens, steered with a raw forward hook on the block that is never taken off."""
    def add(module, inputs, output):
        return _replace_output(output, _output_tensor(output) + alpha * direction)

    model.transformer.h[_layer_of(hook_name)].register_forward_hook(add)
    return _greedy(model, tokens, n_new)[:, tokens.shape[1]:]


# Each mistake, with a fragment of the message that must reject it: the reason it was written for.
MISTAKES = {
    "encode": {
        encode_without_b_dec: "encode(sae, x) has wrong values",
        encode_adds_b_dec: "encode(sae, x) has wrong values",
        encode_relu_before_bias: "negative latent activations: a latent is either off (0) or on",
        encode_without_relu: "negative latent activations: a latent is either off (0) or on",
        encode_with_W_enc_transposed: "mat1 and mat2 shapes cannot be multiplied",
        encode_with_decoder_transposed: "encode(sae, x) has wrong values",
        encode_centres_in_place: "`encode` changed its input (argument 2) in place",
    },
    "decode": {
        decode_without_b_dec: "decode(sae, f) has wrong values",
        decode_subtracts_b_dec: "decode(sae, f) has wrong values",
        decode_with_relu: "decode(sae, f) has wrong values",
        decode_with_encoder_transposed: "decode(sae, f) has wrong values",
        decode_with_W_dec_transposed: "mat1 and mat2 shapes cannot be multiplied",
        decode_with_unit_decoder_rows: "decode(sae, f) has wrong values",
    },
    "topk_encode": {
        topk_without_relu: "returned negative latent activations: apply a ReLU",
        topk_over_the_batch: "latents active in an input",
        topk_kthvalue_threshold: "latents active in an input",
        topk_without_b_dec: "has wrong values",
        topk_largest_magnitudes: "has wrong values",
        topk_with_the_saes_own_k: "must be int, not NoneType",
        topk_scatters_ones: "has wrong values",
    },
    "sae_loss": {
        loss_mse: "on a random ReLU SAE is averaged over d_in",
        loss_summed_over_the_batch: "on a random ReLU SAE is summed over the batch",
        loss_without_decoder_norms: "ignores the decoder norms",
        loss_l1_norm_of_latents: "ignores the decoder norms",
        loss_decoder_norms_over_wrong_axis: "must match the size of tensor b",
        loss_norm_not_squared: "the reconstruction term of sae_loss on a random ReLU SAE: expected",
        loss_relu_encoder_only: "the reconstruction term of sae_loss on a random TopK SAE",
        loss_coefficient_on_reconstruction: "the loss of sae_loss on a random ReLU SAE: expected",
        loss_terms_as_floats: "the reconstruction of sae_loss should be a 0-d tensor",
        loss_calls_backward: "leave backward() to training_step",
        loss_only: "sae_loss should return (loss, reconstruction, sparsity)",
        loss_with_norms_by_hand: "has a NaN or infinite gradient",
        loss_latents_under_no_grad: "the wrong gradient for sae.W_enc",
        loss_decoder_norms_detached: "the wrong gradient for sae.W_dec",
        loss_detached: "the loss of sae_loss cannot be differentiated",
    },
    "training_step": {
        step_without_zero_grad: "after step 2 of training_step on a random ReLU SAE has wrong",
        step_zero_grad_after_backward: "after step 1 of training_step on a random ReLU SAE",
        step_backward_on_reconstruction_only: "after step 1 of training_step",
        step_returns_the_loss_after_the_update: "the loss training_step returned at step 1",
        step_returns_a_tensor: "training_step returned a tensor",
        step_returns_nothing: "returned at step 1 should be a number, got NoneType",
        step_normalises_decoder_rows: "sae.W_dec after step 1 of training_step",
        step_loss_with_norms_by_hand: "are NaN or infinite after step 1 of training_step",
    },
    "sae_statistics": {
        stats_l0_counts_zeros: "l0 on a random ReLU SAE",
        stats_l0_as_a_fraction: "l0 on a random ReLU SAE",
        stats_relu_encoder_only: "l0 on a random TopK SAE",
        stats_fvu_per_input: "fvu on a random ReLU SAE",
        stats_fvu_scalar_mean: "fvu on a random ReLU SAE",
        stats_fvu_with_unbiased_variance: "fvu on a random ReLU SAE",
        stats_fvu_not_centred: "fvu on a random ReLU SAE",
        stats_density_per_input: "density on a random ReLU SAE: expected shape",
        stats_density_as_counts: "density on a random ReLU SAE has wrong values",
        stats_centres_x_in_place: "`sae_statistics` changed its input (argument 2) in place",
    },
    "mmcs": {
        mmcs_max_over_decoder_rows: "the largest cosine similarity (signed)",
        mmcs_unsigned: "the largest cosine similarity (signed)",
        mmcs_decoder_not_normalised: "the largest cosine similarity (signed)",
        mmcs_dot_products: "the largest cosine similarity (signed)",
        mmcs_normalised_over_wrong_axis: "the largest cosine similarity (signed)",
        mmcs_single_best_pair: "the largest cosine similarity (signed)",
        mmcs_max_without_values: "object has no attribute 'mean'",
    },
    "resample_dead_latents": {
        resample_best_reconstructed_inputs: "sae.W_enc after resample_dead_latents",
        resample_without_b_dec: "sae.W_enc after resample_dead_latents",
        resample_scale_from_every_latent: "sae.W_enc after resample_dead_latents",
        resample_encoder_at_full_scale: "sae.W_enc after resample_dead_latents",
        resample_keeps_encoder_bias: "sae.b_enc after resample_dead_latents",
        resample_without_going_round_again: "cannot be broadcast to indexing result",
        resample_all_from_the_worst_input: "sae.W_enc after resample_dead_latents",
        resample_without_a_scale_when_none_is_alive: "more dead latents than inputs contains NaN",
        resample_ranked_with_the_relu_encoder: "on a random TopK SAE",
        resample_replaces_parameters: "is no longer the trainable parameter the optimiser holds",
    },
    "ce_loss_recovered": {
        ce_splices_bos_too: "ce_loss_recovered()['sae']",
        ce_zero_ablates_bos_too: "ce_loss_recovered()['zero']",
        ce_mean_ablation: "ce_loss_recovered()['zero']",
        ce_without_loss_mask: "ce_loss_recovered()['clean']",
        ce_mean_of_per_text_losses: "ce_loss_recovered()['clean']",
        ce_recovered_backwards: "ce_loss_recovered()['recovered']",
        ce_relu_encoder_only: "['sae'] on a random 2-layer model with a TopK SAE",
        ce_activations_not_flattened: "flatten batch and positions",
        ce_reconstruction_left_flat: "the patch for blocks.0.hook_resid_post returned shape",
        ce_hooks_left_behind: "left 2 hooks on the model (now removed)",
    },
    "precision_recall": {
        pr_nan_for_silent_units: "the precision of each unit contains NaN",
        pr_swapped: "the precision of each unit has wrong values",
        pr_recall_over_every_input: "the recall of each unit has wrong values",
        pr_fires_at_zero: "the precision of each unit has wrong values",
        pr_stacked: "precision_recall should return (precision, recall)",
        pr_labels_not_broadcast: "must match the size of tensor b",
    },
    "precision_at_recall": {
        par_ties_left_out: "has wrong values",
        par_exactly_needed_true_positives: "has wrong values",
        par_rounded_down: "has wrong values",
        par_threshold_from_every_input: "has wrong values",
        par_quantile: "has wrong values",
        par_sorted_ascending: "has wrong values",
        par_share_of_every_input: "selected index k out of range",
    },
    "steer": {
        steer_last_position_only: "steer(..., alpha=4.0, n_new=4)",
        steer_returns_prompt_and_new_tokens: "expected shape (3, 4), got",
        steer_unit_direction: "steer(..., alpha=4.0, n_new=4)",
        steer_the_prompt_only: "steer(..., alpha=4.0, n_new=4)",
        steer_from_the_prompt_every_step: "steer(..., alpha=0.0, n_new=4)",
        steer_scales_direction_in_place: "`steer` changed its input (argument 4) in place",
        steer_hook_left_behind: "left 1 hook on the model (now removed)",
    },
}
