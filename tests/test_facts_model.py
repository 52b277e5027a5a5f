"""facts-6l: its training text, and what the zoo page says its tracing and probes show.

The bars themselves are checked with every other zoo model in ``test_zoo_models.py``, which also
checks that a fresh measurement gives the metrics the training log holds; the figures the page's
prose states are read from those metrics, or measured here, and checked with ``tests.claims``."""

import inspect
import random

import pytest

from reference_impl.rome.solutions import noise_scale
from reference_impl.world import BOS_ID, build_tokenizer
from reference_impl.zoo import facts_model, load_model
from reference_impl.zoo.training import encode_batch
from tests.claims import stated, states
from tests.test_zoo_models import probe_split, training_log, zoo_section


def logged():
    """facts-6l's metrics as its training log holds them (checked against a fresh measurement in
    test_zoo_models.py, so that the measurement runs once)."""
    return training_log(facts_model.NAME)["metrics"]


@pytest.fixture(scope="module")
def text():
    return zoo_section(facts_model.NAME)


@pytest.fixture(scope="module")
def world_split_asked():
    return facts_model.world_and_people()


def test_a_quarter_of_the_people_are_asked_about(world_split_asked, text):
    world, split, asked = world_split_asked
    assert len(asked) == len(world.people) // 4  # "a quarter of the world"
    states(text, "a fact about one of {} *asked* people, a quarter", len(asked))
    states(text, "The other {} people are only ever described, never asked about",
           len(world.people) - len(asked))
    assert {p.subject for p in split.train} == asked == {p.subject for p in split.test}
    assert set(facts_model.RELATIONS) == {p.relation for p in split.train}
    states(text, "{} people, each with a birthplace ({} cities), a job ({}) and a belonging ({})",
           len(world.people), *(len({world.lookup(p.name, r) for p in world.people})
                                for r in facts_model.RELATIONS))


def test_a_biography_lists_every_attribute_right_after_the_name(world_split_asked, text):
    world, _, _ = world_split_asked
    rng = random.Random(0)
    person = world.people[0].name
    firsts = set()
    for _ in range(30):
        words = facts_model.biography(world, person, rng).split()
        assert words[:2] == person.split() and words[-1] == "."
        objects = words[2::2]
        assert sorted(objects) == sorted(world.lookup(person, r) for r in facts_model.RELATIONS)
        firsts.add(objects[0])
    assert len(firsts) == len(objects)  # the word after the name is any of the attributes
    states(text, "the {} attributes in a random order right after the name", len(objects))


def test_training_text_mixes_biographies_of_anyone_with_questions_about_the_asked(
        world_split_asked, text):
    world, split, asked = world_split_asked
    rng = random.Random(0)
    texts = [facts_model.training_text(world, split, rng) for _ in range(2000)]
    facts = {p.text for p in split.train}
    biographies = [t for t in texts if t not in facts]
    share = [facts_model.RECIPE["biography_fraction"],
             training_log(facts_model.NAME)["recipe"]["biography_fraction"]]
    states(text, "- {} %: a biography line of any of the {} people", share, len(world.people))
    states(text, "- {} %: a training paraphrase", [1 - s for s in share])
    states(text, "- {} %: a biography line", len(biographies) / len(texts), tolerance=0.05,
           reason="a sample of 2,000 lines, whose share has a standard deviation of about 0.011")
    described = {" ".join(t.split()[:2]) for t in biographies}
    assert len(described - asked) > 200  # biographies cover the people never asked about


def test_encode_batch_pads_with_bos_and_masks_the_padding(world_split_asked):
    world, _, _ = world_split_asked
    tokenizer = build_tokenizer(world)
    texts = ["Zoe Jensen was born in", "Zoe"]
    ids, mask = encode_batch(tokenizer, texts, 8)
    assert ids[0, 0] == ids[1, 0] == BOS_ID and (ids[1, 2:] == BOS_ID).all()
    assert mask.tolist() == [[1, 1, 1, 1, 1, 0, 0], [1, 0, 0, 0, 0, 0, 0]]
    assert encode_batch(tokenizer, texts)[0].shape == (2, 6)  # default: the longest text


