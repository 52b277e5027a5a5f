"""Causal tracing: the batched implementation gives the numbers of the obvious loop."""

import pytest
import torch
from transformers import GPT2Config

from reference_impl.hooks import patched, run_with_cache
from reference_impl.tracing import SITES, noise_scale, subject_noise, trace
from reference_impl.zoo import build_model


def trace_one_at_a_time(model, tokens, subject, target, kind, window, scale, samples, seed=0):
    """The oracle: one forward pass of the noisy copies per restoration, no batching tricks."""
    start, stop = subject
    noise = subject_noise(samples, stop - start, model.config.n_embd, scale, seed)
    batch = tokens[None].expand(samples, -1)

    def noisy(embed, _):
        return torch.cat([embed[:, :start], embed[:, start:stop] + noise, embed[:, stop:]], dim=1)

    def answer_prob(patches):
        with patched(model, {"hook_embed": noisy, **patches}), torch.no_grad():
            return model(batch).logits[:, -1].softmax(-1)[:, target].mean().item()

    _, clean = run_with_cache(model, tokens[None])
    grid = torch.zeros(model.config.n_layer - window + 1, len(tokens))
    for first in range(grid.shape[0]):
        for pos in range(len(tokens)):
            patches = {}
            for layer in range(first, first + window):
                name = f"blocks.{layer}.{SITES[kind]}"

                def restore(act, _, name=name, pos=pos):
                    act = act.clone()
                    act[:, pos] = clean[name][0, pos]
                    return act
                patches[name] = restore
            grid[first, pos] = answer_prob(patches)
    return answer_prob({}), grid


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = GPT2Config(n_layer=4, n_head=2, n_embd=32, n_positions=16, vocab_size=50,
                        bos_token_id=0, eos_token_id=0)
    return build_model(config).eval()


TOKENS = torch.tensor([0, 7, 8, 9, 3, 4, 5])


@pytest.mark.parametrize("kind,window", [("resid", 1), ("mlp", 1), ("attn", 1), ("mlp", 3)])
def test_batched_tracing_matches_the_loop(model, kind, window):
    result = trace(model, TOKENS, (1, 3), target=11, kind=kind, window=window, scale=0.5,
                   samples=4)
    corrupted, grid = trace_one_at_a_time(model, TOKENS, (1, 3), 11, kind, window, 0.5, 4)
    assert result.restored.shape == (4 - window + 1, len(TOKENS))
    assert result.corrupted == pytest.approx(corrupted, abs=1e-6)
    assert torch.allclose(result.restored, grid, atol=1e-6)


def test_a_subset_of_positions_gives_those_columns(model):
    full = trace(model, TOKENS, (1, 3), target=11, kind="mlp", window=2, scale=0.5, samples=4)
    part = trace(model, TOKENS, (1, 3), target=11, kind="mlp", window=2, scale=0.5, samples=4,
                 positions=[2, 6])
    assert torch.allclose(part.restored, full.restored[:, [2, 6]], atol=1e-6)


def test_restoring_everything_the_noise_touches_recovers_all(model):
    result = trace(model, TOKENS, (1, 3), target=11, kind="resid", scale=0.5, samples=4)
    # Before the subject nothing is noisy; restoring the last layer's residual at the final
    # position gives back the clean output exactly.
    assert result.restored[-1, -1].item() == pytest.approx(result.clean, abs=1e-6)
    assert torch.allclose(result.restored[:, 0], torch.tensor(result.corrupted), atol=1e-6)
    assert result.recovered[-1, -1].item() == pytest.approx(1.0, abs=1e-4)


def test_noise_scale_and_clear_errors(model):
    embeddings = model.get_input_embeddings().weight[[7, 8]]
    assert noise_scale(model, [7, 8]) == pytest.approx(3 * embeddings.std().item())
    with pytest.raises(ValueError, match="kind must be one of resid, mlp, attn"):
        trace(model, TOKENS, (1, 3), 11, kind="mlp_out")
    with pytest.raises(ValueError, match="window must be between 1 and 4"):
        trace(model, TOKENS, (1, 3), 11, window=5)
    attention_only = build_model(GPT2Config(n_layer=2, n_head=2, n_embd=16, vocab_size=50,
                                            bos_token_id=0, eos_token_id=0, attention_only=True))
    with pytest.raises(ValueError, match="attention-only model has no MLPs"):
        trace(attention_only, TOKENS, (1, 3), 11, kind="mlp")
