"""The hook names are consistent with each other and with the model's own forward pass."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from reference_impl.hooks import hook_names, patched, run_with_cache
from reference_impl.zoo import load_model
from reference_impl.zoo.recipes import RECIPES

ATOL = 1e-4


def _model(config):
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config).eval()
    model.set_attn_implementation("eager")
    return model


@pytest.fixture(scope="module", params=["tiny", "gpt2-size", *RECIPES])
def model_and_tokens(request):
    if request.param == "tiny":
        model = _model(GPT2Config(n_layer=2, n_head=4, n_embd=64, n_positions=32, vocab_size=100))
    elif request.param == "gpt2-size":
        model = _model(GPT2Config())  # the full 124M-parameter GPT-2, randomly initialised
    else:
        model, _ = load_model(request.param)  # a shipped zoo model
    config = model.config
    tokens = torch.randint(0, config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(1))
    return model, tokens


@pytest.fixture(scope="module")
def cached(model_and_tokens):
    model, tokens = model_and_tokens
    logits, cache = run_with_cache(model, tokens)
    return model, tokens, logits, cache


def test_caching_does_not_change_the_logits(cached):
    model, tokens, logits, cache = cached
    with torch.no_grad():
        plain = model(tokens).logits
    assert torch.allclose(logits, plain, atol=ATOL)
    assert set(cache) == set(hook_names(model))


def test_residual_stream_adds_up(cached):
    model, _, _, cache = cached
    assert torch.allclose(cache["blocks.0.resid_pre"], cache["embed"] + cache["pos_embed"],
                          atol=ATOL)
    for layer in range(model.config.n_layer):
        block = f"blocks.{layer}"
        assert torch.allclose(cache[f"{block}.resid_mid"],
                              cache[f"{block}.resid_pre"] + cache[f"{block}.attn_out"], atol=ATOL)
        # An attention-only block has no MLP: its residual stream leaves as it was after attention.
        mlp_out = cache.get(f"{block}.mlp_out", 0)
        assert torch.allclose(cache[f"{block}.resid_post"],
                              cache[f"{block}.resid_mid"] + mlp_out, atol=ATOL)
        if layer + 1 < model.config.n_layer:
            assert torch.equal(cache[f"blocks.{layer + 1}.resid_pre"], cache[f"{block}.resid_post"])


def test_per_head_results_sum_to_attn_out(cached):
    model, _, _, cache = cached
    for layer in range(model.config.n_layer):
        result = cache[f"blocks.{layer}.attn.result"]
        assert result.shape[-2] == model.config.n_head
        bias = model.transformer.h[layer].attn.c_proj.bias
        assert torch.allclose(result.sum(dim=-2) + bias, cache[f"blocks.{layer}.attn_out"],
                              atol=ATOL)


def test_final_residual_reproduces_the_logits(cached):
    model, _, logits, cache = cached
    last = cache[f"blocks.{model.config.n_layer - 1}.resid_post"]
    with torch.no_grad():
        assert torch.allclose(model.lm_head(model.transformer.ln_f(last)), logits, atol=ATOL)
        assert torch.allclose(model.lm_head(cache["ln_final"]), logits, atol=ATOL)


def test_pattern_is_causal_and_matches_the_model(cached):
    model, tokens, _, cache = cached
    with torch.no_grad():
        attentions = model(tokens, output_attentions=True).attentions
    for layer in range(model.config.n_layer):
        pattern = cache[f"blocks.{layer}.attn.pattern"]
        assert torch.allclose(pattern, attentions[layer], atol=ATOL)
        assert torch.allclose(pattern.sum(dim=-1), torch.ones(()), atol=ATOL)
        assert pattern.triu(diagonal=1).abs().max() == 0
        q, k = cache[f"blocks.{layer}.attn.q"], cache[f"blocks.{layer}.attn.k"]
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / q.shape[-1] ** 0.5
        causal = torch.ones(scores.shape[-2:], dtype=torch.bool).tril()
        assert torch.allclose(scores[..., causal], cache[f"blocks.{layer}.attn.scores"][..., causal],
                              atol=ATOL)


def test_patching_an_activation_with_itself_changes_nothing(cached):
    model, tokens, logits, _ = cached
    for name in hook_names(model):
        with patched(model, {name: lambda activation, _: activation.clone()}), torch.no_grad():
            assert torch.allclose(model(tokens).logits, logits, atol=ATOL), name


def test_patching_one_head_touches_only_that_head(cached):
    model, tokens, _, cache = cached
    layer, head = model.config.n_layer - 1, 1

    def zero_head(z, _):
        z = z.clone()
        z[:, :, head] = 0
        return z

    _, patched_cache = run_with_cache(model, tokens, patches={f"blocks.{layer}.attn.z": zero_head})
    before, after = cache[f"blocks.{layer}.attn.result"], patched_cache[f"blocks.{layer}.attn.result"]
    assert after[:, :, head].abs().max() == 0
    others = [h for h in range(model.config.n_head) if h != head]
    assert torch.allclose(after[:, :, others], before[:, :, others], atol=ATOL)
    # Earlier layers and the attention pattern of the patched layer are untouched.
    assert torch.equal(patched_cache[f"blocks.{layer}.resid_pre"], cache[f"blocks.{layer}.resid_pre"])
    assert torch.equal(patched_cache[f"blocks.{layer}.attn.pattern"],
                       cache[f"blocks.{layer}.attn.pattern"])


def test_patched_values_flow_downstream(cached):
    model, tokens, logits, _ = cached
    with patched(model, {"blocks.0.resid_post": lambda a, _: torch.zeros_like(a)}), torch.no_grad():
        changed = model(tokens).logits
    assert not torch.allclose(changed, logits, atol=ATOL)


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
        with patched(model, {"blocks.0.attn.pattern": boom}), torch.no_grad():
            model(tokens)
    assert installed_hooks() == before
    assert model.config._attn_implementation == implementation
    with torch.no_grad():
        assert torch.allclose(model(tokens).logits, logits, atol=ATOL)


def test_unknown_names_and_wrong_shapes_are_clear_errors(cached):
    model, tokens, _, _ = cached
    with pytest.raises(KeyError, match="no activation called 'blocks.0.attn.patern'"):
        run_with_cache(model, tokens, names=["blocks.0.attn.patern"])
    with pytest.raises(ValueError, match="returned shape"):
        run_with_cache(model, tokens, patches={"embed": lambda a, _: a[:, :1]})


def test_a_predicate_selects_names(cached):
    model, tokens, _, _ = cached
    _, cache = run_with_cache(model, tokens, names=lambda n: n.endswith("attn.pattern"))
    assert sorted(cache) == sorted(f"blocks.{l}.attn.pattern" for l in range(model.config.n_layer))
