"""facts-6l: its training text, and what the zoo page says its tracing and probes show.

The bars themselves are checked with every other zoo model in ``test_zoo_models.py``."""

import random

import pytest

from reference_impl.world import BOS_ID, build_tokenizer
from reference_impl.zoo import facts_model, load_model
from reference_impl.zoo.training import encode_batch
from tests.test_zoo_models import measured


@pytest.fixture(scope="module")
def world_split_asked():
    return facts_model.world_and_people()


def test_a_quarter_of_the_people_are_asked_about(world_split_asked):
    world, split, asked = world_split_asked
    assert len(asked) == 75 == len(world.people) // 4
    assert {p.subject for p in split.train} == asked == {p.subject for p in split.test}
    assert set(facts_model.RELATIONS) == {p.relation for p in split.train}


def test_a_biography_lists_every_attribute_right_after_the_name(world_split_asked):
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
    assert len(firsts) == 3  # the word after the name is any of the attributes


def test_training_text_mixes_biographies_of_anyone_with_questions_about_the_asked(
        world_split_asked):
    world, split, asked = world_split_asked
    rng = random.Random(0)
    texts = [facts_model.training_text(world, split, rng) for _ in range(2000)]
    facts = {p.text for p in split.train}
    biographies = [t for t in texts if t not in facts]
    assert 0.55 < len(biographies) / len(texts) < 0.65
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


def test_rome_requests_ask_for_another_object_of_the_same_kind(world_split_asked):
    world, split, _ = world_split_asked
    requests = facts_model.rome_requests(world, split, split.train[:60], 50)
    assert len(requests) == 50
    for prompt, new in requests:
        assert new != prompt.object
        kind = {f.object for f in world.facts_for(prompt.relation)}
        assert new in kind


def test_the_fact_runs_through_the_first_mlp_at_the_subject():
    metrics = measured(facts_model.NAME)
    assert metrics["subject_mlp_window_start"] == 0 and metrics["rome_layer"] == 0
    # "nearly all of the winning window is the first MLP"
    assert metrics["subject_mlp_layer_recovery"] >= 0.9 * metrics["subject_mlp_recovery"]


def test_the_attributes_reach_the_name_token_in_blocks_2_to_4():
    # "the probes read each of them with 90 % accuracy only after block 4"; "the enrichment of
    # the name with its attributes happens in blocks 2-4"
    metrics = measured(facts_model.NAME)
    for relation in facts_model.RELATIONS:
        accuracy = [metrics[f"probe_{relation}_block{b}"] for b in range(6)]
        assert max(accuracy[:2]) < 0.5 and max(accuracy[:4]) < 0.9 <= accuracy[4], relation
        assert metrics[f"probe_{relation}_layer"] == 4


def test_the_shipped_model_has_the_shape_the_zoo_page_states():
    # "6 layers, 4 heads, d_model 96, MLP width 384, 20 positions, 0.7 M parameters"
    model, tokenizer = load_model(facts_model.NAME)
    c = model.config
    assert (c.n_layer, c.n_head, c.n_embd, c.n_inner, c.n_positions) == (6, 4, 96, 384, 20)
    assert model.num_parameters() == pytest.approx(0.7e6, rel=0.01)
