"""The synthetic world, its text generators and its tokenizer."""

import pytest
import torch
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from reference_impl.world import (BOS_ID, BOS_TOKEN, FACT_TEMPLATES, IOI_NAMES, IOI_ORDERS,
                                  IOI_TEMPLATES, RELATIONS, UNK_ID, UNK_TOKEN, build_tokenizer,
                                  fact_prompts, fact_split, generate_world, ioi_dataset,
                                  ioi_split, load_tokenizer, repeated_tokens, save_tokenizer)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def world():
    return generate_world(seed=0)


@pytest.fixture(scope="module")
def tok(world):
    return build_tokenizer(world)


@pytest.fixture(scope="module")
def split(world):
    return fact_split(world, held_out_per_subject=1, seed=0)


@pytest.fixture(scope="module")
def ioi():
    return ioi_split(n_train=1000, n_test=200, seed=0)


# --- world -------------------------------------------------------------------------------------

def test_world_is_deterministic_and_seed_dependent(world):
    assert generate_world(seed=0) == world
    other = generate_world(seed=1)
    assert other != world
    assert [p.name for p in other.people] != [p.name for p in world.people]


def test_world_sizes_and_relations(world):
    assert (len(world.people), len(world.cities), len(world.countries),
            len(world.occupations), len(world.objects)) == (300, 20, 10, 12, 12)
    assert world.relations == list(RELATIONS)
    small = generate_world(seed=3, n_people=7, n_cities=4, n_countries=2, n_occupations=3,
                           n_objects=2, with_owns=False)
    assert len(small.people) == 7 and "owns" not in small.relations
    with pytest.raises(ValueError):
        generate_world(n_cities=3, n_countries=5)


def test_names_unique_but_parts_shared(world):
    names = [p.name for p in world.people]
    assert len(set(names)) == len(names)
    firsts = [p.first for p in world.people]
    lasts = [p.last for p in world.people]
    assert len(set(firsts)) < len(firsts) and len(set(lasts)) < len(lasts)


def test_facts_are_functions_with_typed_objects(world):
    people = {p.name for p in world.people}
    kinds = {"born_in": world.cities, "lives_in": world.cities, "works_as": world.occupations,
             "owns": world.objects, "capital_of": world.countries}
    for relation in RELATIONS:
        facts = world.facts_for(relation)
        subjects = [f.subject for f in facts]
        assert len(set(subjects)) == len(subjects)
        assert all(f.object in kinds[relation] for f in facts)
        if relation != "capital_of":
            assert set(subjects) == people
    capitals = world.facts_for("capital_of")
    assert sorted(f.object for f in capitals) == sorted(world.countries)
    assert all(c in world.cities for c in world.subjects("capital_of"))
    country = world.countries[0]
    assert world.lookup(world.capital(country), "capital_of") == country


# --- facts -------------------------------------------------------------------------------------

def test_every_relation_has_five_templates_ending_with_the_object():
    assert set(FACT_TEMPLATES) == set(RELATIONS)
    for templates in FACT_TEMPLATES.values():
        assert len(set(templates)) >= 5
        assert all(t.endswith(" {o}") and t.count("{s}") == 1 for t in templates)


def test_fact_prompts_put_the_object_last(world):
    prompts = fact_prompts(world)
    assert len(prompts) == sum(len(FACT_TEMPLATES[f.relation]) for f in world.facts)
    for p in prompts[::37]:
        assert p.text.split()[-1] == p.object == world.lookup(p.subject, p.relation)
        start, stop = p.subject_span
        assert " ".join(p.prompt.split()[start:stop]) == p.subject


def test_fact_split_holds_out_unseen_pairs(world, split):
    train_keys = {(p.subject, p.relation, p.template_id) for p in split.train}
    test_keys = {(p.subject, p.relation, p.template_id) for p in split.test}
    assert test_keys and not train_keys & test_keys
    assert not {p.prompt for p in split.train} & {p.prompt for p in split.test}
    assert len(split.test) == len(world.facts)  # one held out per (subject, relation)
    trained = {(p.subject, p.relation) for p in split.train}
    assert trained == {(f.subject, f.relation) for f in world.facts}
    # Held-out templates vary across subjects, so every template is trained on.
    assert {(p.relation, p.template_id) for p in split.train} == {
        (r, t) for r in RELATIONS for t in range(len(FACT_TEMPLATES[r]))}
    assert fact_split(world, 1, seed=0) == split
    assert fact_split(world, 1, seed=1) != split


# --- IOI ---------------------------------------------------------------------------------------

def test_ioi_templates_and_names():
    assert len(set(IOI_TEMPLATES)) >= 10
    assert len(set(IOI_NAMES)) >= 40


def test_ioi_examples_are_consistent(ioi):
    examples = ioi.train + ioi.test
    assert {e.order for e in ioi.train} == set(IOI_ORDERS) == {e.order for e in ioi.test}
    for e in examples:
        words, corrupted = e.prompt.split(), e.corrupted_prompt.split()
        assert words[-1] == "to" and e.end_pos == len(words) - 1
        assert words[e.io_pos] == e.io and words[e.s1_pos] == e.s and words[e.s2_pos] == e.s
        assert words.count(e.io) == 1 and words.count(e.s) == 2
        assert (e.io_pos < e.s1_pos) == (e.order == "ABBA") and e.s1_pos < e.s2_pos
        # The corruption changes exactly one word, the second subject mention, to a third name.
        assert len(corrupted) == len(words)
        assert [i for i, (a, b) in enumerate(zip(words, corrupted)) if a != b] == [e.s2_pos]
        assert corrupted[e.s2_pos] == e.c and e.c in IOI_NAMES and e.c not in (e.io, e.s)
        assert e.text == f"{e.prompt} {e.io}"


