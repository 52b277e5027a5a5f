"""Realistic wrong answers to the chapter 06 exercises. Every one must be rejected by its check.

Each is written the way a learner would write it, in the notebook's names: ``site_names``,
``add_subject_noise``, ``Trace``, ``POSITION_CLASSES``, ``key_name``, ``added_at``, ``c_proj``,
``last_token_logits``, ``logits_with_weight`` and ``SCORES`` are what the notebook gives, and
``corrupted_probabilities`` and ``restored_probabilities`` the learner's own answers to earlier
exercises; in the notebook they are defined by earlier cells, and the checks hand over the
reference versions (``reference_impl.course.grading.with_reference_dependencies``). The private
helpers below are shared by several mistakes and see only this module's names, so they take what
they need as arguments and use plain tensor code.

Some wrong-looking answers are left out because they are not wrong: noise added to
``hook_pos_embed`` or to ``blocks.0.hook_resid_pre`` at the subject's positions is the same as
noise on ``hook_embed`` (the block adds token and position embeddings first), and a δ added to
``blocks.{layer}.hook_resid_post`` is the same as one added to ``hook_mlp_out``."""

import torch
import torch.nn.functional as F

from reference_impl.hooks import patched, run_with_cache

# corrupted_probabilities ------------------------------------------------------------------------


def _noisy_copies(model, tokens, noise, patches):
    """The final position's probabilities of ``len(noise)`` copies of the prompt under
    ``patches``."""
    logits, _ = run_with_cache(model, tokens[None].expand(len(noise), -1), names=[],
                               patches=patches)
    return logits[:, -1].softmax(dim=-1)


def corrupted_noise_one_position_early(model, tokens, subject, target, noise):
    start, stop = subject
    start, stop = start - 1, stop - 1  # counts the subject's words from 0, forgetting BOS

    def patch(embed, _):
        return torch.cat([embed[:, :start], embed[:, start:stop] + noise, embed[:, stop:]], dim=1)
    return _noisy_copies(model, tokens, noise, {"hook_embed": patch})[:, target]


def corrupted_noise_after_block_0(model, tokens, subject, target, noise):
    # "the subject's representation": the residual stream leaving the first block
    patches = {"blocks.0.hook_resid_post": add_subject_noise(noise, subject)}
    return _noisy_copies(model, tokens, noise, patches)[:, target]


def corrupted_same_noise_every_copy(model, tokens, subject, target, noise):
    start, stop = subject

    def patch(embed, _):
        return torch.cat([embed[:, :start], embed[:, start:stop] + noise[0], embed[:, stop:]],
                         dim=1)
    return _noisy_copies(model, tokens, noise, {"hook_embed": patch})[:, target]


def corrupted_noise_replaces_embedding(model, tokens, subject, target, noise):
    start, stop = subject

    def patch(embed, _):
        return torch.cat([embed[:, :start], noise, embed[:, stop:]], dim=1)
    return _noisy_copies(model, tokens, noise, {"hook_embed": patch})[:, target]


def corrupted_logit_not_probability(model, tokens, subject, target, noise):
    copies = tokens[None].expand(len(noise), -1)
    logits, _ = run_with_cache(model, copies, names=[],
                               patches={"hook_embed": add_subject_noise(noise, subject)})
    return logits[:, -1, target]


def corrupted_mean_over_copies(model, tokens, subject, target, noise):
    patches = {"hook_embed": add_subject_noise(noise, subject)}
    return _noisy_copies(model, tokens, noise, patches)[:, target].mean()


def corrupted_hook_left_on_wte(model, tokens, subject, target, noise):
    start, stop = subject

    def add_noise(module, args, output):
        return torch.cat([output[:, :start], output[:, start:stop] + noise, output[:, stop:]],
                         dim=1)
    model.transformer.wte.register_forward_hook(add_noise)
    with torch.no_grad():
        logits = model(tokens[None].expand(len(noise), -1)).logits
    return logits[:, -1].softmax(dim=-1)[:, target]


# restored_probabilities -------------------------------------------------------------------------

def _restored_with(model, tokens, noise, patches):
    logits, _ = run_with_cache(model, tokens[None].expand(len(noise), -1), names=[],
                               patches=patches)
    return logits[:, -1].softmax(dim=-1)


def restored_at_every_position(model, tokens, subject, target, noise, kind, layers, position):
    names = [site_names(model, kind)[layer] for layer in layers]
    _, clean = run_with_cache(model, tokens[None], names=names)
    patches = {"hook_embed": add_subject_noise(noise, subject),
               **{name: lambda activation, name: clean[name].expand_as(activation)
                  for name in names}}
    return _restored_with(model, tokens, noise, patches)[:, target]


def restored_from_the_corrupted_run(model, tokens, subject, target, noise, kind, layers,
                                    position):
    names = [site_names(model, kind)[layer] for layer in layers]
    noisy = {"hook_embed": add_subject_noise(noise, subject)}
    _, corrupted = run_with_cache(model, tokens[None].expand(len(noise), -1), names=names,
                                  patches=noisy)

    def restore(activation, name):
        restored = activation.clone()
        restored[:, position] = corrupted[name][:, position]
        return restored
    return _restored_with(model, tokens, noise,
                          {**noisy, **{name: restore for name in names}})[:, target]


def restored_without_the_noise(model, tokens, subject, target, noise, kind, layers, position):
    names = [site_names(model, kind)[layer] for layer in layers]
    _, clean = run_with_cache(model, tokens[None], names=names)

    def restore(activation, name):
        restored = activation.clone()
        restored[:, position] = clean[name][0, position]
        return restored
    return _restored_with(model, tokens, noise, {name: restore for name in names})[:, target]


def restored_first_layer_only(model, tokens, subject, target, noise, kind, layers, position):
    name = site_names(model, kind)[layers[0]]
    _, clean = run_with_cache(model, tokens[None], names=[name])

    def restore(activation, _):
        restored = activation.clone()
        restored[:, position] = clean[name][0, position]
        return restored
    patches = {"hook_embed": add_subject_noise(noise, subject), name: restore}
    return _restored_with(model, tokens, noise, patches)[:, target]


