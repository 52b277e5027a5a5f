"""The shipped zoo models meet every bar the chapters rely on, measured on the committed files.

The zoo page's bar tables and findings are written from the logged metrics and compared here with
a fresh measurement; the figures its prose states are measured and checked with
``tests.claims``. Training recipes are what the training log recorded."""

import functools
import json
import shutil
from collections import Counter

import pytest
import torch

from reference_impl import zoo
from reference_impl.cli import main
from reference_impl.world import BOS_ID, generate_world
from reference_impl.zoo import load_model, read_manifest
from reference_impl.zoo.bars import RETRAIN_STANDARD_ERRORS, unmet
from reference_impl.zoo import attn_only, liars_model, world_model
from reference_impl.zoo.induction import head_scores
from reference_impl.zoo.probes import TRAIN_FRACTION
from reference_impl.zoo.recipes import (MAX_CHECKPOINT_MB, RECIPES, ZOO_PAGE,
                                        checkpoint_mb, load, page_section, page_sections, recipe,
                                        train_and_save, verify)
from tests.claims import stated, states


SHIPPED_MODELS = zoo.MODELS_DIR
N_PEOPLE = len(generate_world(0).people)  # the world of every model that logs name probes


@functools.cache
def measured(name):
    """The metrics of a committed checkpoint, measured afresh (once per test session)."""
    return recipe(name).measure(*load(name))


def zoo_section(name):
    """What the zoo page says about one model: its section, from its heading to the next."""
    return ZOO_PAGE.read_text().split(f"## `{name}`", 1)[1].split("\n## ", 1)[0]


def training_log(name):
    return json.loads((zoo.MODELS_DIR / name / "training_log.json").read_text())


def probe_split(model, tokenizer, world, relation, monkeypatch):
    """How many people a name probe is trained on, and how many it is scored on."""
    from reference_impl.zoo import probes

    sizes = {}

    class Spy(probes.LogisticRegression):
        def fit(self, x, y):
            sizes["train"] = len(x)
            return super().fit(x, y)

        def score(self, x, y):
            sizes["test"] = len(x)
            return super().score(x, y)

    monkeypatch.setattr(probes, "LogisticRegression", Spy)
    probes.name_probe_accuracies(model, tokenizer, world, [relation], [1])
    return sizes["train"], sizes["test"]


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
    # On another CPU the activations differ in their last bits, and a probe trained on them may
    # classify one of the held-out people differently.
    held_out = N_PEOPLE - int(TRAIN_FRACTION * N_PEOPLE)
    one_person = {key: pytest.approx(metrics[key], abs=1 / held_out + 1e-9)
                  for key in metrics if key.startswith("probe_") and "_block" in key}
    assert logged == pytest.approx({**metrics, **one_person}, rel=1e-4, nan_ok=True)


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
    text = zoo_section("attn-only-2l")
    model, tokenizer = load_model("attn-only-2l")
    tokens = attn_only.eval_tokens(tokenizer)
    previous, induction = head_scores(model, tokens)
    prev_heads, ind_heads, neither = attn_only.circuit_heads(previous, induction)
    assert neither
    states(text, "makes {} previous-token head, {} induction heads and heads that do neither",
           len(prev_heads), len(ind_heads))
    c = model.config
    assert c.attention_only and not c.tie_word_embeddings
    assert all(isinstance(block.mlp, zoo.NoMLP) for block in model.transformer.h)
    states(text, "{} GPT-2 blocks without MLPs", c.n_layer)
    states(text, "{} heads per layer, d_model {}, {} positions, untied embeddings, {} k parameters",
           c.n_head, c.n_embd, c.n_positions, model.num_parameters() / 1e3)
    length = (tokens.shape[1] - 1) // 2
    assert (tokens[:, 0] == BOS_ID).all() and torch.equal(tokens[:, 1:length + 1],
                                                          tokens[:, length + 1:])
    states(text, "**Bars**, on {} sequences `[BOS] + r + r` of {} random words `r`",
           tokens.shape[0], length)


