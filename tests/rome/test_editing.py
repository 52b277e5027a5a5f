"""Rank-one model editing: the closed form does what it promises, an edit can be undone
exactly, and the tools refuse bad input with one sentence, leaving the model as it was."""

import pytest
import torch
from transformers import GPT2Config

from reference_impl.hooks import patched, run_with_cache
from reference_impl.rome.solutions import (added_at, edited, frozen_call, key_second_moment,
                                           optimise_value, rank_one_update, rome_weight,
                                           subject_key, with_ridge)
from reference_impl.zoo import build_model


def _model():
    torch.manual_seed(0)
    # A large initial scale, so that positions influence each other as in a trained model.
    config = GPT2Config(n_layer=3, n_head=2, n_embd=32, n_positions=16, vocab_size=40,
                        initializer_range=0.3, bos_token_id=0, eos_token_id=0)
    return build_model(config).eval()


def _weights(model):
    return {name: p.detach().clone() for name, p in model.state_dict().items()}


def _unchanged(model, before):
    now = model.state_dict()
    return all(torch.equal(now[name], tensor) for name, tensor in before.items())


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


TOKENS = torch.tensor([0, 5, 6, 7, 8, 9])
TEXT = torch.randint(1, 40, (20, 10), generator=torch.Generator().manual_seed(1))


def test_an_edit_writes_the_optimised_value_and_is_undone_exactly():
    model = _model()
    prompts, kl_prompts, layer, target = [(TOKENS, 2)], [(TOKENS[:3], 2)], 1, 30
    moment = with_ridge(key_second_moment(model, TEXT, torch.ones(TEXT.shape), layer))
    before, weights = _target_prob(model, TOKENS, target), _weights(model)
    key = subject_key(model, prompts, layer)
    value, reached = frozen_call(model, optimise_value, model, prompts, kl_prompts, layer, target)
    assert reached > 2 * before  # a random model only lets the subject steer the output so far

    weight, prob = rome_weight(model, prompts, kl_prompts, layer, target, moment)
    assert prob == pytest.approx(reached) and _unchanged(model, weights)
    with edited(model, layer, weight):
        names = [f"blocks.{layer}.hook_mlp_out", f"blocks.{layer}.mlp.hook_post"]
        _, cache = run_with_cache(model, TOKENS[None], names=names)
        assert torch.allclose(cache[names[1]][0, 2], key)
        assert torch.allclose(cache[names[0]][0, 2], value, atol=1e-4)
        # The edited weights do what the optimised value did (the other positions' outputs
        # move a little too).
        assert _target_prob(model, TOKENS, target) == pytest.approx(reached, rel=0.1)
    assert _unchanged(model, weights)
    assert all(p.requires_grad for p in model.parameters())  # as they were, and no more
    assert _target_prob(model, TOKENS, target) == before


def test_the_probability_returned_is_that_of_the_final_value():
    model = _model()
    name = "blocks.1.hook_mlp_out"
    v0 = run_with_cache(model, TOKENS[None], names=[name])[1][name][0, 2]
    for steps in (1, 5):
        value, prob = frozen_call(model, optimise_value, model, [(TOKENS, 2)], [(TOKENS[:3], 2)],
                                  1, 30, steps=steps)
        with patched(model, {name: added_at(value - v0, 2)}):
            assert _target_prob(model, TOKENS, 30) == pytest.approx(prob, rel=1e-4)


def test_frozen_call_puts_requires_grad_back_as_it_was():
    model = _model()
    model.transformer.wte.weight.requires_grad_(False)
    frozen_call(model, lambda: None)
    flags = [p.requires_grad for p in model.parameters()]
    assert flags.count(False) == 1


def test_bad_input_is_refused_and_the_model_is_left_as_it_was():
    model = _model()
    weights = _weights(model)
    moment = key_second_moment(model, TEXT, torch.ones(TEXT.shape), 1)
    with pytest.raises(ValueError, match="layer 3 is not a layer of this model, which has "
                                         "layers 0 to 2"):
        rome_weight(model, [(TOKENS, 2)], [(TOKENS[:3], 2)], 3, 30, moment)
    singular = torch.zeros_like(moment)
    with pytest.raises(ValueError, match="the key second moment C is singular"):
        rome_weight(model, [(TOKENS, 2)], [(TOKENS[:3], 2)], 1, 30, singular)
    weight = model.transformer.h[1].mlp.c_proj.weight.detach().clone()
    weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="has NaN or infinite weights; the model was left "
                                         "unchanged"):
        with edited(model, 1, weight):
            pass
    with pytest.raises(ValueError, match="the ROME edit of layer 1 produced NaN"):
        rome_weight(model, [(TOKENS, 2)], [(TOKENS[:3], 2)], 1, 30, moment, lr=float("inf"))
    with pytest.raises(RuntimeError, match="inside"):
        with edited(model, 1, model.transformer.h[1].mlp.c_proj.weight.detach() + 1):
            raise RuntimeError("inside")
    assert _unchanged(model, weights)