def restored_residual_whatever_the_kind(model, tokens, subject, target, noise, kind, layers,
                                        position):
    names = [f"blocks.{layer}.hook_resid_post" for layer in layers]
    _, clean = run_with_cache(model, tokens[None], names=names)

    def restore(activation, name):
        restored = activation.clone()
        restored[:, position] = clean[name][0, position]
        return restored
    patches = {"hook_embed": add_subject_noise(noise, subject),
               **{name: restore for name in names}}
    return _restored_with(model, tokens, noise, patches)[:, target]


def restored_state_entering_the_layer(model, tokens, subject, target, noise, kind, layers,
                                      position):
    # the residual stream *of* layer L read as the one entering block L
    hook = {"resid": "hook_resid_pre", "mlp": "hook_mlp_out", "attn": "hook_attn_out"}[kind]
    names = [f"blocks.{layer}.{hook}" for layer in layers]
    _, clean = run_with_cache(model, tokens[None], names=names)

    def restore(activation, name):
        restored = activation.clone()
        restored[:, position] = clean[name][0, position]
        return restored
    patches = {"hook_embed": add_subject_noise(noise, subject),
               **{name: restore for name in names}}
    return _restored_with(model, tokens, noise, patches)[:, target]


def restored_mean_over_copies(model, tokens, subject, target, noise, kind, layers, position):
    names = [site_names(model, kind)[layer] for layer in layers]
    _, clean = run_with_cache(model, tokens[None], names=names)

    def restore(activation, name):
        restored = activation.clone()
        restored[:, position] = clean[name][0, position]
        return restored
    patches = {"hook_embed": add_subject_noise(noise, subject),
               **{name: restore for name in names}}
    return _restored_with(model, tokens, noise, patches)[:, target].mean()


# trace ----------------------------------------------------------------------------------------

def _clean_probability(model, tokens, target):
    with torch.no_grad():
        return model(tokens[None]).logits[0, -1].softmax(dim=-1)[target].item()


def trace_window_one_short(model, tokens, subject, target, noise, kind="resid", window=1,
                           positions=None):
    positions = list(range(len(tokens))) if positions is None else list(positions)
    n_layer = model.config.n_layer
    restored = torch.zeros(n_layer - window + 1, len(positions))
    for first in range(n_layer - window + 1):
        layers = list(range(first, first + window - 1))  # the window ends one layer early
        for t, position in enumerate(positions):
            restored[first, t] = restored_probabilities(model, tokens, subject, target, noise,
                                                        kind, layers, position).mean()
    corrupted = corrupted_probabilities(model, tokens, subject, target, noise).mean().item()
    return Trace(kind, window, _clean_probability(model, tokens, target), corrupted, restored,
                 positions)


def trace_positions_without_the_last(model, tokens, subject, target, noise, kind="resid",
                                     window=1, positions=None):
    # "the positions before the answer": but the last position is the one before the answer
    positions = list(range(len(tokens) - 1)) if positions is None else list(positions)
    n_layer = model.config.n_layer
    restored = torch.zeros(n_layer - window + 1, len(positions))
    for first in range(n_layer - window + 1):
        for t, position in enumerate(positions):
            restored[first, t] = restored_probabilities(
                model, tokens, subject, target, noise, kind, list(range(first, first + window)),
                position).mean()
    corrupted = corrupted_probabilities(model, tokens, subject, target, noise).mean().item()
    return Trace(kind, window, _clean_probability(model, tokens, target), corrupted, restored,
                 positions)


def trace_indirect_effect_as_restored(model, tokens, subject, target, noise, kind="resid",
                                      window=1, positions=None):
    positions = list(range(len(tokens))) if positions is None else list(positions)
    n_layer = model.config.n_layer
    corrupted = corrupted_probabilities(model, tokens, subject, target, noise).mean().item()
    restored = torch.zeros(n_layer - window + 1, len(positions))
    for first in range(n_layer - window + 1):
        for t, position in enumerate(positions):
            restored[first, t] = restored_probabilities(
                model, tokens, subject, target, noise, kind, list(range(first, first + window)),
                position).mean() - corrupted
    return Trace(kind, window, _clean_probability(model, tokens, target), corrupted, restored,
                 positions)


def trace_corrupted_of_one_copy(model, tokens, subject, target, noise, kind="resid", window=1,
                                positions=None):
    positions = list(range(len(tokens))) if positions is None else list(positions)
    n_layer = model.config.n_layer
    restored = torch.zeros(n_layer - window + 1, len(positions))
    for first in range(n_layer - window + 1):
        for t, position in enumerate(positions):
            restored[first, t] = restored_probabilities(
                model, tokens, subject, target, noise, kind, list(range(first, first + window)),
                position).mean()
    corrupted = corrupted_probabilities(model, tokens, subject, target, noise)[0].item()
    return Trace(kind, window, _clean_probability(model, tokens, target), corrupted, restored,
                 positions)


def trace_clean_log_probability(model, tokens, subject, target, noise, kind="resid", window=1,
                                positions=None):
    positions = list(range(len(tokens))) if positions is None else list(positions)
    n_layer = model.config.n_layer
    restored = torch.zeros(n_layer - window + 1, len(positions))
    for first in range(n_layer - window + 1):
        for t, position in enumerate(positions):
            restored[first, t] = restored_probabilities(
                model, tokens, subject, target, noise, kind, list(range(first, first + window)),
                position).mean()
    with torch.no_grad():
        clean = model(tokens[None]).logits[0, -1].log_softmax(dim=-1)[target].item()
    corrupted = corrupted_probabilities(model, tokens, subject, target, noise).mean().item()
    return Trace(kind, window, clean, corrupted, restored, positions)


def trace_a_row_per_layer(model, tokens, subject, target, noise, kind="resid", window=1,
                          positions=None):
    positions = list(range(len(tokens))) if positions is None else list(positions)
    n_layer = model.config.n_layer
    restored = torch.zeros(n_layer, len(positions))
    for first in range(n_layer):  # the last windows are cut short at the top of the model
        layers = list(range(first, min(first + window, n_layer)))
        for t, position in enumerate(positions):
            restored[first, t] = restored_probabilities(model, tokens, subject, target, noise,
                                                        kind, layers, position).mean()
    corrupted = corrupted_probabilities(model, tokens, subject, target, noise).mean().item()
    return Trace(kind, window, _clean_probability(model, tokens, target), corrupted, restored,
                 positions)