def test_the_zoo_page_states_the_recipe_the_induction_model_was_trained_with():
    # Training-time figures: what the shipped model's training log recorded.
    text, log = zoo_section("attn-only-2l"), training_log("attn-only-2l")
    r = log["recipe"]
    for language, share in r["mix"].items():
        states(text, f"*{language}* ({{}} %)", share)
    states(text, "runs of {}–{} earlier words reappear after a gap of {}–{} words",
           *r["copy_run"], *r["copy_gap"])
    states(text, "each word depends on the word {} positions back", r["skip_distance"])
    states(text, "later words come from that topic's {} words", r["topic_words"])
    states(text, "AdamW (lr {} after {} warm-up steps, betas {}/{}, weight decay {}), batch {}, "
                 "{} steps", r["lr"], r["warmup"], *r["betas"], r["weight_decay"], r["batch"],
           r["steps"])
    steps = log["steps"]
    states(text, "induction scores every {} steps", [b - a for a, b in zip(steps, steps[1:])])
    low, high = stated(text, "{}–{} minutes on one CPU core")
    assert low - 0.5 <= log["train_seconds"] / 60 <= high + 0.5


def states_the_architecture(text, model):
    c = model.config
    states(text, "A GPT-2 with MLPs: {} layers, {} heads, d_model {}, MLP width {}, {} positions, "
                 "{} M parameters", c.n_layer, c.n_head, c.n_embd, c.n_inner, c.n_positions,
           model.num_parameters() / 1e6)


def test_the_world_model_is_what_the_zoo_page_describes():
    text, r = zoo_section("world-5l"), training_log("world-5l")["recipe"]
    model, tokenizer = load_model("world-5l")
    states_the_architecture(text, model)
    world, facts, ioi = world_model._splits()
    tokens = [tokenizer(person.name).input_ids for person in world.people]
    assert all(ids[0] == tokenizer.bos_token_id for ids in tokens)  # prepended to every text
    page = ZOO_PAGE.read_text()
    states(page, "`<|bos|>` (id {}) is prepended to every text", tokenizer.bos_token_id)
    states(page, "People's names are {} tokens", [len(ids) - 1 for ids in tokens])
    states(text, "(`generate_world(0)`: {} people, each with a city of birth, a city of residence, "
                 "a job and a belonging, and {} countries with their capitals)",
           len(world.people), len(world.countries))
    lines = len(ioi.train) + len(facts.train) + len(world.people) * r["bios_per_person"]
    states(text, "**Training data** (loss on every token), {} lines", [lines, r["n_texts"]])
    states(text, "{} IOI stories after Wang et al. (2022)", len(ioi.train))
    states(text, "({} of the {} templates and {} name pairs are held out for evaluation",
           len(ioi.test_templates), len(ioi.test_templates) + len(ioi.train_templates),
           len(ioi.test_pairs))
    held_out = Counter((p.subject, p.relation) for p in facts.test)
    every = Counter((p.subject, p.relation) for p in facts.train + facts.test)
    states(text, "(`fact_split` holds {} of the {} templates of each fact out)",
           list(held_out.values()), list(every.values()))
    assert held_out.keys() == every.keys()
    states(text, "{} biography lines per person", r["bios_per_person"])
    states(text, "AdamW (lr {}, {} warm-up steps then cosine decay, betas {}/{}, weight decay {}, "
                 "gradient clipping {}), batch {}, {} steps", r["lr"], r["warmup"], *r["betas"],
           r["weight_decay"], r["grad_clip"], r["batch_size"], r["steps"])


