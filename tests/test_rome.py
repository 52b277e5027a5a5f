"""Rank-one model editing: the closed form does what it promises, and an edit can be undone."""

import torch
from transformers import GPT2Config

from reference_impl.hooks import run_with_cache
from reference_impl.rome import (key_second_moment, optimise_value, rank_one_update, restore,
                                 rome_edit, subject_key)
from reference_impl.zoo import build_model


def _model():
    torch.manual_seed(0)
    # A large initial scale, so that positions influence each other as in a trained model.
    config = GPT2Config(n_layer=3, n_head=2, n_embd=32, n_positions=16, vocab_size=40,
                        initializer_range=0.3,
                        bos_token_id=0, eos_token_id=0)
    return build_model(config).eval()


def test_the_update_maps_the_key_to_the_value_and_spares_c_orthogonal_keys():
    g = torch.Generator().manual_seed(0)
    weight, bias = torch.randn(12, 5, generator=g), torch.randn(5, generator=g)
    samples = torch.randn(200, 12, generator=g)
    moment = samples.T @ samples / 200
    key, value = torch.randn(12, generator=g), torch.randn(5, generator=g)
    new = rank_one_update(weight, bias, key, value, moment)
    assert torch.allclose(key @ new + bias, value, atol=1e-4)
    # A key k with k . C^-1 k* = 0 reads the same output as before.
    direction = torch.linalg.solve(moment, key)
    other = torch.randn(12, generator=g)
    other = other - (other @ direction) / (direction @ direction) * direction
    assert torch.allclose(other @ new, other @ weight, atol=1e-4)
    assert torch.linalg.matrix_rank(new - weight) == 1


def _target_prob(model, tokens, target):
    with torch.no_grad():
        return model(tokens[None]).logits[0, -1].softmax(-1)[target].item()


def test_an_edit_writes_the_optimised_value_and_can_be_undone():
    model = _model()
    tokens = torch.tensor([0, 5, 6, 7, 8, 9])
    prompts, layer, target = [(tokens, 2)], 1, 30
    text = torch.randint(1, 40, (20, 10), generator=torch.Generator().manual_seed(1))
    moment = key_second_moment(model, text, layer)
    before = _target_prob(model, tokens, target)
    key = subject_key(model, prompts, layer)
    value, reached = optimise_value(model, prompts, layer, target, steps=30)
    assert reached > 2 * before  # a random model only lets the subject steer the output so far

    old, _ = rome_edit(model, prompts, layer, target, moment, steps=30)
    _, cache = run_with_cache(model, tokens[None], names=[f"blocks.{layer}.hook_mlp_out",
                                                          f"blocks.{layer}.mlp.hook_post"])
    assert torch.allclose(cache[f"blocks.{layer}.mlp.hook_post"][0, 2], key)
    assert torch.allclose(cache[f"blocks.{layer}.hook_mlp_out"][0, 2], value, atol=1e-4)
    # The edited weights do what the optimised value did (up to the optimiser's last step).
    assert abs(_target_prob(model, tokens, target) - reached) < 0.1 * reached
    restore(model, layer, old)
    assert torch.equal(model.transformer.h[layer].mlp.c_proj.weight, old)
    assert _target_prob(model, tokens, target) == before
