"""Linear probes for what a zoo model knows about a person at the last token of the name."""

import random

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from reference_impl.hooks import run_with_cache

TRAIN_FRACTION = 0.8  # of the people, for the probes; the rest are held out


@torch.no_grad()
def name_probe_accuracies(model, tokenizer, world, relations, layers, seed=0):
    """``{relation: {layer: accuracy}}``: a logistic-regression probe for each attribute, read
    from ``blocks.{layer}.hook_resid_post`` at "Last" in "[BOS] First Last", trained on 80 % of the
    people (a seeded shuffle) and scored on the other 20 %."""
    people = [p.name for p in world.people]
    names = torch.tensor([tokenizer(name).input_ids for name in people])
    _, cache = run_with_cache(model, names, names=[f"blocks.{l}.hook_resid_post" for l in layers])
    order = list(range(len(people)))
    random.Random(seed).shuffle(order)
    cut = int(TRAIN_FRACTION * len(order))
    train, test = order[:cut], order[cut:]
    accuracies = {}
    for relation in relations:
        labels = np.array([world.lookup(name, relation) for name in people])
        accuracies[relation] = {}
        for layer in layers:
            x = cache[f"blocks.{layer}.hook_resid_post"][:, -1].numpy()
            probe = LogisticRegression(max_iter=2000).fit(x[train], labels[train])
            accuracies[relation][layer] = probe.score(x[test], labels[test])
    return accuracies


def best_middle_block(accuracies, n_layer):
    """``(accuracy, block)`` of the best block that is neither the first nor the last (a tie
    goes to the later block), from one relation's ``{block: accuracy}``."""
    return max((accuracies[block], block) for block in range(1, n_layer - 1))
