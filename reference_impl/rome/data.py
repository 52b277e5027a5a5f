"""Chapter 06's prompts: facts of ``facts-6l``'s world, as token ids with their subject, and the
edit requests ROME and fine-tuning are scored on."""

import random
from dataclasses import dataclass

import torch

from reference_impl.world import FACT_TEMPLATES, FactPrompt, fact_prompt
from reference_impl.zoo import facts_model
from reference_impl.zoo.training import encode_batch

RELATIONS = facts_model.RELATIONS
# The most people a request's neighbourhood and same-name sets hold.
MAX_OTHERS = 10


def prompt_tokens(tokenizer, prompt: FactPrompt):
    """Token ids of a fact prompt (BOS first) and the (start, stop) token positions of its
    subject."""
    return facts_model.prompt_ids(tokenizer, prompt)


def target_id(tokenizer, word):
    """The token id of ``word``, or a ValueError when it is not one token of the vocabulary."""
    ids = tokenizer(word, add_special_tokens=False).input_ids
    if len(ids) != 1 or ids[0] == tokenizer.unk_token_id:
        raise ValueError(f"the target {word!r} is not one token of the model's vocabulary (it "
                         f"encodes as {len(ids)} tokens {ids}): an edit's new object must be a "
                         f"single known word")
    return ids[0]


@dataclass(frozen=True)
class Request:
    """An edit: make ``prompt``'s subject have ``new_object`` for ``prompt``'s relation.

    ``paraphrases``: the relation's other templates for the subject, which the edit never sees;
    ``neighbours``: other people with the same relation and the same true object, who should
    keep it; ``same_person``: the subject's prompts for the other relations; ``same_name``:
    people who share a name token with the subject, for this relation."""

    prompt: FactPrompt
    new_object: str
    paraphrases: list
    neighbours: list
    same_person: list
    same_name: list

    @property
    def subject(self):
        return self.prompt.subject


def all_templates(subject, relation, obj):
    return [fact_prompt(subject, relation, t, obj) for t in range(len(FACT_TEMPLATES[relation]))]


def edit_requests(model, tokenizer, n, seed=0):
    """``n`` requests: trained prompts of asked people that the model answers correctly (in the
    zoo's seeded order), each asking for another object of the same kind."""
    world, split, asked = facts_model.world_and_people()
    prompts = facts_model.traced_prompts(model, tokenizer, split, n)
    rng = random.Random(seed)
    objects = {r: sorted({f.object for f in world.facts_for(r)}) for r in RELATIONS}
    asked_people = sorted(asked)
    requests = []
    for prompt in prompts:
        subject, relation = prompt.subject, prompt.relation
        new = rng.choice([o for o in objects[relation] if o != prompt.object])
        others = [p for p in asked_people if p != subject]
        same_object = [p for p in others if world.lookup(p, relation) == prompt.object]
        shared = [p for p in others if set(p.split()) & set(subject.split())]
        template = prompt.template_id

        def asked_about(people):
            return [fact_prompt(p, relation, template, world.lookup(p, relation))
                    for p in people[:MAX_OTHERS]]

        requests.append(Request(
            prompt, new,
            [p for p in all_templates(subject, relation, prompt.object) if p.template_id != template],
            asked_about(same_object), [p for r in RELATIONS if r != relation
                                       for p in all_templates(subject, r, world.lookup(subject, r))],
            asked_about(shared)))
    return requests


def edit_prompts(tokenizer, request):
    """The (tokens, subject_last_position) ROME is fitted on: the rewrite prompt. And its KL
    prompt: the subject's name alone ("[BOS] First Last"), after which the model lists the
    person's attributes."""
    tokens, (_, stop) = prompt_tokens(tokenizer, request.prompt)
    name = torch.tensor(tokenizer(request.subject).input_ids)
    return [(tokens, stop - 1)], [(name, len(name) - 1)]


def key_text_batch(tokenizer, n=2000):
    """Training-like text of ``facts-6l``, padded, with the mask of its real tokens: the text the
    keys' second moment C is measured on."""
    world, split, _ = facts_model.world_and_people()
    tokens, predicted = encode_batch(tokenizer, facts_model.key_text(world, split, n))
    # encode_batch masks the predicted tokens; a key is wanted at every real one, BOS included
    return tokens, torch.cat([torch.ones(len(tokens), 1), predicted], dim=1)
