"""facts-6l: a 6-layer GPT-2 whose fact recall runs through an MLP at the subject's last token.

Chapter 02 probes it for what it knows about a person at the last name token. Chapter 06
(locating and editing facts) needs a model in which causal tracing finds the facts at the
subject, as Meng et al. (2022) found in GPT-2 XL, so that a rank-one edit of that MLP is an edit
of the right place. A small model trained only on fact sentences does not work like that:
the final position gathers the name with attention and looks the fact up with its own MLPs.

The recipe that changes this trains on two kinds of text over ``generate_world(0)`` (with 20
jobs and 20 belongings):

- a biography line for every person, with the person's birthplace, job and belonging in a random
  order right after the name ("Zoe Jensen piano , Tamsford , baker ."), so the next word after
  any name is one of its attributes;
- fact sentences ("Zoe Jensen was born in Tamsford") for only a quarter of the people, the
  "asked" people (their training paraphrases from ``fact_split``).

Most people are only ever described, never asked about, so the model has to answer questions from
what the name itself brings along; it then answers the asked people the same way. Causal tracing
shows the route: the layer-0 MLP at the last name token turns the two name tokens into the person,
and the final position reads that from there rather than rebuilding the person from the tokens.
The attributes themselves reach the name token later, in blocks 2-4, where linear probes read them.
"""

import random

import torch
from tqdm.auto import tqdm

from reference_impl.rome.solutions import (edit_scores, edited, key_second_moment, noise_scale,
                                           rome_weight, subject_noise, trace, with_ridge)
from reference_impl.world import build_tokenizer, fact_prompts, fact_split, generate_world
from reference_impl.zoo.bars import Bar
from reference_impl.zoo.probes import best_middle_block, name_probe_accuracies
from reference_impl.zoo.training import (adamw_with_linear_decay, encode_batch,
                                         last_token_logits, log_loss, masked_lm_loss, new_gpt2,
                                         optimise)

NAME = "facts-6l"
DESCRIPTION = (
    "A 6-layer GPT-2 (d_model 96, 4 heads, MLPs, 0.7M parameters) trained from scratch on "
    "biography lines for all 300 people of generate_world(0, n_occupations=20, n_objects=20) "
    "(birthplace, job and belonging in a random order right after the name) and on fact "
    "sentences about a quarter of them. Causal "
    "tracing finds its facts at the subject's last token, in the layer-0 MLP, and a rank-one "
    "edit of that MLP changes them; linear probes read each attribute at the last name token."
)

WORLD_SEED = 0
# The course's world with more jobs and belongings than its default 12, so that each attribute
# has 20 possible values and a guess from the kind of word alone is rarely right.
WORLD = dict(n_occupations=20, n_objects=20)
RELATIONS = ("born_in", "works_as", "owns")
RECIPE = dict(n_layer=6, d_model=96, n_head=4, d_mlp=384, asked_fraction=0.25,
              biography_fraction=0.6, steps=3000, batch_size=64, lr=2e-3, betas=(0.9, 0.98),
              weight_decay=0.1, warmup=100, grad_clip=1.0, n_positions=20,
              loss="all tokens (padding masked)")
