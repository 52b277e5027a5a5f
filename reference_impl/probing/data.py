"""The sentences chapter 02 probes, built from the world ``facts-6l`` was trained on.

Every builder is seeded and returns plain Python lists, so the same call gives the same data on
every machine. Token batches are padded on the right with BOS: the model is causal, so padding
after a position never changes what the model computes there.
"""

import random
from dataclasses import dataclass

import torch

from reference_impl.world import BOS_ID, FACT_TEMPLATES, fact_prompt
from reference_impl.zoo.facts_model import RELATIONS, world_and_people


@dataclass(frozen=True)
class Line:
    """One sentence, with the positions a probe reads and what is true of it."""

    text: str
    person: str
    relation: str
    template: int
    last_name: int  # token position of the person's last name (BOS is position 0)
    last: int  # token position of the sentence's last word


def facts_world():
    """``(world, asked)``: the world of ``facts-6l`` and the people it was asked about."""
    world, _, asked = world_and_people()
    return world, asked


def encode(tokenizer, texts):
    """(batch, pos) token ids of ``texts``, each after BOS, padded on the right with BOS."""
    encoded = [tokenizer(text).input_ids for text in texts]
    ids = torch.full((len(encoded), max(map(len, encoded))), BOS_ID, dtype=torch.long)
    for row, tokens in enumerate(encoded):
        ids[row, :len(tokens)] = torch.tensor(tokens)
    return ids


def fact_line(world, person, relation, template):
    """The fact sentence, object included, with its probe positions."""
    prompt = fact_prompt(person, relation, template, world.lookup(person, relation))
    _, stop = prompt.subject_span  # BOS comes first, so the last name is token `stop`
    words = len(prompt.text.split())
    return Line(prompt.text, person, relation, template, stop, words)


# The paraphrases that start with the subject: in them, the model has read nothing but the name
# when it reaches the last name token, so every sentence about a person gives the same activation
# there, the one the name alone gives.
NAME_FIRST = tuple((relation, template) for relation in RELATIONS
                   for template, text in enumerate(FACT_TEMPLATES[relation])
                   if text.startswith("{s}"))


def probe_sentences(world, per_person=4, seed=0):
    """``per_person`` fact sentences about every person, each a different (relation, paraphrase)
    of ``NAME_FIRST`` drawn at random: 300 × 4 = 1,200 sentences."""
    rng = random.Random(seed)
    return [fact_line(world, person.name, relation, template)
            for person in world.people
            for relation, template in rng.sample(NAME_FIRST, per_person)]


# The words that come before a name in the chapter's contexts: the name alone, then every
# paraphrase of the model's relations that does not start with the subject.
NAME_CONTEXTS = ("",) + tuple(sorted({
    template.split("{s}")[0].strip() for relation in RELATIONS
    for template in FACT_TEMPLATES[relation] if not template.startswith("{s}")}))


def name_contexts(world):
    """Each person's name after each prefix of ``NAME_CONTEXTS``: ``(texts, people, context)``,
    the last word of every text being the person's last name."""
    texts, people, contexts = [], [], []
    for person in world.people:
        for index, prefix in enumerate(NAME_CONTEXTS):
            texts.append(f"{prefix} {person.name}".strip())
            people.append(person.name)
            contexts.append(index)
    return texts, people, contexts


def context_split(people, n_contexts, held_out, seed):
    """Held-out contexts of seen people: for every person, ``held_out`` of its ``n_contexts``
    consecutive examples (as ``name_contexts`` lays them out) drawn at random go to the test
    side. Returns (train, test) sorted example indices."""
    rng = random.Random(seed)
    test = []
    for start in range(0, len(people), n_contexts):
        test += [start + i for i in rng.sample(range(n_contexts), held_out)]
    test = sorted(test)
    train = sorted(set(range(len(people))) - set(test))
    return torch.tensor(train, dtype=torch.long), torch.tensor(test, dtype=torch.long)


def recall_prompts(world, asked, relation):
    """Every fact prompt of ``relation`` (object left out) about the asked people: what the
    model was trained to answer."""
    return [fact_prompt(person, relation, template, world.lookup(person, relation))
            for person in sorted(asked) for template in range(len(FACT_TEMPLATES[relation]))]


def statement_batch(tokenizer, statements):
    """``(tokens, last_positions)`` of speakers' statements (``liars_model.statements``): token
    ids padded on the right, and the position of each prompt's last word, where the model
    answers."""
    return (encode(tokenizer, [s.prompt for s in statements]),
            torch.tensor([len(s.prompt.split()) for s in statements]))