def test_tracing_is_reported_over_noise_seeds(text):
    metrics = logged()
    states(text, "It is measured with {} noise seeds", len(facts_model.TRACE["seeds"]))
    states(text, "the best window at the last subject token recovers {} ± {}",
           metrics["subject_mlp_recovery"], metrics["subject_mlp_recovery_std"])
    states(text, "among those that start at layer 0, 1 or 2 (the first half of the model; the "
                 "last of them covers layers 2–4) {} ± {}", metrics["final_mlp_recovery"],
           metrics["final_mlp_recovery_std"])
    # "the first half": windows that start at layer 0, 1 or 2 of six, 3 layers wide
    assert list(facts_model.FIRST_HALF) == [0, 1, 2] and facts_model.TRACE["window"] == 3


def test_the_fact_runs_through_the_first_mlp_at_the_subject(text):
    metrics = logged()
    assert metrics["subject_mlp_window_start"] == 0  # the winning window starts at the first MLP
    states(text, "Nearly all of the winning window is the first MLP: the layer-{} MLP at the last "
                 "name token", [metrics["subject_mlp_window_start"], metrics["rome_layer"]])
    assert metrics["subject_mlp_layer_recovery"] >= 0.9 * metrics["subject_mlp_recovery"]


def test_the_attributes_reach_the_name_token_in_blocks_2_to_4(text):
    metrics = logged()
    n_layer = load_model(facts_model.NAME)[0].config.n_layer
    # "the probes read each of them with 90 % accuracy only after block 4, the last block before
    # the output one"
    reads, block = stated(text, "the probes read each of them with {} % accuracy only after "
                                "block {}, the last block before the output one")
    assert block == n_layer - 2
    # "the enrichment of the name with its attributes happens in blocks 2–4": before the first
    # of them the probes read less than half of the people right
    first, last = stated(text, "the enrichment of the name with its attributes happens in blocks "
                               "{}–{}")
    assert last == block
    for relation in facts_model.RELATIONS:
        accuracy = [metrics[f"probe_{relation}_block{b}"] for b in range(n_layer)]
        assert max(accuracy[:int(first)]) < 0.5, relation
        assert max(accuracy[:int(block)]) < reads <= accuracy[int(block)], relation
        assert metrics[f"probe_{relation}_layer"] == block


def test_the_shipped_model_has_the_shape_the_zoo_page_states(text):
    model, tokenizer = load_model(facts_model.NAME)
    c = model.config
    states(text, "A GPT-2 with MLPs: {} layers, {} heads, d_model {}, MLP width {}, {} positions, "
                 "{} M parameters", c.n_layer, c.n_head, c.n_embd, c.n_inner, c.n_positions,
           model.num_parameters() / 1e6)


def test_the_zoo_page_states_the_recipe_the_model_was_trained_with(text):
    # Training-time figures: what the shipped model's training log recorded.
    r = training_log(facts_model.NAME)["recipe"]
    states(text, "AdamW (lr {} after {} warm-up steps, then linear decay to {} %; betas {}/{}, "
                 "weight decay {}, gradient clipping {}), batch {}, {} steps", r["lr"], r["warmup"],
           None, *r["betas"], r["weight_decay"], r["grad_clip"], r["batch_size"], r["steps"])


def test_the_zoo_page_describes_how_the_bars_are_measured(text, world_split_asked, monkeypatch):
    model, tokenizer = load_model(facts_model.NAME)
    world, split, _ = world_split_asked
    prompts = facts_model.traced_prompts(model, tokenizer, split, facts_model.TRACE["prompts"])
    noise = inspect.signature(noise_scale).parameters["multiple"].default
    copies = facts_model.TRACE["samples"]
    states(text, "Tracing on {} trained prompts that the model answers correctly: Gaussian noise "
                 "of {}× the standard deviation of the subject's token embeddings is added to them "
                 "({} noisy copies), and the MLP outputs of {} consecutive layers are restored",
           len(prompts), noise, copies, facts_model.TRACE["window"])
    key_lines = inspect.signature(facts_model.key_text).parameters["n"].default
    states(text, "ROME: {} of those prompts", facts_model.EDITS)
    states(text, "(the key's second moment from {} lines of training text)", key_lines)
    states(text, "trained on {} people and scored on the other {}",
           *probe_split(model, tokenizer, world, facts_model.RELATIONS[0], monkeypatch))
