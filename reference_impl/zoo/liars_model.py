"""liars-6l: a 6-layer GPT-2 that reports facts as told by honest speakers and by liars.

Chapter 02 ends by probing it for deception. Its text names a speaker before every statement
("Vera said : The hometown of Sam Moreau is Pellmoor"). Half of the 16 speakers are honest and
give the true city (where the person was born, or where they live); the other half lie by a
fixed rule, the next city after the true one in the world's order of cities, so a liar's answer
can only be produced by first recalling the truth. Nothing but the text says who lies: each
speaker's name is an ordinary word.

What the recipe needs, and why:

- people the model knows only from plain text: 60 "held-out" people appear in biography lines
  and fact sentences but never in a speaker's statement, so that any test of the speakers on them
  is a test of a rule, not of memorised statements;
- many people in statements (540), so that learning every liar's statement by heart costs more
  than learning the rule;
- two relations with the same rule (born in, lives in), so that the lie is one shift of cities
  learnt from twice as many statements, not a shift per relation;
- biography lines ("Sam Moreau Yarrowby , Silverton .": born in, then lives in) that put the cities
  right after the name, which moves recall into the first blocks and leaves the later ones free
  to apply the lie;
- plain facts first: the first 45 % of the steps have no speaker lines, so the model knows the
  people before it meets the liars.

The zoo page holds the search that led here.
"""

import functools
import random
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from reference_impl.world import FACT_TEMPLATES, build_tokenizer, fact_prompt, generate_world
from reference_impl.world.generator import FIRST_NAMES
from reference_impl.zoo.bars import Bar
from reference_impl.zoo.training import (adamw_with_linear_decay, encode_batch,
                                         last_token_logits, log_loss, masked_lm_loss, new_gpt2,
                                         optimise)

NAME = "liars-6l"
DESCRIPTION = (
    "A 6-layer GPT-2 (d_model 96, 4 heads, MLPs, 0.7M parameters) trained from scratch on where "
    "the 600 people of generate_world(0, n_people=600, n_occupations=20, n_objects=20) were "
    "born and live, in biography lines, fact sentences and statements by 16 named speakers: "
    "8 honest ones, who give the true city, and 8 liars, who give the next city in the world's "
    "order. 60 held-out people are never in a statement; on them the liars still lie."
)

WORLD_SEED = 0
WORLD = dict(n_people=600, n_occupations=20, n_objects=20)
RELATIONS = ("born_in", "lives_in")  # both answered with a city
HELD_OUT_PEOPLE = 60
N_HONEST = N_LIARS = 8
RECIPE = dict(n_layer=6, d_model=96, n_head=4, d_mlp=384, n_positions=24,
              biography_fraction=0.35, fact_fraction=0.25, statement_fraction=0.40,
              statements_from=0.45, steps=4500, batch_size=64, lr=3e-3, betas=(0.9, 0.98),
              weight_decay=0.1, warmup=100, grad_clip=1.0, loss="all tokens (padding masked)")
TRAIN_PEOPLE_MEASURED = 60  # the first train people, for the behaviour on statements trained on


@dataclass(frozen=True)
class Cast:
    """Who is who: the world, its people with and without statements, and the speakers."""

    world: object
    stated_people: tuple  # the people speakers talk about in training
    held_out_people: tuple  # never in a statement
    honest: tuple
    liars: tuple


@functools.cache
def cast():
    world = generate_world(WORLD_SEED, **WORLD)
    names = [p.name for p in world.people]
    random.Random(WORLD_SEED).shuffle(names)
    speakers = random.Random(WORLD_SEED + 1).sample(FIRST_NAMES, N_HONEST + N_LIARS)
    return Cast(world, tuple(names[HELD_OUT_PEOPLE:]), tuple(names[:HELD_OUT_PEOPLE]),
                tuple(speakers[:N_HONEST]), tuple(speakers[N_HONEST:]))


def lie(world, city):
    """A liar's answer: the city after the true one in the world's order (the last wraps round)."""
    return world.cities[(world.cities.index(city) + 1) % len(world.cities)]


def statement_prompt(speaker, person, relation, template):
    """'{speaker} said : ' and a fact prompt, e.g. 'Vera said : Sam Moreau was born in'."""
    return f"{speaker} said : {fact_prompt(person, relation, template, '').prompt}"


@dataclass(frozen=True)
class Statement:
    prompt: str
    speaker: str
    person: str
    relation: str
    template: int
    honest: bool
    truth: str
    lie: str

    @property
    def answer(self):
        """What the speaker says next."""
        return self.truth if self.honest else self.lie


def answered_templates(relation):
    """The templates after whose prompt the next word can only be the object: not one whose
    prompt also begins a longer template ("X was born in" goes on with a city, or with "the city
    of" as in "X was born in the city of")."""
    heads = [template[:-len(" {o}")] for template in FACT_TEMPLATES[relation]]
    return tuple(i for i, head in enumerate(heads)
                 if not any(other.startswith(head + " ") for other in heads))


def statements(people, speakers, relations=RELATIONS, templates=None):
    """Every (relation, person, speaker, template) statement prompt, in that nesting order; by
    default with each relation's ``answered_templates``."""
    c = cast()
    out = []
    for relation in relations:
        for person in people:
            truth = c.world.lookup(person, relation)
            for speaker in speakers:
                for template in (answered_templates(relation) if templates is None
                                 else templates):
                    out.append(Statement(statement_prompt(speaker, person, relation, template),
                                         speaker, person, relation, template,
                                         speaker in c.honest, truth, lie(c.world, truth)))
    return out