def trace_returns_a_dict(model, tokens, subject, target, noise, kind="resid", window=1,
                         positions=None):
    positions = list(range(len(tokens))) if positions is None else list(positions)
    n_layer = model.config.n_layer
    restored = torch.zeros(n_layer - window + 1, len(positions))
    for first in range(n_layer - window + 1):
        for t, position in enumerate(positions):
            restored[first, t] = restored_probabilities(
                model, tokens, subject, target, noise, kind, list(range(first, first + window)),
                position).mean()
    corrupted = corrupted_probabilities(model, tokens, subject, target, noise).mean().item()
    return {"kind": kind, "window": window, "clean": _clean_probability(model, tokens, target),
            "corrupted": corrupted, "restored": restored, "positions": positions}


# average_indirect_effect ------------------------------------------------------------------------

def _class_positions(start, stop, last):
    return range(start, stop - 1), [stop - 1], range(stop, last), [last]


def _columns(t, positions):
    """The columns of a trace that hold ``positions``."""
    return [t.positions.index(p) for p in positions]


def average_of_recovered_shares(traces, subjects):
    # the share of the total effect, not the effect itself
    totals = torch.zeros(len(traces[0].restored), len(POSITION_CLASSES))
    counts = torch.zeros(len(POSITION_CLASSES))
    for t, (start, stop) in zip(traces, subjects):
        for c, positions in enumerate(_class_positions(start, stop, max(t.positions))):
            if len(positions):
                totals[:, c] += t.recovered[:, _columns(t, positions)].mean(dim=1)
                counts[c] += 1
    return totals / counts


def average_divided_by_total_effect(traces, subjects):
    totals = torch.zeros(len(traces[0].restored), len(POSITION_CLASSES))
    counts = torch.zeros(len(POSITION_CLASSES))
    for t, (start, stop) in zip(traces, subjects):
        for c, positions in enumerate(_class_positions(start, stop, max(t.positions))):
            if len(positions):
                totals[:, c] += t.indirect_effect[:, _columns(t, positions)].mean(dim=1)
                counts[c] += 1
    total_effect = sum(t.total_effect for t in traces) / len(traces)
    return totals / counts / total_effect


def average_with_positions_before_the_subject(traces, subjects):
    totals = torch.zeros(len(traces[0].restored), len(POSITION_CLASSES))
    counts = torch.zeros(len(POSITION_CLASSES))
    for t, (start, stop) in zip(traces, subjects):
        last = max(t.positions)
        # "earlier": every position before the subject's last token
        classes = ([p for p in range(0, stop - 1) if p in t.positions], [stop - 1],
                   range(stop, last), [last])
        for c, positions in enumerate(classes):
            if len(positions):
                totals[:, c] += t.indirect_effect[:, _columns(t, positions)].mean(dim=1)
                counts[c] += 1
    return totals / counts


def average_over_every_prompt(traces, subjects):
    totals = torch.zeros(len(traces[0].restored), len(POSITION_CLASSES))
    for t, (start, stop) in zip(traces, subjects):
        for c, positions in enumerate(_class_positions(start, stop, max(t.positions))):
            if len(positions):
                totals[:, c] += t.indirect_effect[:, _columns(t, positions)].mean(dim=1)
    return totals / len(traces)  # also the prompts that lack the class


def average_with_empty_classes(traces, subjects):
    totals = torch.zeros(len(traces[0].restored), len(POSITION_CLASSES))
    for t, (start, stop) in zip(traces, subjects):
        for c, positions in enumerate(_class_positions(start, stop, max(t.positions))):
            totals[:, c] += t.indirect_effect[:, _columns(t, positions)].mean(dim=1)
    return totals / len(traces)


def average_pooled_over_positions(traces, subjects):
    # one mean over every position of the class in every prompt, not a mean of prompt means
    pooled = [[] for _ in POSITION_CLASSES]
    for t, (start, stop) in zip(traces, subjects):
        for c, positions in enumerate(_class_positions(start, stop, max(t.positions))):
            pooled[c] += [t.indirect_effect[:, t.positions.index(p)] for p in positions]
    return torch.stack([torch.stack(effects, dim=1).mean(dim=1) for effects in pooled], dim=1)


def average_of_restored_probabilities(traces, subjects):
    totals = torch.zeros(len(traces[0].restored), len(POSITION_CLASSES))
    counts = torch.zeros(len(POSITION_CLASSES))
    for t, (start, stop) in zip(traces, subjects):
        for c, positions in enumerate(_class_positions(start, stop, max(t.positions))):
            if len(positions):
                totals[:, c] += t.restored[:, _columns(t, positions)].mean(dim=1)
                counts[c] += 1
    return totals / counts


def average_columns_by_position(traces, subjects):
    # column p read as position p, which holds only for a trace over every position from 0
    totals = torch.zeros(len(traces[0].restored), len(POSITION_CLASSES))
    counts = torch.zeros(len(POSITION_CLASSES))
    for t, (start, stop) in zip(traces, subjects):
        for c, positions in enumerate(_class_positions(start, stop, len(t.positions) - 1)):
            if len(positions):
                totals[:, c] += t.indirect_effect[:, list(positions)].mean(dim=1)
                counts[c] += 1
    return totals / counts


# subject_key ----------------------------------------------------------------------------------

def _activations_at(model, prompts, name, position_of):
    """The activation ``name`` at ``position_of(tokens, position)`` of each prompt, stacked."""
    rows = []
    for tokens, position in prompts:
        _, cache = run_with_cache(model, tokens[None], names=[name])
        rows.append(cache[name][0, position_of(tokens, position)])
    return torch.stack(rows)


def key_before_the_gelu(model, prompts, layer):
    return _activations_at(model, prompts, f"blocks.{layer}.mlp.hook_pre",
                           lambda tokens, position: position).mean(dim=0)


def key_at_the_last_token(model, prompts, layer):
    return _activations_at(model, prompts, key_name(layer),
                           lambda tokens, position: -1).mean(dim=0)


def key_from_the_mlp_output(model, prompts, layer):
    return _activations_at(model, prompts, f"blocks.{layer}.hook_mlp_out",
                           lambda tokens, position: position).mean(dim=0)


