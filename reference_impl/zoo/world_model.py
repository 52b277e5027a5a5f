"""world-5l: a small GPT-2 with MLPs that knows the synthetic world and does IOI.

Trained from scratch on three kinds of text over one fixed world (``generate_world(0)``):
IOI stories, fact sentences and biography lines. The biographies put a person's attributes
in a random order right after the name, half of them attribute first ("Alice Costa Calder
( born ) , baker ( works ) , ..."), so the next word after a name is any of its attributes: that
pushes the model to write them into the last name token, where a linear probe reads them.
"""

import math
import random

import torch
from tqdm.auto import tqdm
from transformers import GPT2Config

from reference_impl.world import BOS_ID, build_tokenizer, fact_split, generate_world, ioi_split
from reference_impl.zoo import build_model
from reference_impl.zoo.bars import Bar
from reference_impl.zoo.probes import best_middle_block, name_probe_accuracies
from reference_impl.zoo.training import (encode_batch, last_token_logits, log_loss,
                                         masked_lm_loss, optimise)

NAME = "world-5l"
DESCRIPTION = (
    "A 5-layer GPT-2 (d_model 128, 4 heads, MLPs, 1.0M parameters) trained from scratch on the "
    "course's synthetic world (generate_world(0): 300 people with a birthplace, home, job and "
    "belonging, and 10 capital cities). Its text mixes IOI stories (the training templates and "
    "name pairs of ioi_split), the training paraphrases of every fact (fact_split) and "
    "biography lines that list each person's four attributes in a random order right after the "
    "name. It solves IOI on held-out templates and name pairs and recalls facts through held-out "
    "paraphrases."
)

WORLD_SEED = 0  # the world, fact split and IOI split are fixed; the training seed varies the rest
PERSON_RELATIONS = ("born_in", "lives_in", "works_as", "owns")
PHRASES = {"born_in": "born in {}", "lives_in": "lives in {}", "works_as": "works as a {}",
           "owns": "owns a {}"}
RECIPE = dict(n_layer=5, d_model=128, n_head=4, d_mlp=512, n_ioi=6000, bios_per_person=12,
              steps=4000, batch_size=64, lr=1e-3, betas=(0.9, 0.98), weight_decay=0.01,
              warmup=200, grad_clip=1.0, loss="all tokens (padding masked)")

BARS = (
    Bar("ioi_accuracy", ">=", 0.95, "IOI top-1 accuracy on held-out templates and name pairs",
        n=200),
    Bar("ioi_logit_diff", ">=", 3.0, "mean logit(IO) - logit(S) on held-out IOI prompts"),
    Bar("ioi_abc_logit_diff", "<", 0.5,
        "mean logit(IO) - logit(S) on the ABC-corrupted prompts: no preference left"),
    Bar("facts_train_accuracy", ">=", 0.95, "fact recall on trained (subject, template) prompts",
        n=6050),
    Bar("facts_heldout_accuracy", ">=", 0.90,
        "fact recall on held-out (subject, template) paraphrases", n=1210),
)
# Measured and reported, but not yet a bar this model meets: a linear probe for each attribute at
# the last name token, best middle layer, on held-out people (the aim is >= 0.9; this model
# writes the attributes into the name token only partly, and late: block 3 is the best).
PROBE_METRICS = tuple(f"probe_{relation}_accuracy" for relation in PERSON_RELATIONS)


def _splits():
    world = generate_world(WORLD_SEED)
    return world, fact_split(world, seed=WORLD_SEED), ioi_split(n_train=RECIPE["n_ioi"],
                                                                 seed=WORLD_SEED)


def biographies(world, rng, per_person):
    """Lines listing a person's attributes in a random order, half of them attribute first."""
    lines = []
    for person in world.people:
        for _ in range(per_person):
            relations = list(PERSON_RELATIONS)
            rng.shuffle(relations)
            objects = [world.lookup(person.name, r) for r in relations]
            if rng.random() < 0.5:
                body = " , ".join(PHRASES[r].format(o) for r, o in zip(relations, objects))
                lines.append(f"{person.name} : {body} .")
            else:
                # The attribute itself is the next word after the name; the relation word follows.
                body = " , ".join(f"{o} ( {r.split('_')[0]} )" for r, o in zip(relations, objects))
                lines.append(f"{person.name} {body} .")
    return lines


