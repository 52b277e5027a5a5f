"""The shipped zoo models meet every bar the chapters rely on, measured on the committed files."""

import functools
import json

import pytest

from reference_impl import zoo
from reference_impl.cli import main
from reference_impl.zoo import load_model, read_manifest
from reference_impl.zoo.bars import unmet
from reference_impl.zoo import attn_only, world_model
from reference_impl.zoo.induction import head_scores
from reference_impl.zoo.recipes import (MAX_CHECKPOINT_MB, RECIPES, ZOO_PAGE,
                                        checkpoint_mb, page_section, page_sections, recipe,
                                        train_and_save,
                                        verify)


@functools.cache
def measured(name):
    """The metrics of a committed checkpoint, measured afresh (once per test session)."""
    model, tokenizer = load_model(name)
    return recipe(name).measure(model, tokenizer)


@pytest.fixture(params=list(RECIPES))
def shipped(request):
    return request.param, measured(request.param)


def test_every_bar_is_met_on_the_committed_checkpoint(shipped):
    name, metrics = shipped
    assert unmet(recipe(name).BARS, metrics) == []


def test_the_training_log_recorded_the_same_behaviour(shipped):
    # The log stores what the model measured when it was trained; loading must not change it.
    name, metrics = shipped
    logged = json.loads((zoo.MODELS_DIR / name / "training_log.json").read_text())["metrics"]
    assert logged == pytest.approx(metrics, rel=1e-4, nan_ok=True)


@pytest.mark.parametrize("name", RECIPES)
def test_checkpoints_are_small_and_match_the_manifest(name):
    assert name in read_manifest()
    assert zoo.verify_checksums(name) == []
    assert checkpoint_mb(name) <= MAX_CHECKPOINT_MB


def test_the_induction_log_shows_the_phase_change():
    log = json.loads((zoo.MODELS_DIR / "attn-only-2l" / "training_log.json").read_text())
    best_induction = [max(scores[1]) for scores in log["induction_scores"]]
    assert best_induction[0] < 0.2 and best_induction[-1] > 0.6
    assert len(log["steps"]) == len(log["loss"]) == len(best_induction) > 20
    # The scores rise over a short stretch of training: from 0.2 to 0.5 within 500 steps.
    rise = [s for s, score in zip(log["steps"], best_induction) if 0.2 <= score < 0.5]
    assert rise and rise[-1] - rise[0] <= 500


def test_the_zoo_page_shows_the_logged_bars_and_findings(shipped):
    name, _ = shipped
    logged = json.loads((zoo.MODELS_DIR / name / "training_log.json").read_text())["metrics"]
    for kind, text in page_sections(name, logged).items():
        assert page_section(ZOO_PAGE.read_text(), name, kind) == text, kind


def test_the_induction_model_has_the_heads_the_zoo_page_describes():
    model, tokenizer = load_model("attn-only-2l")
    previous, induction = head_scores(model, attn_only.eval_tokens(tokenizer))
    prev_heads, ind_heads, neither = attn_only.circuit_heads(previous, induction)
    assert len(prev_heads) == 1 and len(ind_heads) == 4 and neither
    assert model.num_parameters() == pytest.approx(75_000, rel=0.01)


def test_the_zoo_page_states_the_measured_probe_accuracies():
    metrics = measured("world-5l")
    stated = ZOO_PAGE.read_text().split("<!-- probes: world-5l -->\n")[1].split("\n")[0]
    stated_by_model = ", ".join(f"{relation} {metrics[f'probe_{relation}_accuracy']:.2f}"
                         for relation in world_model.PERSON_RELATIONS)
    assert stated == stated_by_model
    assert all(metrics[f"probe_{relation}_layer"] == 3 for relation in world_model.PERSON_RELATIONS)


def test_zoo_verify_prints_the_bars_and_exits_zero(capsys):
    assert main(["zoo", "verify", "attn-only-2l"]) == 0
    out = capsys.readouterr().out
    assert "attn-only-2l: OK" in out and "checksums: match the manifest" in out
    assert "| copy loss ratio" not in out and "`copy_loss_ratio`" in out and "NOT MET" not in out


def test_zoo_verify_fails_on_a_changed_file(tmp_path, monkeypatch, capsys):
    copy = tmp_path / "models" / "attn-only-2l"
    copy.mkdir(parents=True)
    for f in read_manifest()["attn-only-2l"]:
        (copy / f).write_bytes((zoo.MODELS_DIR / "attn-only-2l" / f).read_bytes())
    (copy / "config.json").write_text((copy / "config.json").read_text() + " ")
    monkeypatch.setattr(zoo, "MODELS_DIR", tmp_path / "models")
    assert main(["zoo", "verify", "attn-only-2l"]) == 1
    assert "changed: config.json" in capsys.readouterr().out


def test_zoo_list_and_unknown_names(capsys):
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in RECIPES) and "MB" in out
    assert main(["zoo", "train", "gpt-5"]) == 2
    assert "the zoo has: attn-only-2l" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("name", RECIPES)
def test_a_retrain_from_scratch_meets_the_bars(name, tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "MODELS_DIR", tmp_path / "models")
    monkeypatch.setattr(zoo, "MANIFEST", tmp_path / "manifest.json")
    monkeypatch.setattr("reference_impl.zoo.recipes.ZOO_PAGE", tmp_path / "zoo.md")
    train_and_save(name, seed=0, progress=False)
    result = verify(name)
    assert result.ok, (result.failed_bars, result.metrics)