def key_of_the_first_prompt_only(model, prompts, layer):
    tokens, position = prompts[0]
    _, cache = run_with_cache(model, tokens[None], names=[key_name(layer)])
    return cache[key_name(layer)][0, position]


def key_mean_over_positions(model, prompts, layer):
    keys = []
    for tokens, position in prompts:
        _, cache = run_with_cache(model, tokens[None], names=[key_name(layer)])
        keys.append(cache[key_name(layer)][0].mean(dim=0))  # every position of the prompt
    return torch.stack(keys).mean(dim=0)


def key_summed_over_prompts(model, prompts, layer):
    return _activations_at(model, prompts, key_name(layer),
                           lambda tokens, position: position).sum(dim=0)


def key_at_the_token_after_the_subject(model, prompts, layer):
    return _activations_at(model, prompts, key_name(layer),
                           lambda tokens, position: position + 1).mean(dim=0)


# key_second_moment ----------------------------------------------------------------------------

def _keys(model, tokens, name):
    _, cache = run_with_cache(model, tokens, names=[name])
    return cache[name]


def moment_centred(model, tokens, mask, layer):
    keys = _keys(model, tokens, key_name(layer))[mask.bool()].double()
    keys = keys - keys.mean(dim=0)  # a covariance
    return keys.T @ keys / len(keys)


def moment_with_padding(model, tokens, mask, layer):
    keys = _keys(model, tokens, key_name(layer)).flatten(0, 1).double()
    return keys.T @ keys / len(keys)


def moment_divided_by_the_batch(model, tokens, mask, layer):
    keys = _keys(model, tokens, key_name(layer)) * mask[..., None]
    keys = keys.flatten(0, 1).double()
    return keys.T @ keys / len(tokens)


def moment_in_float32(model, tokens, mask, layer):
    keys = _keys(model, tokens, key_name(layer))[mask.bool()]
    return keys.T @ keys / len(keys)


def moment_tokens_by_tokens(model, tokens, mask, layer):
    keys = _keys(model, tokens, key_name(layer))[mask.bool()].double()
    return keys @ keys.T / len(keys)


def moment_unbiased(model, tokens, mask, layer):
    keys = _keys(model, tokens, key_name(layer))[mask.bool()].double()
    return keys.T @ keys / (len(keys) - 1)


def moment_of_keys_before_the_gelu(model, tokens, mask, layer):
    keys = _keys(model, tokens, f"blocks.{layer}.mlp.hook_pre")[mask.bool()].double()
    return keys.T @ keys / len(keys)


# optimise_value -------------------------------------------------------------------------------

def value_without_kl(model, prompts, kl_prompts, layer, target, steps=20, lr=0.5,
                     kl_factor=0.0625, weight_decay=0.5):
    name = f"blocks.{layer}.hook_mlp_out"

    def log_probs(delta, tokens, position):
        with patched(model, {name: added_at(delta, position)}):
            return model(tokens[None]).logits[0, -1].log_softmax(dim=-1)

    tokens, position = prompts[0]
    v0 = run_with_cache(model, tokens[None], names=[name])[1][name][0, position]
    delta = torch.zeros(model.config.n_embd, requires_grad=True)
    optimizer = torch.optim.Adam([delta], lr=lr)
    for _ in range(steps):
        nll = -torch.stack([log_probs(delta, t, p)[target] for t, p in prompts]).mean()
        loss = nll + weight_decay * delta.norm() / v0.norm() ** 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        prob = torch.stack([log_probs(delta, t, p)[target] for t, p in prompts]).exp().mean()
    return v0 + delta.detach(), prob.item()


def value_kl_reversed(model, prompts, kl_prompts, layer, target, steps=20, lr=0.5,
                      kl_factor=0.0625, weight_decay=0.5):
    name = f"blocks.{layer}.hook_mlp_out"

    def log_probs(delta, tokens, position):
        with patched(model, {name: added_at(delta, position)}):
            return model(tokens[None]).logits[0, -1].log_softmax(dim=-1)

    with torch.no_grad():
        before = torch.stack([log_probs(torch.zeros(model.config.n_embd), t, p)
                              for t, p in kl_prompts])
    tokens, position = prompts[0]
    v0 = run_with_cache(model, tokens[None], names=[name])[1][name][0, position]
    delta = torch.zeros(model.config.n_embd, requires_grad=True)
    optimizer = torch.optim.Adam([delta], lr=lr)
    for _ in range(steps):
        nll = -torch.stack([log_probs(delta, t, p)[target] for t, p in prompts]).mean()
        after = torch.stack([log_probs(delta, t, p) for t, p in kl_prompts])
        kl = F.kl_div(after, before, log_target=True, reduction="batchmean")  # KL(p_0 ‖ p_δ)
        loss = nll + kl_factor * kl + weight_decay * delta.norm() / v0.norm() ** 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        prob = torch.stack([log_probs(delta, t, p)[target] for t, p in prompts]).exp().mean()
    return v0 + delta.detach(), prob.item()