# noise: 3x the subject embeddings' std, 10 noisy copies; ten noise seeds (prompt i of seed s
# draws its noise with seed s + i)
TRACE = dict(prompts=100, window=3, kind="mlp", samples=10, seeds=tuple(range(0, 10_000, 1000)))
EDITS = 50
FIRST_HALF = range((RECIPE["n_layer"] + 1) // 2)  # windows that start at layer 0, 1 or 2

BARS = (
    Bar("facts_train_accuracy", ">=", 0.95, "fact recall on trained prompts (asked people)"),
    Bar("facts_heldout_accuracy", ">=", 0.90,
        "fact recall on held-out (subject, template) paraphrases (asked people)"),
    Bar("subject_mlp_recovery", ">=", 0.40,
        "share of the effect recovered by restoring MLP outputs at the subject's last token, "
        "best window of 3 layers, 100 prompts, mean over 10 noise seeds"),
    Bar("subject_mlp_window_start", "<", 3,
        "first layer of the best such window on average (a window that starts at layer 0, 1 or "
        "2)"),
    Bar("subject_minus_final_recovery", ">", 0.0,
        "that share minus the best window of 3 MLP layers at the final position that starts at "
        "layer 0, 1 or 2 (mean over the seeds)"),
    Bar("rome_paraphrase", ">=", 0.90,
        "ROME edits of the MLP at the best layer: share of the held-out paraphrases that prefer "
        "the new object (50 requests)"),
    Bar("rome_neighbourhood", ">=", 0.90,
        "share of the neighbours (same relation and object) that keep their object after those "
        "edits"),
) + tuple(
    Bar(f"probe_{relation}_accuracy", ">=", 0.90,
        f"linear probe for {relation} at the last name token, best middle block (1-4), "
        "60 held-out people")
    for relation in RELATIONS)


def world_and_people():
    """The world, the fact split, and the asked people (the rest appear in biographies only)."""
    world = generate_world(WORLD_SEED, **WORLD)
    names = [p.name for p in world.people]
    random.Random(WORLD_SEED).shuffle(names)
    asked = set(names[:int(RECIPE["asked_fraction"] * len(names))])
    split = fact_split(world, seed=WORLD_SEED, relations=RELATIONS)
    split = type(split)([p for p in split.train if p.subject in asked],
                        [p for p in split.test if p.subject in asked])
    return world, split, asked


def biography(world, person, rng):
    objects = [world.lookup(person, r) for r in RELATIONS]
    rng.shuffle(objects)
    return f"{person} {' , '.join(objects)} ."


def training_text(world, split, rng):
    """One training line: a biography of anybody, or a fact sentence about an asked person."""
    if rng.random() < RECIPE["biography_fraction"]:
        return biography(world, rng.choice(world.people).name, rng)
    return rng.choice(split.train).text


def train(seed: int = 0, progress: bool = True):
    torch.manual_seed(seed)
    world, split, asked = world_and_people()
    tokenizer = build_tokenizer(world)
    model = new_gpt2(tokenizer, RECIPE)
    optimizer, schedule = adamw_with_linear_decay(model, RECIPE)
    r, steps = RECIPE, RECIPE["steps"]
    rng = random.Random(seed)
    log = {"recipe": {**r, "seed": seed, "world_seed": WORLD_SEED, "relations": RELATIONS,
                      "asked_people": len(asked)}, "steps": [], "loss": []}
    model.train()
    for step in tqdm(range(steps), desc=NAME, disable=not progress):
        texts = [training_text(world, split, rng) for _ in range(r["batch_size"])]
        x, mask = encode_batch(tokenizer, texts, r["n_positions"])
        loss = masked_lm_loss(model, x, mask)
        optimise(loss, model, optimizer, schedule, r["grad_clip"])
        log_loss(log, step, steps, loss)
    return model.eval(), tokenizer, log


def prompt_ids(tokenizer, prompt):
    """Token ids of a fact prompt and the positions (start, stop) of its subject."""
    ids = tokenizer(prompt.prompt).input_ids
    start = 1 + prompt.subject_span[0]  # BOS comes first
    return torch.tensor(ids), (start, start + prompt.subject_span[1] - prompt.subject_span[0])


def predictions(model, tokenizer, prompts):
    """The model's top-1 next word after each prompt."""
    return last_token_logits(model, tokenizer, [p.prompt for p in prompts]).argmax(-1)


def accuracy(model, tokenizer, prompts):
    objects = torch.tensor(tokenizer.convert_tokens_to_ids([p.object for p in prompts]))
    return (predictions(model, tokenizer, prompts) == objects).float().mean().item()


def traced_prompts(model, tokenizer, split, n):
    """The first ``n`` trained prompts (in a seeded order) that the model answers correctly."""
    prompts = random.Random(WORLD_SEED).sample(split.train, len(split.train))
    right = predictions(model, tokenizer, prompts) == torch.tensor(
        tokenizer.convert_tokens_to_ids([p.object for p in prompts]))
    return [p for p, ok in zip(prompts, right.tolist()) if ok][:n]


def recovery(model, tokenizer, prompts, window, seed):
    """Share of the subject-corruption effect recovered by restoring MLP outputs, per window
    start (rows) at the subject's last token and at the final position (columns): the indirect
    effects and the total effects each averaged over the prompts first."""
    restored, clean, corrupted = 0.0, 0.0, 0.0
    for i, prompt in enumerate(prompts):
        ids, (start, stop) = prompt_ids(tokenizer, prompt)
        target = tokenizer.convert_tokens_to_ids(prompt.object)
        noise = subject_noise(TRACE["samples"], stop - start, model.config.n_embd,
                              noise_scale(model, ids[start:stop]), seed=seed + i)
        t = trace(model, ids, (start, stop), target, noise, kind=TRACE["kind"], window=window,
                  positions=[stop - 1, len(ids) - 1])
        restored, clean, corrupted = restored + t.restored, clean + t.clean, corrupted + t.corrupted
    return (restored - corrupted) / (clean - corrupted)


def key_text(world, split, n=2000, seed=1):
    """Training-like text, for the keys' second moment C of a ROME edit."""
    rng = random.Random(seed)
    return [training_text(world, split, rng) for _ in range(n)]


def rome_scores(model, tokenizer, layer):
    """The chapter 06 scores of ROME edits at ``layer``, averaged over ``EDITS`` requests (each
    score over the requests that have prompts for it). Every edit is undone before the next."""
    from reference_impl.rome.data import edit_prompts, edit_requests, key_text_batch, target_id

    second_moment = with_ridge(key_second_moment(model, *key_text_batch(tokenizer), layer))
    totals, counts = {}, {}
    for request in edit_requests(model, tokenizer, EDITS):
        prompts, kl_prompts = edit_prompts(tokenizer, request)
        weight, _ = rome_weight(model, prompts, kl_prompts, layer,
                                target_id(tokenizer, request.new_object), second_moment)
        with edited(model, layer, weight):
            for name, value in edit_scores(model, tokenizer, request).items():
                if value == value:  # NaN: no prompts for this score
                    totals[name] = totals.get(name, 0.0) + value
                    counts[name] = counts.get(name, 0) + 1
    return {f"rome_{name}": totals[name] / counts[name] for name in totals}


def measure(model, tokenizer):
    model.eval()
    world, split, asked = world_and_people()
    described_only = [p for p in fact_prompts(world, relations=RELATIONS)
                      if p.subject not in asked]
    metrics = {"facts_train_accuracy": accuracy(model, tokenizer, split.train),
               "facts_heldout_accuracy": accuracy(model, tokenizer, split.test),
               "facts_unasked_accuracy": accuracy(model, tokenizer, described_only)}

    prompts = traced_prompts(model, tokenizer, split, TRACE["prompts"])
    n_layer, window = model.config.n_layer, TRACE["window"]
    by_seed = torch.stack([recovery(model, tokenizer, prompts, window, seed)
                           for seed in TRACE["seeds"]])  # (seed, window start, position)
    subject_best = by_seed[:, :, 0].max(dim=1).values
    final_best = by_seed[:, list(FIRST_HALF), 1].max(dim=1).values
    metrics["subject_mlp_recovery"] = subject_best.mean().item()
    metrics["subject_mlp_recovery_std"] = subject_best.std().item()
    metrics["subject_mlp_window_start"] = int(by_seed[:, :, 0].mean(dim=0).argmax())
    metrics["final_mlp_recovery"] = final_best.mean().item()
    metrics["final_mlp_recovery_std"] = final_best.std().item()
    metrics["subject_minus_final_recovery"] = (metrics["subject_mlp_recovery"]
                                               - metrics["final_mlp_recovery"])
    single = recovery(model, tokenizer, prompts, 1, TRACE["seeds"][0])
    layer = int(single[:, 0].argmax())
    metrics["rome_layer"] = layer
    metrics["subject_mlp_layer_recovery"] = single[layer, 0].item()
    # Where the attributes themselves become readable at the name: every block is reported, the
    # best middle block (neither the first nor the last) is a bar.
    probes = name_probe_accuracies(model, tokenizer, world, RELATIONS, range(n_layer),
                                   seed=WORLD_SEED)
    for relation, by_layer in probes.items():
        for block, score in by_layer.items():
            metrics[f"probe_{relation}_block{block}"] = score
        metrics[f"probe_{relation}_accuracy"], metrics[f"probe_{relation}_layer"] = (
            best_middle_block(by_layer, n_layer))
    metrics.update(rome_scores(model, tokenizer, layer))
    return metrics


def findings(metrics):
    """The zoo page's summary of where the fact sits, written from measured metrics."""
    n_layer = RECIPE["n_layer"]
    lines = [f"The MLP of layer {metrics['rome_layer']} alone, restored at the last name token, "
             f"recovers {metrics['subject_mlp_layer_recovery']:.2f} of the effect (the best "
             f"3-layer window: {metrics['subject_mlp_recovery']:.2f}). A linear probe at the last "
             "name token of \"[BOS] First Last\" (trained on 240 people, tested on 60) reads "
             "the attributes after each block with accuracy:", "",
             "| attribute | " + " | ".join(f"block {b}" for b in range(n_layer)) + " |",
             "|---|" + "---|" * n_layer]
    for relation in RELATIONS:
        lines.append(f"| {relation} | " + " | ".join(
            f"{metrics[f'probe_{relation}_block{b}']:.2f}" for b in range(n_layer)) + " |")
    return "\n".join(lines)