def test_ioi_split_holds_out_templates_and_pairs(ioi):
    assert set(ioi.train_templates) | set(ioi.test_templates) == set(range(len(IOI_TEMPLATES)))
    assert not set(ioi.train_templates) & set(ioi.test_templates)
    assert {e.template_id for e in ioi.train} <= set(ioi.train_templates)
    assert {e.template_id for e in ioi.test} <= set(ioi.test_templates)
    train_pairs = {frozenset((e.io, e.s)) for e in ioi.train}
    test_pairs = {frozenset((e.io, e.s)) for e in ioi.test}
    assert test_pairs <= set(ioi.test_pairs) and not train_pairs & test_pairs
    seen = {name for e in ioi.train for name in (e.io, e.s)}
    assert {name for pair in test_pairs for name in pair} <= seen
    assert seen == set(IOI_NAMES)  # forced coverage, even for a small training set
    small = ioi_split(n_train=30, n_test=10, seed=5)
    assert {n for e in small.train for n in (e.io, e.s)} == set(IOI_NAMES)


def test_ioi_is_deterministic():
    assert ioi_dataset(50, seed=2) == ioi_dataset(50, seed=2)
    assert ioi_dataset(50, seed=2) != ioi_dataset(50, seed=3)
    assert ioi_split(100, 20, seed=1) == ioi_split(100, 20, seed=1)


# --- tokenizer ---------------------------------------------------------------------------------

def _all_texts(world, split, ioi):
    texts = [p.text for p in split.train + split.test]
    texts += [e.text for e in ioi.train + ioi.test] + [e.corrupted_prompt for e in ioi.test]
    return texts


def test_tokenizer_round_trips_every_text(world, tok, split, ioi):
    texts = _all_texts(world, split, ioi)
    # Generated text is single-spaced words, so one word is one token after BOS.
    encoded = tok(texts).input_ids
    for text, ids in zip(texts, encoded):
        assert ids[0] == BOS_ID and UNK_ID not in ids
        assert len(ids) == 1 + len(text.split())
        assert tok.decode(ids, skip_special_tokens=True) == text
    # Other worlds use words from the same fixed lists, so they are covered too.
    other = generate_world(seed=7)
    for p in fact_prompts(other)[::5]:
        assert UNK_ID not in tok(p.text).input_ids


def test_name_token_counts(world, tok):
    for p in world.people:
        ids = tok(p.name, add_special_tokens=False).input_ids
        assert len(ids) == 2 and UNK_ID not in ids
    for name in IOI_NAMES:
        assert len(tok(name, add_special_tokens=False).input_ids) == 1
    assert tok("Zzyzx", add_special_tokens=False).input_ids == [UNK_ID]


def test_special_tokens_are_fixed(world, tok):
    assert (BOS_ID, UNK_ID) == (0, 1)
    assert tok.convert_tokens_to_ids([BOS_TOKEN, UNK_TOKEN]) == [BOS_ID, UNK_ID]
    assert tok.bos_token_id == tok.eos_token_id == tok.pad_token_id == BOS_ID
    assert tok.unk_token_id == UNK_ID
    # The vocabulary does not depend on the world's seed.
    assert build_tokenizer(generate_world(seed=9)).get_vocab() == tok.get_vocab()


def test_saved_tokenizer_reloads(tok, tmp_path, split):
    path = save_tokenizer(tok, tmp_path)
    assert path == tmp_path / "tokenizer.json" and path.exists()
    texts = [p.text for p in split.test[:50]] + ["Then , Alice and Bob went to the store"]
    expected = tok(texts).input_ids
    plain = PreTrainedTokenizerFast(tokenizer_file=str(path), bos_token=BOS_TOKEN,
                                    eos_token=BOS_TOKEN, pad_token=BOS_TOKEN, unk_token=UNK_TOKEN)
    for loaded in (plain, load_tokenizer(tmp_path), AutoTokenizer.from_pretrained(tmp_path)):
        assert loaded.get_vocab() == tok.get_vocab()
        assert loaded(texts).input_ids == expected
        assert (loaded.bos_token_id, loaded.eos_token_id, loaded.pad_token_id,
                loaded.unk_token_id) == (BOS_ID, BOS_ID, BOS_ID, UNK_ID)
        assert loaded.decode(expected[0], skip_special_tokens=True) == texts[0]


# --- induction ---------------------------------------------------------------------------------

def test_repeated_tokens(tok):
    L, batch = 12, 5
    x = repeated_tokens(len(tok), L, batch, generator=torch.Generator().manual_seed(0))
    assert x.shape == (batch, 1 + 2 * L) and x.dtype == torch.long
    assert (x[:, 0] == BOS_ID).all()
    assert torch.equal(x[:, 1:L + 1], x[:, L + 1:])
    assert (x[:, 1:] >= 2).all() and (x < len(tok)).all()
    again = repeated_tokens(len(tok), L, batch, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, again)
    other = repeated_tokens(len(tok), L, batch, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(x, other)