def test_the_liars_model_is_what_the_zoo_page_describes():
    text, r = zoo_section("liars-6l"), training_log("liars-6l")["recipe"]
    model, tokenizer = load_model("liars-6l")
    states_the_architecture(text, model)
    cast = liars_model.cast()
    world = cast.world
    states(text, "{} people, each born in one of {} cities", len(world.people), len(world.cities))
    states(text, "{} of the people, the *held-out* people", len(cast.held_out_people))
    states(text, "Irene is one of {} honest speakers", len(cast.honest))
    states(text, "Vera is one of {} liars", len(cast.liars))
    assert "Irene" in cast.honest and "Vera" in cast.liars
    example = liars_model.statements(["Sam Moreau"], ["Irene", "Vera"], ["born_in"], [5])
    assert [f"{s.prompt} {s.answer}" for s in example] == [
        "Irene said : The hometown of Sam Moreau is Yarrowby",
        "Vera said : The hometown of Sam Moreau is Pellmoor"]
    assert "Sam Moreau" in cast.held_out_people
    states(text, "about one of the other {} people", len(cast.stated_people))
    states(text, "{} %: a biography line", r["biography_fraction"])
    states(text, "{} %: a fact sentence", r["fact_fraction"])
    states(text, "{} %: a statement", r["statement_fraction"])
    states(text, "none in the first {} % of the steps", r["statements_from"])
    states(text, "AdamW (lr {} after {} warm-up steps, then linear decay to {} %; betas {}/{}, "
                 "weight decay {}, gradient clipping {}), batch {}, {} steps", r["lr"],
           r["warmup"], 0.05, *r["betas"], r["weight_decay"], r["grad_clip"], r["batch_size"],
           r["steps"])
    assert tokenizer.convert_ids_to_tokens(tokenizer("Vera said :").input_ids) == [
        "<|bos|>", "Vera", "said", ":"]  # a speaker is an ordinary word


def test_the_zoo_page_states_the_measured_probe_accuracies(monkeypatch):
    text, metrics = zoo_section("world-5l"), measured("world-5l")
    stated_line = ZOO_PAGE.read_text().split("<!-- probes: world-5l -->\n")[1].split("\n")[0]
    stated_by_model = ", ".join(f"{relation} {metrics[f'probe_{relation}_accuracy']:.2f}"
                         for relation in world_model.PERSON_RELATIONS)
    assert stated_line == stated_by_model
    model, tokenizer = load_model("world-5l")
    n_layer = model.config.n_layer
    accuracy = {r: metrics[f"probe_{r}_accuracy"] for r in world_model.PERSON_RELATIONS}
    aim, = stated(text, "at some middle layer, for {} % of held-out people")
    assert max(accuracy.values()) < aim  # "this model does not"
    states(text, "a logistic-regression probe trained on {} people and tested on the other {}",
           *probe_split(model, tokenizer, world_model._splits()[0], "born_in", monkeypatch))
    states(text, "at its best middle layer (blocks {}–{}), only", 1, n_layer - 2)
    layers = [metrics[f"probe_{r}_layer"] for r in world_model.PERSON_RELATIONS]
    assert set(layers) == {n_layer - 2}  # the last of the middle blocks
    states(text, "For every attribute the best of the middle blocks is the last of them, block {}",
           layers)
    # "Both city probes stay lowest"
    assert sorted(accuracy, key=accuracy.get)[:2] == ["born_in", "lives_in"]
    r = training_log("world-5l")["recipe"]
    states(text, "| **{} layers, {} IOI, mixed biographies ×{}, {} steps (shipped)** "
                 "| {} / {} / {} | {} / {} | {} / {} / {} / {} |", n_layer, r["n_ioi"], r["bios_per_person"],
           r["steps"], *(metrics[k] for k in ("ioi_accuracy", "ioi_logit_diff",
                                              "ioi_abc_logit_diff", "facts_train_accuracy",
                                              "facts_heldout_accuracy")), *accuracy.values())


