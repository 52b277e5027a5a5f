"""Causal tracing: the batched ``trace`` gives the numbers of the obvious loop over
``restored_probabilities``, and bad input gets one sentence."""

import pytest
import torch
from transformers import GPT2Config

from reference_impl.rome.solutions import (corrupted_probabilities, noise_scale,
                                           restored_probabilities, subject_noise, trace)
from reference_impl.zoo import build_model


def trace_one_at_a_time(model, tokens, subject, target, noise, kind, window):
    """The oracle: one forward pass of the noisy copies per restoration, no batching tricks."""
    grid = torch.zeros(model.config.n_layer - window + 1, len(tokens))
    for first in range(grid.shape[0]):
        for position in range(len(tokens)):
            grid[first, position] = restored_probabilities(
                model, tokens, subject, target, noise, kind, range(first, first + window),
                position).mean()
    return corrupted_probabilities(model, tokens, subject, target, noise).mean().item(), grid


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = GPT2Config(n_layer=4, n_head=2, n_embd=32, n_positions=16, vocab_size=50,
                        bos_token_id=0, eos_token_id=0)
    return build_model(config).eval()


TOKENS = torch.tensor([0, 7, 8, 9, 3, 4, 5])
NOISE = subject_noise(4, 2, 32, 0.5)


@pytest.mark.parametrize("kind,window", [("resid", 1), ("mlp", 1), ("attn", 1), ("mlp", 3)])
def test_batched_tracing_matches_the_loop(model, kind, window):
    result = trace(model, TOKENS, (1, 3), 11, NOISE, kind=kind, window=window)
    corrupted, grid = trace_one_at_a_time(model, TOKENS, (1, 3), 11, NOISE, kind, window)
    assert result.restored.shape == (4 - window + 1, len(TOKENS))
    assert result.corrupted == pytest.approx(corrupted, abs=1e-6)
    assert torch.allclose(result.restored, grid, atol=1e-6)


def test_a_subset_of_positions_gives_those_columns(model):
    full = trace(model, TOKENS, (1, 3), 11, NOISE, kind="mlp", window=2)
    part = trace(model, TOKENS, (1, 3), 11, NOISE, kind="mlp", window=2, positions=[2, 6])
    assert part.positions == [2, 6]
    assert torch.allclose(part.restored, full.restored[:, [2, 6]], atol=1e-6)


def test_restoring_everything_the_noise_touches_recovers_all(model):
    result = trace(model, TOKENS, (1, 3), 11, NOISE, kind="resid")
    # Before the subject nothing is noisy; restoring the last layer's residual at the final
    # position gives back the clean output exactly.
    assert result.restored[-1, -1].item() == pytest.approx(result.clean, abs=1e-6)
    assert torch.allclose(result.restored[:, 0], torch.tensor(result.corrupted), atol=1e-6)
    assert result.recovered[-1, -1].item() == pytest.approx(1.0, abs=1e-4)


def test_noise_scale_and_clear_errors(model):
    embeddings = model.get_input_embeddings().weight[[7, 8]]
    assert noise_scale(model, [7, 8]) == pytest.approx(3 * embeddings.std().item())
    with pytest.raises(ValueError, match="kind must be one of resid, mlp, attn"):
        trace(model, TOKENS, (1, 3), 11, NOISE, kind="mlp_out")
    with pytest.raises(ValueError, match="window must be between 1 and 4"):
        trace(model, TOKENS, (1, 3), 11, NOISE, window=5)
    with pytest.raises(ValueError, match=r"the subject span \(5, 9\) is not inside the prompt"):
        trace(model, TOKENS, (5, 9), 11, NOISE)
    attention_only = build_model(GPT2Config(n_layer=2, n_head=2, n_embd=16, vocab_size=50,
                                            bos_token_id=0, eos_token_id=0, attention_only=True))
    with pytest.raises(ValueError, match="attention-only model has no MLPs"):
        trace(attention_only, TOKENS, (1, 3), 11, subject_noise(4, 2, 16, 0.5), kind="mlp")