def value_squared_norm_decay(model, prompts, kl_prompts, layer, target, steps=20, lr=0.5,
                             kl_factor=0.0625, weight_decay=0.5):
    name = f"blocks.{layer}.hook_mlp_out"

    def log_probs(delta, tokens, position):
        with patched(model, {name: added_at(delta, position)}):
            return model(tokens[None]).logits[0, -1].log_softmax(dim=-1)

    with torch.no_grad():
        before = torch.stack([log_probs(torch.zeros(model.config.n_embd), t, p)
                              for t, p in kl_prompts])
    tokens, position = prompts[0]
    v0 = run_with_cache(model, tokens[None], names=[name])[1][name][0, position]
    delta = torch.zeros(model.config.n_embd, requires_grad=True)
    optimizer = torch.optim.Adam([delta], lr=lr)
    for _ in range(steps):
        nll = -torch.stack([log_probs(delta, t, p)[target] for t, p in prompts]).mean()
        after = torch.stack([log_probs(delta, t, p) for t, p in kl_prompts])
        kl = F.kl_div(before, after, log_target=True, reduction="batchmean")
        loss = nll + kl_factor * kl + weight_decay * delta.pow(2).sum() / v0.pow(2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        prob = torch.stack([log_probs(delta, t, p)[target] for t, p in prompts]).exp().mean()
    return v0 + delta.detach(), prob.item()


def value_without_weight_decay(model, prompts, kl_prompts, layer, target, steps=20, lr=0.5,
                               kl_factor=0.0625, weight_decay=0.5):
    name = f"blocks.{layer}.hook_mlp_out"

    def log_probs(delta, tokens, position):
        with patched(model, {name: added_at(delta, position)}):
            return model(tokens[None]).logits[0, -1].log_softmax(dim=-1)

    with torch.no_grad():
        before = torch.stack([log_probs(torch.zeros(model.config.n_embd), t, p)
                              for t, p in kl_prompts])
    tokens, position = prompts[0]
    v0 = run_with_cache(model, tokens[None], names=[name])[1][name][0, position]
    delta = torch.zeros(model.config.n_embd, requires_grad=True)
    optimizer = torch.optim.Adam([delta], lr=lr, weight_decay=0.0)
    for _ in range(steps):
        nll = -torch.stack([log_probs(delta, t, p)[target] for t, p in prompts]).mean()
        after = torch.stack([log_probs(delta, t, p) for t, p in kl_prompts])
        kl = F.kl_div(before, after, log_target=True, reduction="batchmean")
        loss = nll + kl_factor * kl
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        prob = torch.stack([log_probs(delta, t, p)[target] for t, p in prompts]).exp().mean()
    return v0 + delta.detach(), prob.item()


def value_delta_at_every_position(model, prompts, kl_prompts, layer, target, steps=20, lr=0.5,
                                  kl_factor=0.0625, weight_decay=0.5):
    name = f"blocks.{layer}.hook_mlp_out"

    def log_probs(delta, tokens, position):
        with patched(model, {name: lambda activation, _: activation + delta}):
            return model(tokens[None]).logits[0, -1].log_softmax(dim=-1)

    with torch.no_grad():
        before = torch.stack([log_probs(torch.zeros(model.config.n_embd), t, p)
                              for t, p in kl_prompts])
    tokens, position = prompts[0]
    v0 = run_with_cache(model, tokens[None], names=[name])[1][name][0, position]
    delta = torch.zeros(model.config.n_embd, requires_grad=True)
    optimizer = torch.optim.Adam([delta], lr=lr)
    for _ in range(steps):
        nll = -torch.stack([log_probs(delta, t, p)[target] for t, p in prompts]).mean()
        after = torch.stack([log_probs(delta, t, p) for t, p in kl_prompts])
        kl = F.kl_div(before, after, log_target=True, reduction="batchmean")
        loss = nll + kl_factor * kl + weight_decay * delta.norm() / v0.norm() ** 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        prob = torch.stack([log_probs(delta, t, p)[target] for t, p in prompts]).exp().mean()
    return v0 + delta.detach(), prob.item()


def value_stale_probability(model, prompts, kl_prompts, layer, target, steps=20, lr=0.5,
                            kl_factor=0.0625, weight_decay=0.5):
    name = f"blocks.{layer}.hook_mlp_out"

    def log_probs(delta, tokens, position):
        with patched(model, {name: added_at(delta, position)}):
            return model(tokens[None]).logits[0, -1].log_softmax(dim=-1)

    with torch.no_grad():
        before = torch.stack([log_probs(torch.zeros(model.config.n_embd), t, p)
                              for t, p in kl_prompts])
    tokens, position = prompts[0]
    v0 = run_with_cache(model, tokens[None], names=[name])[1][name][0, position]
    delta = torch.zeros(model.config.n_embd, requires_grad=True)
    optimizer = torch.optim.Adam([delta], lr=lr)
    for _ in range(steps):
        target_log_probs = torch.stack([log_probs(delta, t, p)[target] for t, p in prompts])
        after = torch.stack([log_probs(delta, t, p) for t, p in kl_prompts])
        kl = F.kl_div(before, after, log_target=True, reduction="batchmean")
        loss = (-target_log_probs.mean() + kl_factor * kl
                + weight_decay * delta.norm() / v0.norm() ** 2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    # the probability of the last step's forward pass: δ before its final update
    return v0 + delta.detach(), target_log_probs.exp().mean().item()


def value_returns_delta(model, prompts, kl_prompts, layer, target, steps=20, lr=0.5,
                        kl_factor=0.0625, weight_decay=0.5):
    name = f"blocks.{layer}.hook_mlp_out"

    def log_probs(delta, tokens, position):
        with patched(model, {name: added_at(delta, position)}):
            return model(tokens[None]).logits[0, -1].log_softmax(dim=-1)

    with torch.no_grad():
        before = torch.stack([log_probs(torch.zeros(model.config.n_embd), t, p)
                              for t, p in kl_prompts])
    tokens, position = prompts[0]
    v0 = run_with_cache(model, tokens[None], names=[name])[1][name][0, position]
    delta = torch.zeros(model.config.n_embd, requires_grad=True)
    optimizer = torch.optim.Adam([delta], lr=lr)
    for _ in range(steps):
        nll = -torch.stack([log_probs(delta, t, p)[target] for t, p in prompts]).mean()
        after = torch.stack([log_probs(delta, t, p) for t, p in kl_prompts])
        kl = F.kl_div(before, after, log_target=True, reduction="batchmean")
        loss = nll + kl_factor * kl + weight_decay * delta.norm() / v0.norm() ** 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        prob = torch.stack([log_probs(delta, t, p)[target] for t, p in prompts]).exp().mean()
    return delta.detach(), prob.item()


# rank_one_update ------------------------------------------------------------------------------

def update_without_bias(weight, bias, key, value, second_moment):
    key = key.double()
    c_inv_key = torch.linalg.solve(second_moment.double(), key)
    u = c_inv_key / (c_inv_key @ key)
    residual = value.double() - key @ weight.double()
    return (weight.double() + torch.outer(u, residual)).to(weight.dtype)


def update_with_c_not_its_inverse(weight, bias, key, value, second_moment):
    key = key.double()
    c_key = second_moment.double() @ key
    u = c_key / (c_key @ key)
    residual = value.double() - (key @ weight.double() + bias.double())
    return (weight.double() + torch.outer(u, residual)).to(weight.dtype)


def update_transposed(weight, bias, key, value, second_moment):
    # nn.Linear's layout (d_model, d_mlp), not Conv1D's
    key = key.double()
    c_inv_key = torch.linalg.solve(second_moment.double(), key)
    u = c_inv_key / (c_inv_key @ key)
    residual = value.double() - (key @ weight.double() + bias.double())
    return (weight.double().T + torch.outer(residual, u)).to(weight.dtype)


def update_without_normalisation(weight, bias, key, value, second_moment):
    key = key.double()
    u = torch.linalg.solve(second_moment.double(), key)
    residual = value.double() - (key @ weight.double() + bias.double())
    return (weight.double() + torch.outer(u, residual)).to(weight.dtype)


def update_without_c(weight, bias, key, value, second_moment):
    key = key.double()
    u = key / (key @ key)  # the plain least-change update, as if C were the identity
    residual = value.double() - (key @ weight.double() + bias.double())
    return (weight.double() + torch.outer(u, residual)).to(weight.dtype)


def update_in_float64(weight, bias, key, value, second_moment):
    key = key.double()
    c_inv_key = torch.linalg.solve(second_moment.double(), key)
    u = c_inv_key / (c_inv_key @ key)
    residual = value.double() - (key @ weight.double() + bias.double())
    return weight.double() + torch.outer(u, residual)


def update_in_place(weight, bias, key, value, second_moment):
    key = key.double()
    c_inv_key = torch.linalg.solve(second_moment.double(), key)
    u = c_inv_key / (c_inv_key @ key)
    residual = value.double() - (key @ weight.double() + bias.double())
    weight += torch.outer(u, residual).to(weight.dtype)
    return weight


# edit_scores ----------------------------------------------------------------------------------

def _share(values):
    return values.float().mean().item()


def scores_neighbourhood_backwards(model, tokenizer, request):
    new, true = tokenizer.convert_tokens_to_ids([request.new_object, request.prompt.object])

    def new_wins(prompts):
        if not prompts:
            return float("nan")
        logits = last_token_logits(model, tokenizer, [p.prompt for p in prompts])
        return _share(logits[:, new] > logits[:, true])

    def still_right(prompts):
        if not prompts:
            return float("nan")
        logits = last_token_logits(model, tokenizer, [p.prompt for p in prompts])
        objects = torch.tensor(tokenizer.convert_tokens_to_ids([p.object for p in prompts]))
        return _share(logits.argmax(dim=-1) == objects)

    return {"efficacy": new_wins([request.prompt]), "paraphrase": new_wins(request.paraphrases),
            "neighbourhood": new_wins(request.neighbours),  # the edit reaching the neighbours
            "same_person": still_right(request.same_person),
            "same_name": still_right(request.same_name)}


def scores_against_the_requests_object(model, tokenizer, request):
    new, true = tokenizer.convert_tokens_to_ids([request.new_object, request.prompt.object])

    def new_wins(prompts):
        if not prompts:
            return float("nan")
        logits = last_token_logits(model, tokenizer, [p.prompt for p in prompts])
        return _share(logits[:, new] > logits[:, true])

    def still_right(prompts):
        if not prompts:
            return float("nan")
        logits = last_token_logits(model, tokenizer, [p.prompt for p in prompts])
        return _share(logits.argmax(dim=-1) == true)  # the request's object, not each prompt's

    return {"efficacy": new_wins([request.prompt]), "paraphrase": new_wins(request.paraphrases),
            "neighbourhood": 1 - new_wins(request.neighbours),
            "same_person": still_right(request.same_person),
            "same_name": still_right(request.same_name)}


def scores_as_tensors(model, tokenizer, request):
    new, true = tokenizer.convert_tokens_to_ids([request.new_object, request.prompt.object])

    def share(prompts, score):
        if not prompts:
            return torch.tensor(float("nan"))
        logits = last_token_logits(model, tokenizer, [p.prompt for p in prompts])
        return score(logits, prompts).float().mean()

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


def scores_at_the_last_padded_position(model, tokenizer, request):
    new, true = tokenizer.convert_tokens_to_ids([request.new_object, request.prompt.object])

    def last_logits(prompts):
        encoded = [tokenizer(p.prompt).input_ids for p in prompts]
        length = max(map(len, encoded))
        ids = torch.tensor([e + [tokenizer.bos_token_id] * (length - len(e)) for e in encoded])
        with torch.no_grad():
            return model(ids).logits[:, -1]  # the padding's, for the shorter prompts

    def new_wins(prompts):
        logits = last_logits(prompts)
        return _share(logits[:, new] > logits[:, true])

    def still_right(prompts):
        logits = last_logits(prompts)
        objects = torch.tensor(tokenizer.convert_tokens_to_ids([p.object for p in prompts]))
        return _share(logits.argmax(dim=-1) == objects)

    return {"efficacy": new_wins([request.prompt]), "paraphrase": new_wins(request.paraphrases),
            "neighbourhood": 1 - new_wins(request.neighbours),
            "same_person": still_right(request.same_person),
            "same_name": still_right(request.same_name)}


def scores_with_bos_as_the_objects(model, tokenizer, request):
    # tokenizer(word) puts BOS first: [0] is BOS, for both words
    new = tokenizer(request.new_object).input_ids[0]
    true = tokenizer(request.prompt.object).input_ids[0]

    def new_wins(prompts):
        logits = last_token_logits(model, tokenizer, [p.prompt for p in prompts])
        return _share(logits[:, new] > logits[:, true])

    def still_right(prompts):
        logits = last_token_logits(model, tokenizer, [p.prompt for p in prompts])
        objects = torch.tensor([tokenizer(p.object).input_ids[0] for p in prompts])
        return _share(logits.argmax(dim=-1) == objects)

    return {"efficacy": new_wins([request.prompt]), "paraphrase": new_wins(request.paraphrases),
            "neighbourhood": 1 - new_wins(request.neighbours),
            "same_person": still_right(request.same_person),
            "same_name": still_right(request.same_name)}


def scores_counted_not_shared(model, tokenizer, request):
    new, true = tokenizer.convert_tokens_to_ids([request.new_object, request.prompt.object])

    def new_wins(prompts):
        logits = last_token_logits(model, tokenizer, [p.prompt for p in prompts])
        return (logits[:, new] > logits[:, true]).sum().item()

    def still_right(prompts):
        logits = last_token_logits(model, tokenizer, [p.prompt for p in prompts])
        objects = torch.tensor(tokenizer.convert_tokens_to_ids([p.object for p in prompts]))
        return (logits.argmax(dim=-1) == objects).sum().item()

    return {"efficacy": float(new_wins([request.prompt])),
            "paraphrase": float(new_wins(request.paraphrases)),
            "neighbourhood": float(len(request.neighbours) - new_wins(request.neighbours)),
            "same_person": float(still_right(request.same_person)),
            "same_name": float(still_right(request.same_name))}


def scores_efficacy_as_probability(model, tokenizer, request):
    new, true = tokenizer.convert_tokens_to_ids([request.new_object, request.prompt.object])

    def new_wins(prompts):
        logits = last_token_logits(model, tokenizer, [p.prompt for p in prompts])
        return _share(logits[:, new] > logits[:, true])

    def still_right(prompts):
        logits = last_token_logits(model, tokenizer, [p.prompt for p in prompts])
        objects = torch.tensor(tokenizer.convert_tokens_to_ids([p.object for p in prompts]))
        return _share(logits.argmax(dim=-1) == objects)

    rewrite = last_token_logits(model, tokenizer, [request.prompt.prompt])[0]
    return {"efficacy": rewrite.softmax(dim=-1)[new].item(),
            "paraphrase": new_wins(request.paraphrases),
            "neighbourhood": 1 - new_wins(request.neighbours),
            "same_person": still_right(request.same_person),
            "same_name": still_right(request.same_name)}


# finetune_layer -------------------------------------------------------------------------------

def _nll(model, layer, weight, prompts, target, logits_with_weight):
    return -torch.stack([logits_with_weight(model, layer, weight, tokens[None])[0, -1]
                         .log_softmax(dim=-1)[target] for tokens in prompts]).mean()


def finetune_without_clamp(model, prompts, layer, target, steps=25, lr=5e-4, max_change=5e-3):
    weight = c_proj(model, layer).weight.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([weight], lr=lr)
    for _ in range(steps):
        loss = _nll(model, layer, weight, prompts, target, logits_with_weight)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return weight.detach()


def finetune_clamped_to_an_absolute_range(model, prompts, layer, target, steps=25, lr=5e-4,
                                          max_change=5e-3):
    weight = c_proj(model, layer).weight.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([weight], lr=lr)
    for _ in range(steps):
        loss = _nll(model, layer, weight, prompts, target, logits_with_weight)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            weight.clamp_(-max_change, max_change)
    return weight.detach()


def finetune_every_parameter(model, prompts, layer, target, steps=25, lr=5e-4,
                             max_change=5e-3):
    params = {name: p.detach().clone().requires_grad_(True)
              for name, p in model.named_parameters()}
    name = f"transformer.h.{layer}.mlp.c_proj.weight"
    original = params[name].detach().clone()
    optimizer = torch.optim.Adam(params.values(), lr=lr)
    for _ in range(steps):
        loss = -torch.stack([torch.func.functional_call(model, params, (tokens[None],))
                             .logits[0, -1].log_softmax(dim=-1)[target]
                             for tokens in prompts]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            params[name].copy_(torch.maximum(torch.minimum(params[name], original + max_change),
                                             original - max_change))
    return params[name].detach()


def finetune_with_sgd(model, prompts, layer, target, steps=25, lr=5e-4, max_change=5e-3):
    original = c_proj(model, layer).weight.detach()
    weight = original.clone().requires_grad_(True)
    optimizer = torch.optim.SGD([weight], lr=lr)
    for _ in range(steps):
        loss = _nll(model, layer, weight, prompts, target, logits_with_weight)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            weight.copy_(torch.maximum(torch.minimum(weight, original + max_change),
                                       original - max_change))
    return weight.detach()


def finetune_clamped_before_the_step(model, prompts, layer, target, steps=25, lr=5e-4,
                                     max_change=5e-3):
    original = c_proj(model, layer).weight.detach()
    weight = original.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([weight], lr=lr)
    for _ in range(steps):
        with torch.no_grad():
            weight.copy_(torch.maximum(torch.minimum(weight, original + max_change),
                                       original - max_change))
        loss = _nll(model, layer, weight, prompts, target, logits_with_weight)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()  # the last step is never clamped
    return weight.detach()


def finetune_the_models_own_weight(model, prompts, layer, target, steps=25, lr=5e-4,
                                   max_change=5e-3):
    weight = c_proj(model, layer).weight
    original = weight.detach().clone()
    optimizer = torch.optim.Adam([weight], lr=lr)
    for _ in range(steps):
        loss = -torch.stack([model(tokens[None]).logits[0, -1].log_softmax(dim=-1)[target]
                             for tokens in prompts]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            weight.copy_(torch.maximum(torch.minimum(weight, original + max_change),
                                       original - max_change))
    return weight.detach().clone()


def finetune_not_detached(model, prompts, layer, target, steps=25, lr=5e-4, max_change=5e-3):
    original = c_proj(model, layer).weight.detach()
    weight = original.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([weight], lr=lr)
    for _ in range(steps):
        loss = _nll(model, layer, weight, prompts, target, logits_with_weight)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            weight.copy_(torch.maximum(torch.minimum(weight, original + max_change),
                                       original - max_change))
    return weight


MISTAKES = {
    "corrupted_probabilities": {
        corrupted_noise_one_position_early: 'with 3 noisy copies has wrong values',
        corrupted_noise_after_block_0: 'with 3 noisy copies has wrong values',
        corrupted_same_noise_every_copy: 'with 3 noisy copies has wrong values',
        corrupted_noise_replaces_embedding: 'with 3 noisy copies has wrong values',
        corrupted_logit_not_probability: 'with 3 noisy copies has wrong values',
        corrupted_mean_over_copies: 'with 3 noisy copies: expected shape (3,), got ()',
        corrupted_hook_left_on_wte:
            '`corrupted_probabilities` left 1 hook on the model (now removed)',
    },
    "restored_probabilities": {
        restored_at_every_position:
            'restoring hook_resid_post of layers [4] at position 7 has wrong values',
        restored_from_the_corrupted_run:
            'restoring hook_resid_post of layers [4] at position 7 has wrong values',
        restored_without_the_noise:
            'restoring hook_resid_post of layers [4] at position 7 has wrong values',
        restored_first_layer_only:
            'restoring hook_mlp_out of layers [3, 4] at position 5 has wrong values',
        restored_residual_whatever_the_kind:
            'restoring hook_mlp_out of layers [3, 4] at position 5 has wrong values',
        restored_state_entering_the_layer:
            'restoring hook_resid_post of layers [4] at position 7 has wrong values',
        restored_mean_over_copies: 'at position 7: expected shape (3,), got ()',
    },
    "trace": {
        trace_window_one_short: "(kind 'resid', window 1): restored has wrong values",
        trace_positions_without_the_last:
            ("(kind 'resid', window 1): positions should be [0, 1, 2, 3, 4, 5, "
             '6, 7, 8, 9] (every position when none are given)'),
        trace_indirect_effect_as_restored: "(kind 'resid', window 1): restored has wrong values",
        trace_corrupted_of_one_copy: "(kind 'resid', window 1): corrupted: expected 0.2871",
        trace_clean_log_probability: "(kind 'resid', window 1): clean: expected 0.9967",
        trace_a_row_per_layer:
            "(kind 'mlp', window 2): restored: expected shape (1, 3), got (2, 3)",
        trace_returns_a_dict: "(kind 'resid', window 1) should return a Trace, got dict",
    },
    "average_indirect_effect": {
        average_of_recovered_shares: 'average_indirect_effect of 6 traces has wrong values',
        average_divided_by_total_effect: 'average_indirect_effect of 6 traces has wrong values',
        average_with_positions_before_the_subject:
            'average_indirect_effect of 6 traces has wrong values',
        average_over_every_prompt: 'average_indirect_effect of 6 traces has wrong values',
        average_with_empty_classes: 'of 6 traces contains NaN or infinite values',
        average_pooled_over_positions: 'average_indirect_effect of 6 traces has wrong values',
        average_of_restored_probabilities: 'average_indirect_effect of 6 traces has wrong values',
        average_columns_by_position: '`average_indirect_effect` raised IndexError',
    },
    "subject_key": {
        key_before_the_gelu: 'layer 0, two contexts has wrong values',
        key_at_the_last_token: 'layer 0, two contexts has wrong values',
        key_from_the_mlp_output: 'layer 0, two contexts: expected shape (384,), got (96,)',
        key_of_the_first_prompt_only: 'layer 0, two contexts has wrong values',
        key_mean_over_positions: 'layer 0, two contexts has wrong values',
        key_summed_over_prompts: 'layer 0, two contexts has wrong values',
        key_at_the_token_after_the_subject: 'layer 0, two contexts has wrong values',
    },
    "key_second_moment": {
        moment_centred: 'layer 0, 27 real tokens has wrong values',
        moment_with_padding: 'layer 0, 27 real tokens has wrong values',
        moment_divided_by_the_batch: 'layer 0, 27 real tokens has wrong values',
        moment_in_float32: '27 real tokens: expected dtype torch.float64, got torch.float32',
        moment_tokens_by_tokens: '27 real tokens: expected shape (96, 96), got (27, 27)',
        moment_unbiased: 'layer 0, 27 real tokens has wrong values',
        moment_of_keys_before_the_gelu: 'layer 0, 27 real tokens has wrong values',
    },
    "optimise_value": {
        value_without_kl: 'weight_decay 0.5: v* has wrong values',
        value_kl_reversed: 'weight_decay 0.5: v* has wrong values',
        value_squared_norm_decay: 'weight_decay 0.5: v* has wrong values',
        value_without_weight_decay: 'weight_decay 0.5: v* has wrong values',
        value_delta_at_every_position: 'weight_decay 0.5: v* has wrong values',
        value_stale_probability: 'weight_decay 0.5: the probability: expected 0.9888',
        value_returns_delta: 'weight_decay 0.5: v* has wrong values',
    },
    "rank_one_update": {
        update_without_bias: 'rank_one_update with d_mlp 10 and d_model 7 has wrong values',
        update_with_c_not_its_inverse:
            'rank_one_update with d_mlp 10 and d_model 7 has wrong values',
        update_transposed: 'd_model 7: expected shape (10, 7), got (7, 10)',
        update_without_normalisation:
            'rank_one_update with d_mlp 10 and d_model 7 has wrong values',
        update_without_c: 'rank_one_update with d_mlp 10 and d_model 7 has wrong values',
        update_in_float64: 'd_model 7: expected dtype torch.float32, got torch.float64',
        update_in_place: '`rank_one_update` changed its input (argument 1) in place (now put back)',
    },
    "edit_scores": {
        scores_neighbourhood_backwards: "(edited by ROME): ['neighbourhood']: expected 1, got 0",
        scores_against_the_requests_object:
            "(edited by ROME): ['same_person']: expected 0.5, got 0",
        scores_as_tensors: "(edited by ROME): ['efficacy'] is a tensor: return Python floats",
        scores_at_the_last_padded_position:
            "(edited by ROME): ['paraphrase']: expected 0.2, got 0.8",
        scores_with_bos_as_the_objects: "(edited by ROME): ['efficacy']: expected 1, got 0",
        scores_counted_not_shared: "(edited by ROME): ['paraphrase']: expected 0.2, got 1",
        scores_efficacy_as_probability: "(edited by ROME): ['efficacy']: expected 1, got 0.5369",
    },
    "finetune_layer": {
        finetune_without_clamp: '3 steps at lr 0.01 with max_change 0.005 has wrong values',
        finetune_clamped_to_an_absolute_range:
            '3 steps at lr 0.01 with max_change 0.005 has wrong values',
        finetune_every_parameter: '3 steps at lr 0.01 with max_change 0.005 has wrong values',
        finetune_with_sgd: '3 steps at lr 0.01 with max_change 0.005 has wrong values',
        finetune_clamped_before_the_step:
            '3 steps at lr 0.01 with max_change 0.005 has wrong values',
        finetune_the_models_own_weight:
            ('`finetune_layer` changed its input (argument '
             '1.transformer.h.0.mlp.c_proj.weight) in place'),
        finetune_not_detached: 'finetune_layer returned a weight that still requires a gradient',
    },
}