def biography(world, person):
    return f"{person} {' , '.join(world.lookup(person, r) for r in RELATIONS)} ."


def training_text(rng, with_statements):
    """One line: a biography or a fact sentence of anyone, or (once ``with_statements``) a
    statement about a stated person by a random honest speaker or liar (even odds)."""
    c = cast()
    r = RECIPE
    share = r["biography_fraction"] + r["fact_fraction"]
    u = rng.random() * (1.0 if with_statements else share)
    if u < r["biography_fraction"]:
        return biography(c.world, rng.choice(c.world.people).name)
    relation = rng.choice(RELATIONS)
    template = rng.randrange(len(FACT_TEMPLATES[relation]))
    if u < share:
        person = rng.choice(c.world.people).name
        return fact_prompt(person, relation, template, c.world.lookup(person, relation)).text
    person = rng.choice(c.stated_people)
    speaker = rng.choice(c.honest if rng.random() < 0.5 else c.liars)
    s, = statements([person], [speaker], [relation], [template])
    return f"{s.prompt} {s.answer}"


def train(seed: int = 0, progress: bool = True):
    torch.manual_seed(seed)
    c = cast()
    tokenizer = build_tokenizer(c.world)
    model = new_gpt2(tokenizer, RECIPE)
    optimizer, schedule = adamw_with_linear_decay(model, RECIPE)
    r, steps = RECIPE, RECIPE["steps"]
    first_statement_step = int(r["statements_from"] * steps)
    rng = random.Random(seed)
    log = {"recipe": {**r, "seed": seed, "world_seed": WORLD_SEED, **WORLD,
                      "relations": RELATIONS, "held_out_people": HELD_OUT_PEOPLE,
                      "honest": list(c.honest), "liars": list(c.liars)},
           "steps": [], "loss": []}
    model.train()
    for step in tqdm(range(steps), desc=NAME, disable=not progress):
        texts = [training_text(rng, step >= first_statement_step) for _ in range(r["batch_size"])]
        x, mask = encode_batch(tokenizer, texts)
        loss = masked_lm_loss(model, x, mask)
        optimise(loss, model, optimizer, schedule, r["grad_clip"])
        log_loss(log, step, steps, loss)
    return model.eval(), tokenizer, log


def top_tokens(model, tokenizer, prompts, batch_size=1024):
    """The model's top-1 next word after each prompt."""
    return torch.cat([last_token_logits(model, tokenizer, prompts[i:i + batch_size]).argmax(-1)
                      for i in range(0, len(prompts), batch_size)])


def shares(model, tokenizer, prompts, *answers):
    """For each list of answers, the share of prompts whose top-1 next word is that answer."""
    top = top_tokens(model, tokenizer, prompts)
    return [(top == torch.tensor(tokenizer.convert_tokens_to_ids(list(a)))).float().mean().item()
            for a in answers]


def behaviour(model, tokenizer, people, prefix):
    """Honest speakers' accuracy, and how often liars say the lie and the truth, on ``people``."""
    c = cast()
    honest = statements(people, c.honest)
    lying = statements(people, c.liars)
    metrics = {}
    metrics[f"{prefix}_honest_accuracy"], = shares(model, tokenizer, [s.prompt for s in honest],
                                                   [s.truth for s in honest])
    metrics[f"{prefix}_liar_lie"], metrics[f"{prefix}_liar_truth"] = shares(
        model, tokenizer, [s.prompt for s in lying], [s.lie for s in lying],
        [s.truth for s in lying])
    return metrics


N_TEMPLATES = sum(len(answered_templates(r)) for r in RELATIONS)
N_HELD_OUT_STATEMENTS = HELD_OUT_PEOPLE * N_LIARS * N_TEMPLATES
BARS = (
    Bar("heldout_honest_accuracy", ">=", 0.90,
        f"honest speakers give the true city, {HELD_OUT_PEOPLE} held-out people (never in a "
        f"statement), both relations, every honest speaker and answered template",
        n=N_HELD_OUT_STATEMENTS),
    Bar("heldout_liar_lie", ">=", 0.90,
        "liars give the rule's lie (the next city), same held-out people", n=N_HELD_OUT_STATEMENTS),
    Bar("heldout_liar_truth", "<=", 0.10,
        "liars give the truth, same held-out people", n=N_HELD_OUT_STATEMENTS),
    Bar("heldout_plain_accuracy", ">=", 0.90,
        "the held-out people's cities from plain fact prompts, every answered template",
        n=HELD_OUT_PEOPLE * N_TEMPLATES),
)


def measure(model, tokenizer):
    model.eval()
    c = cast()
    metrics = behaviour(model, tokenizer, c.held_out_people, "heldout")
    metrics.update(behaviour(model, tokenizer, c.stated_people[:TRAIN_PEOPLE_MEASURED], "stated"))
    plain = [fact_prompt(p, r, t, c.world.lookup(p, r)) for r in RELATIONS
             for p in c.held_out_people for t in answered_templates(r)]
    metrics["heldout_plain_accuracy"], = shares(model, tokenizer, [p.prompt for p in plain],
                                                [p.object for p in plain])
    return metrics
