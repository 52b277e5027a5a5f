"""Zoo checkpoints round-trip offline, with their checksums and architectural variations."""

import pytest
import torch
from transformers import GPT2Config

from reference_impl import zoo
from reference_impl.hooks import hook_names
from reference_impl.world.tokenizer import build_tokenizer
from reference_impl.zoo.induction import copy_losses, head_scores, mean_ablation


@pytest.fixture
def scratch_zoo(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "MODELS_DIR", tmp_path / "models")
    monkeypatch.setattr(zoo, "MANIFEST", tmp_path / "manifest.json")
    tokenizer = build_tokenizer()
    config = GPT2Config(n_layer=2, n_head=4, n_embd=32, n_positions=64,
                        vocab_size=len(tokenizer), bos_token_id=0, eos_token_id=0,
                        attention_only=True)
    torch.manual_seed(0)
    model = zoo.build_model(config)
    zoo.save_checkpoint(model, tokenizer, {"loss": [1.0, 0.5]}, "tiny")
    return model, tokenizer


def test_a_checkpoint_loads_back_identically(scratch_zoo):
    model, tokenizer = scratch_zoo
    loaded, loaded_tokenizer = zoo.load_model("tiny")
    tokens = torch.tensor([tokenizer("Alice went to the store").input_ids])
    with torch.no_grad():
        assert torch.equal(loaded(tokens).logits, model.eval()(tokens).logits)
    assert loaded_tokenizer.bos_token == tokenizer.bos_token
    assert zoo.zoo_names() == ["tiny"]


def test_attention_only_is_recorded_and_applied(scratch_zoo):
    loaded, _ = zoo.load_model("tiny")
    assert loaded.config.attention_only
    assert all(isinstance(block.mlp, zoo.NoMLP) for block in loaded.transformer.h)
    assert not any("mlp" in name for name in hook_names(loaded))
    assert not any("mlp" in name for name, _ in loaded.named_parameters())


def test_a_changed_file_is_refused(scratch_zoo):
    path = zoo.MODELS_DIR / "tiny" / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(zoo.ZooError, match="model.safetensors .*do not match the manifest"):
        zoo.load_model("tiny")


def test_an_unknown_name_offline_lists_the_zoo(scratch_zoo, monkeypatch):
    # The libraries read HF_HUB_OFFLINE when they are imported, so the flag itself is set too
    # (without it the test waits for the network to time out).
    import huggingface_hub.constants
    import transformers.utils.hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(transformers.utils.hub, "_is_offline_mode", True, raising=False)
    with pytest.raises(zoo.ZooError, match=r"not in the zoo \(tiny\)"):
        zoo.load_model("no-such-model-anywhere")


def test_an_sae_round_trips_and_is_not_taken_for_a_model(scratch_zoo):
    from reference_impl.sae.solutions import SAE

    sae = SAE(32, 64, k=4, hook_name="blocks.1.hook_resid_post", seed=3)
    zoo.save_checkpoint(sae, None, {"loss": [1.0]}, "tiny-sae")
    assert sorted(zoo.read_manifest()["tiny-sae"]) == sorted(zoo.SAE_FILES)
    loaded = zoo.load_sae("tiny-sae")
    assert loaded.cfg == sae.cfg
    for name, param in sae.named_parameters():
        assert torch.equal(getattr(loaded, name), param)
    with pytest.raises(zoo.ZooError, match="is a sparse autoencoder, not a model: load it with "
                                           "load_sae"):
        zoo.load_model("tiny-sae")
    (zoo.MODELS_DIR / "tiny-sae" / "cfg.json").write_text("{}")
    with pytest.raises(zoo.ZooError, match="cfg.json .*do not match the manifest"):
        zoo.load_sae("tiny-sae")


def _pattern_patch(offset):
    """A patch that makes every head attend exactly ``offset`` tokens back (or to BOS)."""
    def patch(pattern, _):
        q = torch.arange(pattern.shape[-2])[:, None]
        k = torch.arange(pattern.shape[-1])[None, :]
        exact = (k == (q - offset).clamp(min=0)).to(pattern.dtype)
        return exact.expand_as(pattern).clone()
    return patch


def test_head_scores_recognise_exact_heads(scratch_zoo):
    from reference_impl.hooks import patched

    model, _ = scratch_zoo
    length = 10
    tokens = torch.randint(2, 50, (3, length), generator=torch.Generator().manual_seed(0))
    tokens = torch.cat([torch.zeros(3, 1, dtype=torch.long), tokens, tokens], dim=1)
    with patched(model, {"blocks.0.attn.hook_pattern": _pattern_patch(1),
                         "blocks.1.attn.hook_pattern": _pattern_patch(length - 1)}):
        previous, induction = head_scores(model, tokens)
    assert torch.allclose(previous[0], torch.ones(4)) and torch.allclose(induction[1], torch.ones(4))
    assert previous[1].max() < 0.2 and induction[0].max() < 0.2


def test_mean_ablation_and_copy_losses(scratch_zoo):
    model, _ = scratch_zoo
    tokens = torch.randint(2, 50, (4, 21), generator=torch.Generator().manual_seed(0))
    first, second = copy_losses(model, tokens)
    assert first > 0 and second > 0
    patches = mean_ablation(model, tokens, [(1, 0), (1, 2)])
    from reference_impl.hooks import run_with_cache

    _, cache = run_with_cache(model, tokens, names=["blocks.1.attn.hook_z"], patches=patches)
    z = cache["blocks.1.attn.hook_z"]
    assert torch.allclose(z[:, :, 0], z[:1, :1, 0].expand_as(z[:, :, 0]))
    assert not torch.allclose(z[:, :, 1], z[:1, :1, 1].expand_as(z[:, :, 1]))
