"""The hook names are TransformerLens's, consistent with each other and with the model's own
forward pass."""

import re

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from reference_impl.hooks import ActivationCache, get_act_name, hook_names, patched, run_with_cache
from reference_impl.zoo import load_model
from reference_impl.zoo.recipes import language_models

ATOL = 1e-4


def _model(config, seed=0):
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config).eval()
    model.set_attn_implementation("eager")
    return model


def _tiny_config():
    return GPT2Config(n_layer=2, n_head=4, n_embd=64, n_positions=32, vocab_size=100)


def _tokens(config, batch=2, pos=12, seed=1):
    return torch.randint(0, config.vocab_size, (batch, pos),
                         generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module", params=["tiny", "gpt2-size", *language_models()])
def model_and_tokens(request):
    if request.param == "tiny":
        model = _model(_tiny_config())
    elif request.param == "gpt2-size":
        model = _model(GPT2Config())  # the full 124M-parameter GPT-2, randomly initialised
    else:
        model, _ = load_model(request.param)  # a shipped zoo model
    return model, _tokens(model.config)


@pytest.fixture(scope="module")
def cached(model_and_tokens):
    model, tokens = model_and_tokens
    logits, cache = run_with_cache(model, tokens)
    return model, tokens, logits, cache


def _has_mlp(model, layer):
    return f"blocks.{layer}.hook_mlp_out" in hook_names(model)


def transformer_lens_shape(name, config, batch, pos):
    """The shape TransformerLens gives the activation ``name``."""
    heads, d_model = config.n_head, config.n_embd
    d_head, d_mlp = d_model // heads, config.n_inner or 4 * d_model
    last = name.rsplit(".", 1)[-1]
    if last in ("hook_q", "hook_k", "hook_v", "hook_z"):
        return (batch, pos, heads, d_head)
    if last in ("hook_attn_scores", "hook_pattern"):
        return (batch, heads, pos, pos)
    if last == "hook_result":
        return (batch, pos, heads, d_model)
    if last == "hook_scale":
        return (batch, pos, 1)
    if name.endswith(("mlp.hook_pre", "mlp.hook_post")):
        return (batch, pos, d_mlp)
    return (batch, pos, d_model)


def test_every_name_has_transformer_lens_name_and_shape(cached):
    model, tokens, _, cache = cached
    names = hook_names(model)
    assert names[:3] == ["hook_embed", "hook_pos_embed", "blocks.0.hook_resid_pre"]
    assert names[-2:] == ["ln_final.hook_scale", "ln_final.hook_normalized"]
    for name in names:
        assert name.rsplit(".", 1)[-1].startswith("hook_"), name
        assert cache[name].shape == transformer_lens_shape(name, model.config, *tokens.shape), name
    for layer in range(model.config.n_layer):
        ln2 = {f"blocks.{layer}.ln2.hook_scale", f"blocks.{layer}.ln2.hook_normalized"}
        assert ln2 <= set(names) if _has_mlp(model, layer) else not ln2 & set(names)


def test_caching_does_not_change_the_logits(cached):
    model, tokens, logits, cache = cached
    with torch.no_grad():
        plain = model(tokens).logits
    assert torch.allclose(logits, plain, atol=ATOL)
    assert set(cache) == set(hook_names(model))


def test_position_embeddings_come_per_sequence():
    model = _model(_tiny_config())
    tokens = _tokens(model.config, batch=3, pos=7)
    logits, cache = run_with_cache(model, tokens, names=["hook_pos_embed"])
    pos_embed = cache["hook_pos_embed"]
    assert pos_embed.shape == (3, 7, model.config.n_embd)
    for sequence in pos_embed:
        assert torch.equal(sequence, model.transformer.wpe.weight[:7].detach())

    def zero_first_sequence(pos_embed, _):
        pos_embed = pos_embed.clone()
        pos_embed[0] = 0
        return pos_embed

    changed, _ = run_with_cache(model, tokens, names=[],
                                patches={"hook_pos_embed": zero_first_sequence})
    assert not torch.allclose(changed[0], logits[0], atol=ATOL)
    assert torch.allclose(changed[1:], logits[1:], atol=1e-6)


def test_residual_stream_adds_up(cached):
    model, _, _, cache = cached
    assert torch.allclose(cache["blocks.0.hook_resid_pre"],
                          cache["hook_embed"] + cache["hook_pos_embed"], atol=ATOL)
    for layer in range(model.config.n_layer):
        block = f"blocks.{layer}"
        assert torch.allclose(cache[f"{block}.hook_resid_mid"],
                              cache[f"{block}.hook_resid_pre"] + cache[f"{block}.hook_attn_out"],
                              atol=ATOL)
        # An attention-only block has no MLP: its residual stream leaves as it was after attention.
        mlp_out = cache.get(f"{block}.hook_mlp_out", 0)
        assert torch.allclose(cache[f"{block}.hook_resid_post"],
                              cache[f"{block}.hook_resid_mid"] + mlp_out, atol=ATOL)
        if layer + 1 < model.config.n_layer:
            assert torch.equal(cache[f"blocks.{layer + 1}.hook_resid_pre"],
                               cache[f"{block}.hook_resid_post"])


def test_per_head_results_sum_to_attn_out(cached):
    model, _, _, cache = cached
    for layer in range(model.config.n_layer):
        result = cache[f"blocks.{layer}.attn.hook_result"]
        assert result.shape[-2] == model.config.n_head
        bias = model.transformer.h[layer].attn.c_proj.bias
        assert torch.allclose(result.sum(dim=-2) + bias, cache[f"blocks.{layer}.hook_attn_out"],
                              atol=ATOL)


def test_final_residual_reproduces_the_logits(cached):
    model, _, logits, cache = cached
    last = cache[f"blocks.{model.config.n_layer - 1}.hook_resid_post"]
    with torch.no_grad():
        assert torch.allclose(model.lm_head(model.transformer.ln_f(last)), logits, atol=ATOL)
        assert torch.allclose(model.lm_head(cache["ln_final.hook_normalized"]), logits, atol=ATOL)


def test_layer_norm_scales(cached):
    """hook_scale is sqrt(var + eps) of the LayerNorm's input (biased variance), and
    (x - mean) / scale * weight + bias gives the LayerNorm's output."""
    model, _, _, cache = cached
    transformer = model.transformer
    norms = [("ln_final", cache[f"blocks.{model.config.n_layer - 1}.hook_resid_post"],
              transformer.ln_f)]
    for layer, block in enumerate(transformer.h):
        norms.append((f"blocks.{layer}.ln1", cache[f"blocks.{layer}.hook_resid_pre"], block.ln_1))
        if _has_mlp(model, layer):
            norms.append((f"blocks.{layer}.ln2", cache[f"blocks.{layer}.hook_resid_mid"],
                          block.ln_2))
    for prefix, x, norm in norms:
        scale, normalized = cache[f"{prefix}.hook_scale"], cache[f"{prefix}.hook_normalized"]
        expected = (x.var(dim=-1, unbiased=False, keepdim=True) + norm.eps).sqrt()
        assert torch.allclose(scale, expected, rtol=1e-5), prefix
        rebuilt = (x - x.mean(dim=-1, keepdim=True)) / scale * norm.weight + norm.bias
        assert torch.allclose(rebuilt, normalized, atol=ATOL), prefix
        with torch.no_grad():
            assert torch.allclose(norm(x), normalized, atol=ATOL), prefix


def test_patching_a_scale_rescales_the_layer_norm():
    model = _model(_tiny_config())
    tokens = _tokens(model.config)
    ln_f = model.transformer.ln_f
    logits, cache = run_with_cache(model, tokens, patches={
        "ln_final.hook_scale": lambda scale, _: 2 * scale})
    x = cache["blocks.1.hook_resid_post"]
    doubled = cache["ln_final.hook_scale"]  # the cache holds the patched value
    assert torch.allclose(doubled, 2 * (x.var(dim=-1, unbiased=False, keepdim=True)
                                        + ln_f.eps).sqrt(), rtol=1e-5)
    halved = (x - x.mean(dim=-1, keepdim=True)) / doubled
    assert torch.allclose(cache["ln_final.hook_normalized"], halved * ln_f.weight + ln_f.bias,
                          atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(logits, model.lm_head(cache["ln_final.hook_normalized"]), atol=1e-5)


def test_pattern_is_causal_and_matches_the_model(cached):
    model, tokens, _, cache = cached
    with torch.no_grad():
        attentions = model(tokens, output_attentions=True).attentions
    for layer in range(model.config.n_layer):
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"]
        assert torch.allclose(pattern, attentions[layer], atol=ATOL)
        assert torch.allclose(pattern.sum(dim=-1), torch.ones(()), atol=ATOL)
        assert pattern.triu(diagonal=1).abs().max() == 0
        q, k = cache[f"blocks.{layer}.attn.hook_q"], cache[f"blocks.{layer}.attn.hook_k"]
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / q.shape[-1] ** 0.5
        causal = torch.ones(scores.shape[-2:], dtype=torch.bool).tril()
        cached_scores = cache[f"blocks.{layer}.attn.hook_attn_scores"]
        assert torch.allclose(scores[..., causal], cached_scores[..., causal], atol=ATOL)
        # Masked (future) entries read -inf, as in TransformerLens.
        assert torch.isneginf(cached_scores[..., ~causal]).all()


def test_padded_scores_are_minus_infinity_and_patterns_have_no_nan():
    """Left padding masks whole rows (a padded query sees only padding); the scores show -inf
    there, and the pattern spreads evenly as the model's own attention does, instead of NaN."""
    model = _model(_tiny_config())
    tokens = _tokens(model.config, batch=3, pos=7)
    attention_mask = torch.ones_like(tokens)
    attention_mask[0, :3] = 0
    attention_mask[1, :1] = 0
    logits, cache = run_with_cache(model, tokens, attention_mask=attention_mask)
    with torch.no_grad():
        plain = model(tokens, attention_mask=attention_mask, output_attentions=True)
    # What a padded query computes is meaningless, and transformers versions differ there.
    real = attention_mask.bool()
    assert torch.allclose(logits[real], plain.logits[real], atol=ATOL)
    visible = attention_mask[:, None, None, :].bool() & torch.ones(7, 7, dtype=torch.bool).tril()
    for layer in range(model.config.n_layer):
        scores = cache["attn_scores", layer]
        pattern = cache["pattern", layer]
        assert torch.isneginf(scores[~visible.expand_as(scores)]).all()
        assert torch.isfinite(scores[visible.expand_as(scores)]).all()
        assert not pattern.isnan().any()
        real_rows = real[:, None, :, None].expand_as(pattern)
        assert torch.allclose(pattern[real_rows], plain.attentions[layer][real_rows], atol=ATOL)
        assert torch.allclose(pattern.sum(dim=-1), torch.ones(()), atol=ATOL)


def test_patching_an_activation_with_itself_changes_nothing(cached):
    model, tokens, logits, _ = cached
    last = model.config.n_layer - 1
    for name in hook_names(model):
        layer = re.match(r"blocks\.(\d+)\.", name)
        if model.config.n_layer > 6 and layer and int(layer.group(1)) not in (0, last):
            continue  # every block hooks the same way: on the 12-layer GPT-2, the first and last
        with patched(model, {name: lambda activation, _: activation.clone()}), torch.no_grad():
            assert torch.allclose(model(tokens).logits, logits, atol=ATOL), name


def test_patching_one_head_touches_only_that_head(cached):
    model, tokens, _, cache = cached
    layer, head = model.config.n_layer - 1, 1

    def zero_head(z, _):
        z = z.clone()
        z[:, :, head] = 0
        return z

    _, patched_cache = run_with_cache(model, tokens,
                                      patches={f"blocks.{layer}.attn.hook_z": zero_head})
    name = f"blocks.{layer}.attn.hook_result"
    before, after = cache[name], patched_cache[name]
    assert after[:, :, head].abs().max() == 0
    others = [h for h in range(model.config.n_head) if h != head]
    assert torch.allclose(after[:, :, others], before[:, :, others], atol=ATOL)
    # Earlier layers and the attention pattern of the patched layer are untouched.
    assert torch.equal(patched_cache[f"blocks.{layer}.hook_resid_pre"],
                       cache[f"blocks.{layer}.hook_resid_pre"])
    assert torch.equal(patched_cache[f"blocks.{layer}.attn.hook_pattern"],
                       cache[f"blocks.{layer}.attn.hook_pattern"])


def test_patched_values_flow_downstream(cached):
    model, tokens, logits, _ = cached
    with patched(model, {"blocks.0.hook_resid_post": lambda a, _: torch.zeros_like(a)}), \
            torch.no_grad():
        changed = model(tokens).logits
    assert not torch.allclose(changed, logits, atol=ATOL)


def test_a_patch_applies_to_its_own_model_only():
    """Attention is one shared function; a context on model A must leave model B alone, also
    when B is hooked itself or shares A's config object."""
    model_a, model_b = _model(_tiny_config(), seed=0), _model(_tiny_config(), seed=1)
    tokens = _tokens(model_a.config)
    with torch.no_grad():
        plain_a, plain_b = model_a(tokens).logits, model_b(tokens).logits
    cached_b, cache_b = run_with_cache(model_b, tokens)
    zero = {f"blocks.{layer}.attn.{name}": lambda a, _: torch.zeros_like(a)
            for layer in range(2) for name in ("hook_z", "hook_pattern")}
    with patched(model_a, zero), torch.no_grad():
        assert not torch.allclose(model_a(tokens).logits, plain_a, atol=ATOL)
        assert torch.equal(model_b(tokens).logits, plain_b)
        inside_b, inside_cache_b = run_with_cache(model_b, tokens)
    assert torch.equal(inside_b, cached_b)
    for name, activation in cache_b.items():
        assert torch.equal(inside_cache_b[name], activation), name

    config = _tiny_config()  # two models built from one config object share it
    model_c, model_d = _model(config, seed=2), _model(config, seed=3)
    assert model_c.config is model_d.config
    with torch.no_grad():
        plain_d = model_d(tokens).logits
    with patched(model_c, zero), torch.no_grad():
        assert torch.equal(model_d(tokens).logits, plain_d)


def test_nested_contexts_on_one_model_compose():
    model = _model(_tiny_config())
    tokens = _tokens(model.config)
    z0, z1 = "blocks.0.attn.hook_z", "blocks.1.attn.hook_z"

    def double(a, _):
        return 2 * a

    def add_one(a, _):
        return a + 1

    expected, _ = run_with_cache(model, tokens, names=[], patches={
        z0: lambda a, _: 2 * a + 1, z1: double})
    with patched(model, {z0: double, z1: double}), patched(model, {z0: add_one}), \
            torch.no_grad():  # the outer context applies first
        assert torch.allclose(model(tokens).logits, expected, atol=1e-6)
        with_cache, cache = run_with_cache(model, tokens, names=[z0])
    assert torch.allclose(with_cache, expected, atol=1e-6)
    _, clean = run_with_cache(model, tokens, names=[z0])
    assert torch.allclose(cache[z0], 2 * clean[z0] + 1, atol=1e-6)


def test_short_keys_resolve_as_in_transformer_lens(cached):
    model, _, _, cache = cached
    last = model.config.n_layer - 1
    assert isinstance(cache, ActivationCache) and isinstance(cache, dict)
    same = {
        ("pattern", 0): "blocks.0.attn.hook_pattern",
        ("attn_scores", 0): "blocks.0.attn.hook_attn_scores",
        ("q", 0): "blocks.0.attn.hook_q",
        ("z", last): f"blocks.{last}.attn.hook_z",
        ("result", 0): "blocks.0.attn.hook_result",
        ("resid_pre", 1): "blocks.1.hook_resid_pre",
        ("resid_mid", 0): "blocks.0.hook_resid_mid",
        ("resid_post", -1): f"blocks.{last}.hook_resid_post",
        ("attn_out", 0): "blocks.0.hook_attn_out",
        ("scale", 0, "ln1"): "blocks.0.ln1.hook_scale",
        ("normalized", 0, "ln1"): "blocks.0.ln1.hook_normalized",
        "embed": "hook_embed",
        ("pos_embed",): "hook_pos_embed",
        "scale": "ln_final.hook_scale",
        "normalized": "ln_final.hook_normalized",
        "k0": "blocks.0.attn.hook_k",
        "scale0ln1": "blocks.0.ln1.hook_scale",
    }
    if _has_mlp(model, 0):
        same.update({("pre", 0): "blocks.0.mlp.hook_pre", ("post", 0): "blocks.0.mlp.hook_post",
                     ("mlp_out", 0): "blocks.0.hook_mlp_out",
                     ("scale", 0, "ln2"): "blocks.0.ln2.hook_scale"})
    for key, name in same.items():
        assert cache[key] is cache[name], key
    assert cache.get(("resid_post", -1)) is cache[f"blocks.{last}.hook_resid_post"]
    assert cache.get(("pattern", 99)) is None
    # Still a dict of full names.
    assert "blocks.0.attn.hook_pattern" in cache and list(cache) == list(cache.keys())
    assert dict(cache.items()).keys() == set(hook_names(model))


def test_unknown_cache_keys_name_the_closest():
    cache = ActivationCache({"blocks.0.attn.hook_pattern": torch.zeros(1),
                             "blocks.0.hook_resid_pre": torch.zeros(1)}, n_layers=1)
    with pytest.raises(KeyError, match="'blocks.0.attn.hook_pattern'"):
        cache["blocks.0.attn.pattern"]
    with pytest.raises(KeyError, match=r"\('patern', 0\).*'blocks.0.hook_patern'.*closest "
                                       r"names are 'blocks.0.attn.hook_pattern'"):
        cache["patern", 0]
    with pytest.raises(KeyError, match="is not in this cache"):
        cache["z", 0]


def test_get_act_name_follows_transformer_lens():
    assert get_act_name("k", 6, "a") == "blocks.6.attn.hook_k"
    assert get_act_name("pre", 2) == "blocks.2.mlp.hook_pre"
    assert get_act_name("embed") == "hook_embed"
    assert get_act_name("normalized", 27, "ln2") == "blocks.27.ln2.hook_normalized"
    assert get_act_name("k6") == "blocks.6.attn.hook_k"
    assert get_act_name("scale4ln1") == "blocks.4.ln1.hook_scale"
    assert get_act_name("pre5") == "blocks.5.mlp.hook_pre"
    assert get_act_name("attn", 1) == "blocks.1.attn.hook_pattern"
    assert get_act_name("resid_post", 3) == "blocks.3.hook_resid_post"
    assert get_act_name("scale") == "ln_final.hook_scale"
    assert get_act_name("blocks.0.attn.hook_z") == "blocks.0.attn.hook_z"


def test_hooks_are_removed_on_exit_and_on_errors(cached):
    model, tokens, logits, _ = cached
    implementation = model.config._attn_implementation

    def installed_hooks():  # transformers keeps hooks of its own; ours must all be gone
        return [(name, list(m._forward_hooks), list(m._forward_pre_hooks))
                for name, m in model.named_modules()]

    before = installed_hooks()

    def boom(activation, name):
        raise RuntimeError("patch failed")

    with pytest.raises(RuntimeError, match="patch failed"):
        with patched(model, {"blocks.0.attn.hook_pattern": boom}), torch.no_grad():
            model(tokens)
    assert installed_hooks() == before
    assert model.config._attn_implementation == implementation
    with torch.no_grad():
        assert torch.allclose(model(tokens).logits, logits, atol=ATOL)


def test_unknown_names_and_wrong_shapes_are_clear_errors(cached):
    model, tokens, _, _ = cached
    with pytest.raises(KeyError, match="no activation called 'blocks.0.attn.hook_patern'; the "
                                       "closest names are 'blocks.0.attn.hook_pattern'"):
        run_with_cache(model, tokens, names=["blocks.0.attn.hook_patern"])
    # A name without TransformerLens's "hook_" points to the right one.
    with pytest.raises(KeyError, match="closest names are 'blocks.0.hook_resid_pre'"):
        run_with_cache(model, tokens, patches={"blocks.0.resid_pre": lambda a, _: a})
    with pytest.raises(ValueError, match="returned shape"):
        run_with_cache(model, tokens, patches={"hook_embed": lambda a, _: a[:, :1]})


def test_a_predicate_selects_names(cached):
    model, tokens, _, _ = cached
    _, cache = run_with_cache(model, tokens, names=lambda n: n.endswith("attn.hook_pattern"))
    assert sorted(cache) == sorted(f"blocks.{l}.attn.hook_pattern"
                                   for l in range(model.config.n_layer))