def test_the_saes_are_what_the_zoo_page_describes():
    text = zoo_section("world-5l-sae` and `world-5l-sae-topk")
    l1, topk = (training_log(name) for name in ("world-5l-sae", "world-5l-sae-topk"))
    r = l1["recipe"]
    sae = zoo.load_sae("world-5l-sae")
    assert sae.cfg["hook_name"] == r["hook_name"] and f"(`{r['hook_name']}`)" in text
    states(text, "with {} latents each ({} × d_model)", sae.cfg["d_sae"],
           sae.cfg["d_sae"] / sae.cfg["d_in"])
    states(text, "every token but BOS, {} tokens; the last {} texts", r["n_tokens"],
           r["held_out_texts"])
    states(text, "Adam (lr {}, falling to zero over the last {} % of steps), batch {}, {} steps",
           r["lr"], 0.2, r["batch_size"], r["steps"])
    states(text, "dead latents resampled at steps {} and {}", *r["resample_at"])
    states(text, "(the L1 SAE had none at either step, the TopK SAE {} % at step {})",
           topk["dead_at_resampling"][0], r["resample_at"][0])
    assert l1["dead_at_resampling"] == [0.0, 0.0] and topk["dead_at_resampling"][1] == 0.0
    minutes, = stated(text, "about {} minutes each on one CPU core")
    for log in (l1, topk):
        assert abs(log["train_seconds"] / 60 - minutes) <= 1
    states(text, "(λ = {}, reached after {} % of the steps)", r["l1_coefficient"], 0.05)
    states(text, "keeps each token's {} largest latents", topk["recipe"]["k"])
    assert topk["recipe"]["l1_coefficient"] == 0 and r["k"] is None
    assert {k: v for k, v in topk["recipe"].items() if k not in ("k", "l1_coefficient")} == {
        k: v for k, v in r.items() if k not in ("k", "l1_coefficient")}


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


def test_a_share_of_prompts_names_how_many_prompts_it_is_measured_on():
    world, facts, ioi = world_model._splits()
    sizes = {"ioi_accuracy": len(ioi.test), "facts_train_accuracy": len(facts.train),
             "facts_heldout_accuracy": len(facts.test)}
    assert {bar.metric: bar.n for bar in world_model.BARS if bar.n} == sizes


def test_a_retrain_may_fall_short_only_by_the_sampling_error():
    bar, = [bar for bar in world_model.BARS if bar.metric == "ioi_accuracy"]
    # 200 prompts: two standard errors of a share of 0.95 are 0.031.
    assert not bar.met({"ioi_accuracy": 0.93})
    assert RETRAIN_STANDARD_ERRORS == 2
    assert bar.met({"ioi_accuracy": 0.93}, standard_errors=2)
    assert not bar.met({"ioi_accuracy": 0.915}, standard_errors=2)
    assert not bar.met({"ioi_accuracy": float("nan")}, standard_errors=2)
    exact, = [bar for bar in world_model.BARS if bar.metric == "ioi_logit_diff"]
    assert exact.n == 0 and not exact.met({"ioi_logit_diff": 2.99}, standard_errors=2)
    states(ZOO_PAGE.read_text(), "measured on {} held-out prompts, that is {} less {})", bar.n,
           bar.threshold, RETRAIN_STANDARD_ERRORS * (bar.threshold * (1 - bar.threshold) / bar.n)
           ** 0.5)
    below, = [bar for bar in world_model.BARS if bar.op == "<"]
    assert below.met({"ioi_abc_logit_diff": 0.49}) and not below.met({"ioi_abc_logit_diff": 0.5},
                                                                      standard_errors=2)


@pytest.mark.slow
@pytest.mark.parametrize("name", RECIPES)
def test_a_retrain_from_scratch_meets_the_bars(name, tmp_path, monkeypatch):
    shipped = read_manifest()
    base = getattr(recipe(name), "BASE_MODEL", None)  # an SAE reads the shipped model
    monkeypatch.setattr(zoo, "MODELS_DIR", tmp_path / "models")
    monkeypatch.setattr(zoo, "MANIFEST", tmp_path / "manifest.json")
    monkeypatch.setattr("reference_impl.zoo.recipes.ZOO_PAGE", tmp_path / "zoo.md")
    if base:
        shutil.copytree(SHIPPED_MODELS / base, zoo.MODELS_DIR / base)
        zoo.MANIFEST.write_text(json.dumps({base: shipped[base]}))
    train_and_save(name, seed=0, progress=False)
    result = verify(name)
    assert not result.error and not result.changed_files and result.size_mb <= MAX_CHECKPOINT_MB
    # Not the shipped bytes: on another CPU or library version the sums differ, and a share of
    # a fixed set of prompts may fall short of its bar by two standard errors (Bar.n).
    failed = unmet(recipe(name).BARS, result.metrics, standard_errors=RETRAIN_STANDARD_ERRORS)
    assert not failed, (failed, result.metrics)