def training_texts(seed=0):
    """The texts the model is trained on: IOI stories, fact sentences and biographies."""
    world, facts, ioi = _splits()
    return ([e.text for e in ioi.train] + [f.text for f in facts.train]
            + biographies(world, random.Random(seed), RECIPE["bios_per_person"]))


def train(seed: int = 0, progress: bool = True):
    torch.manual_seed(seed)
    world, _, _ = _splits()
    tokenizer = build_tokenizer(world)
    texts = training_texts(seed)
    # Padding is BOS; the mask keeps it out of the loss.
    ids, mask = encode_batch(tokenizer, texts)

    r = RECIPE
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=ids.shape[1], n_embd=r["d_model"],
                        n_layer=r["n_layer"], n_head=r["n_head"], n_inner=r["d_mlp"],
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        bos_token_id=BOS_ID, eos_token_id=BOS_ID)
    model = build_model(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=r["lr"], betas=r["betas"],
                                  weight_decay=r["weight_decay"])
    steps = r["steps"]

    def lr_factor(step):  # linear warmup, then cosine decay to zero
        return min(1.0, (step + 1) / r["warmup"]) * 0.5 * (1 + math.cos(math.pi * step / steps))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    generator = torch.Generator().manual_seed(seed)
    log = {"recipe": {**r, "seed": seed, "world_seed": WORLD_SEED, "n_texts": len(texts),
                      "n_positions": ids.shape[1]}, "steps": [], "loss": []}
    model.train()
    for step in tqdm(range(steps), desc=NAME, disable=not progress):
        batch = torch.randint(0, len(texts), (r["batch_size"],), generator=generator)
        x, m = ids[batch], mask[batch]
        loss = masked_lm_loss(model, x, m)
        optimise(loss, model, optimizer, schedule, r["grad_clip"])
        log_loss(log, step, steps, loss)
    return model.eval(), tokenizer, log


def _ids(tokenizer, words):
    return torch.tensor(tokenizer.convert_tokens_to_ids(list(words)))


@torch.no_grad()
def measure(model, tokenizer):
    model.eval()
    world, facts, ioi = _splits()
    metrics = {}
    io, s = _ids(tokenizer, (e.io for e in ioi.test)), _ids(tokenizer, (e.s for e in ioi.test))
    rows = torch.arange(len(ioi.test))
    clean = last_token_logits(model, tokenizer, [e.prompt for e in ioi.test])
    corrupted = last_token_logits(model, tokenizer, [e.corrupted_prompt for e in ioi.test])
    metrics["ioi_accuracy"] = (clean.argmax(-1) == io).float().mean().item()
    metrics["ioi_logit_diff"] = (clean[rows, io] - clean[rows, s]).mean().item()
    metrics["ioi_abc_logit_diff"] = (corrupted[rows, io] - corrupted[rows, s]).mean().item()
    for key, prompts in (("facts_train_accuracy", facts.train),
                         ("facts_heldout_accuracy", facts.test)):
        logits = last_token_logits(model, tokenizer, [p.prompt for p in prompts])
        objects = _ids(tokenizer, (p.object for p in prompts))
        metrics[key] = (logits.argmax(-1) == objects).float().mean().item()

    # Probes read "[BOS] First Last" at "Last"; middle layers exclude the first and last block.
    middle = range(1, model.config.n_layer - 1)
    probes = name_probe_accuracies(model, tokenizer, world, PERSON_RELATIONS, middle,
                                   seed=WORLD_SEED)
    for relation, by_layer in probes.items():
        metrics[f"probe_{relation}_accuracy"], metrics[f"probe_{relation}_layer"] = (
            best_middle_block(by_layer, model.config.n_layer))
    return metrics
