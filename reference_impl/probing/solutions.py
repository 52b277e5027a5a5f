"""Chapter 02 reference solutions: probing.

Every exercise of the chapter is one function here. The chapter notebooks are generated from these
functions: the body after the docstring is the solution region that learners write themselves.

Conventions: a model is a ``transformers`` GPT-2 (``GPT2LMHeadModel``); token batches have shape
``(batch, pos)``, start with BOS and are padded on the right. Activations for probing have shape
``(n_layers + 1, batch, d_model)``: the residual stream after the embeddings, then after every
block. Example indices (``train``, ``test``) are 1-D ``torch.long`` tensors into the batch.
"""

import random
from collections import Counter

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

from reference_impl.hooks import run_with_cache
from reference_impl.world import fact_prompt

# ---------------------------------------------------------------------------------------------
# 1 · The residual stream, layer by layer
# ---------------------------------------------------------------------------------------------


def residual_stack(model, tokens, positions):
    """The residual stream at one position of each sequence, after the embeddings and after
    every block, from one forward pass.

    tokens: (batch, pos); positions: (batch,) the position to read in each sequence. Read
    ``blocks.0.hook_resid_pre`` (embeddings) and ``blocks.L.hook_resid_post`` for every layer L.
    Returns (n_layers + 1, batch, d_model).
    """
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{layer}.hook_resid_post"
                                           for layer in range(model.config.n_layer)]
    _, cache = run_with_cache(model, tokens, names=names)
    rows = torch.arange(tokens.shape[0])
    return torch.stack([cache[name][rows, positions] for name in names])


# ---------------------------------------------------------------------------------------------
# 2 · Probes, split by person
# ---------------------------------------------------------------------------------------------


def split_by_person(people, test_fraction, seed):
    """Hold out whole people: no person has examples on both sides.

    people: the person each example is about (a list of strings). Shuffle the distinct people
    with ``random.Random(seed)`` (sorted first, so the order of the examples does not matter) and
    hold out the first ``round(test_fraction × number of people)`` of them (at least one).
    Returns (train, test): sorted 1-D ``torch.long`` tensors of example indices.
    """
    distinct = sorted(set(people))
    random.Random(seed).shuffle(distinct)
    held_out = set(distinct[:max(1, round(test_fraction * len(distinct)))])
    test = [i for i, person in enumerate(people) if person in held_out]
    train = [i for i, person in enumerate(people) if person not in held_out]
    return torch.tensor(train, dtype=torch.long), torch.tensor(test, dtype=torch.long)


def validate_probe_data(activations, labels, train, test):
    """Raise ValueError, with one sentence saying what is wrong, for data no probe should be
    trained on: non-finite activations, labels that do not match the examples, a split whose
    halves share examples, or training labels of a single class."""
    n_examples = activations.shape[-2]
    if not torch.isfinite(activations).all():
        bad = int((~torch.isfinite(activations)).sum())
        raise ValueError(f"the activations contain {bad} NaN or infinite values: a probe cannot "
                         f"be fitted to them (look at how they were computed).")
    if len(labels) != n_examples:
        raise ValueError(f"there are {len(labels)} labels for {n_examples} examples: give one "
                         f"label per example.")
    shared = set(train.tolist()) & set(test.tolist())
    if shared:
        raise ValueError(f"train and test share {len(shared)} examples (for example index "
                         f"{min(shared)}): a probe scored on what it was trained on measures "
                         f"memory, not the representation.")
    if len(set(np.asarray(labels)[train.numpy()].tolist())) < 2:
        raise ValueError("the training labels have a single class: there is nothing for a "
                         "probe to tell apart.")


def linear_probe():
    """The chapter's linear probe: multinomial logistic regression with an L2 penalty of
    strength 1 / C, C = 0.1 (enough that the fit converges fast on separable data)."""
    return LogisticRegression(C=0.1, max_iter=1000)


def mlp_probe():
    """The chapter's more expressive probe: one hidden layer of 256 ReLU units."""
    return MLPClassifier(hidden_layer_sizes=(256,), max_iter=500, random_state=0)


def probe_by_layer(activations, labels, train, test, make_probe=linear_probe):
    """Train a probe on each layer's activations and score it on the held-out examples.

    activations: (n_layers + 1, batch, d_model); labels: one label per example (a list or a 1-D
    array); train, test: example indices. Call ``validate_probe_data`` first. For every layer, fit
    ``make_probe()`` on the training examples (as numpy arrays) and take its accuracy on the test
    examples (``probe.score``). Returns (n_layers + 1,) float32 accuracies.
    """
    validate_probe_data(activations, labels, train, test)
    labels = np.asarray(labels)
    scores = []
    for layer in activations:
        x = layer.detach().numpy()
        probe = make_probe().fit(x[train.numpy()], labels[train.numpy()])
        scores.append(probe.score(x[test.numpy()], labels[test.numpy()]))
    return torch.tensor(scores, dtype=torch.float32)


def majority_baseline(labels, train, test):
    """The accuracy of always answering the most common training label (a tie goes to the
    label that sorts first): the share of test examples that have it. Returns a Python float."""
    counts = Counter(np.asarray(labels)[train.numpy()].tolist())
    top = max(counts.values())
    majority = min(label for label, count in counts.items() if count == top)
    return float(np.mean(np.asarray(labels)[test.numpy()] == majority))


# ---------------------------------------------------------------------------------------------
# 3 · Many properties, one chart
# ---------------------------------------------------------------------------------------------


def probe_properties(model, tokens, properties, train, test):
    """Probe every property at its own position of the same sentences, layer by layer.

    properties: ``{name: (positions, labels)}``, positions (batch,) the token each property is
    read at. Returns ``{name: (accuracies, baseline)}``: ``probe_by_layer`` on
    ``residual_stack(model, tokens, positions)`` with the linear probe, and the
    ``majority_baseline`` of the property's labels.
    """
    results = {}
    for name, (positions, labels) in properties.items():
        activations = residual_stack(model, tokens, positions)
        results[name] = (probe_by_layer(activations, labels, train, test),
                         majority_baseline(labels, train, test))
    return results


# ---------------------------------------------------------------------------------------------
# 4 · Control tasks and selectivity (Hewitt & Liang, 2019)
# ---------------------------------------------------------------------------------------------


def control_task(people, labels, seed):
    """A control label for every example: each distinct person gets one label drawn at random
    from the task's labels (so the control task has the task's label distribution), and every
    example of that person carries it.

    Draw with ``random.Random(seed)``: for each person in sorted order, ``rng.choice(labels)``.
    Returns a list, one label per example.
    """
    rng = random.Random(seed)
    drawn = {person: rng.choice(list(labels)) for person in sorted(set(people))}
    return [drawn[person] for person in people]


def selectivity(activations, labels, control_labels, train, test, make_probe=linear_probe):
    """Task accuracy, control accuracy and their difference, the probe's selectivity.

    activations: (batch, d_model), one layer. Train one ``make_probe()`` on the task labels and
    another on the control labels, with the same split, and score each on the test examples.
    Returns three Python floats (task, control, task - control).
    """
    task = probe_by_layer(activations[None], labels, train, test, make_probe).item()
    control = probe_by_layer(activations[None], control_labels, train, test, make_probe).item()
    return task, control, task - control


# ---------------------------------------------------------------------------------------------
# 5 · Amnesic probing (Elazar et al., 2021)
# ---------------------------------------------------------------------------------------------


def project_out(x, directions):
    """Remove from ``x`` (..., d_model) every component in the span of ``directions``
    (k, d_model), which need not be orthogonal, normalised or independent: x − x Q Qᵀ for an
    orthonormal basis Q of that span, the left singular vectors of directionsᵀ
    (``torch.linalg.svd``) whose singular values exceed 1e-5 of the largest. Returns a new
    tensor."""
    if len(directions) == 0:
        return x.clone()
    u, s, _ = torch.linalg.svd(directions.T.to(x.dtype), full_matrices=False)
    basis = u[:, s > 1e-5 * s.max()]
    return x - (x @ basis) @ basis.T


def nullspace_directions(activations, labels, train, rounds, make_probe=linear_probe):
    """The directions a linear probe reads, found again and again until none is left (iterative
    nullspace projection, Ravfogel et al. 2020, as amnesic probing uses it).

    activations: (batch, d_model), one layer. In each of ``rounds`` rounds: project the directions
    found so far out of the activations (``project_out``), fit ``make_probe()`` to the training
    examples, and add the rows of its ``coef_`` (one direction per class) to the directions.
    Returns (k, d_model) float32, the directions of every round stacked in order.
    """
    labels = np.asarray(labels)
    directions = activations.new_zeros(0, activations.shape[-1])
    for _ in range(rounds):
        x = project_out(activations, directions).detach().numpy()
        probe = make_probe().fit(x[train.numpy()], labels[train.numpy()])
        found = torch.tensor(probe.coef_, dtype=activations.dtype)
        directions = torch.cat([directions, found])
    return directions


def amnesic_recall(model, tokens, name_positions, last_positions, layer, directions, targets):
    """The model's accuracy on fact prompts when the ``directions`` are projected out of the
    residual stream at the last name token, after block ``layer``.

    tokens: (batch, pos) prompts; name_positions, last_positions: (batch,) each prompt's last
    name token and last real token; targets: (batch,) token ids of the true objects. Patch
    ``blocks.{layer}.hook_resid_post`` (``run_with_cache(..., patches=...)``) so that at each
    prompt's name position it holds ``project_out`` of itself, and compare the top-1 prediction
    at each prompt's last position with its target. Returns a Python float.
    """
    rows = torch.arange(tokens.shape[0])

    def forget(activation, name):
        activation = activation.clone()
        activation[rows, name_positions] = project_out(activation[rows, name_positions],
                                                       directions)
        return activation

    logits, _ = run_with_cache(model, tokens, names=[],
                               patches={f"blocks.{layer}.hook_resid_post": forget})
    return (logits[rows, last_positions].argmax(dim=-1) == targets).float().mean().item()


# ---------------------------------------------------------------------------------------------
# 6 · Integrated gradients (Sundararajan et al., 2017)
# ---------------------------------------------------------------------------------------------


def integrated_gradients(model, tokens, target, baseline, steps):
    """Attribute the logit of ``target`` at the final position to each input token.

    tokens, baseline: (pos,) token ids (the baseline is the input the path starts from). Take the
    token embeddings x = wte(tokens), x' = wte(baseline), run the model on ``inputs_embeds`` at the
    ``steps`` points x' + α (x − x') with α = (k + ½) / steps, k = 0 .. steps − 1 (the midpoint
    rule), in one batch, and average the gradients of the target logit with respect to those
    inputs. The attribution of token i is Σ_d (x − x')_{i,d} × mean gradient_{i,d}.
    Returns (pos,) attributions; they sum to about f(x) − f(x').
    """
    embed = model.get_input_embeddings()
    with torch.no_grad():
        x, x0 = embed(tokens), embed(baseline)
    alphas = (torch.arange(steps, dtype=x.dtype) + 0.5) / steps
    path = (x0 + alphas[:, None, None] * (x - x0)).requires_grad_(True)
    logits = model(inputs_embeds=path).logits[:, -1, target]
    gradients, = torch.autograd.grad(logits.sum(), path)
    return ((x - x0) * gradients.mean(dim=0)).sum(dim=-1)


# ---------------------------------------------------------------------------------------------
# 7 · A probe that finds nothing
# ---------------------------------------------------------------------------------------------


def true_false_statements(world, people, relation, seed):
    """Two statements per person, "{person} was born in {city}" style (the relation's first
    template, object included): one with the true object (label 1) and one with another object
    of the same relation drawn with ``random.Random(seed)`` (label 0), in that order.

    The other objects are the relation's objects in the world, sorted, minus the true one; draw
    one with ``rng.choice`` for each person in the order given. Returns (texts, labels).
    """

    rng = random.Random(seed)
    objects = sorted({fact.object for fact in world.facts_for(relation)})
    texts, labels = [], []
    for person in people:
        true = world.lookup(person, relation)
        false = rng.choice([o for o in objects if o != true])
        for obj, label in ((true, 1), (false, 0)):
            texts.append(fact_prompt(person, relation, 0, obj).text)
            labels.append(label)
    return texts, labels


# ---------------------------------------------------------------------------------------------
# 8 · A model that lies
# ---------------------------------------------------------------------------------------------


def logit_lens(model, residuals):
    """The token each read-out point of the residual stream would predict if the model stopped
    there (the logit lens).

    residuals: (n_layers + 1, batch, d_model), as ``residual_stack`` returns them. Every one of
    them, the last block's output included, is taken before the final LayerNorm: apply
    ``model.transformer.ln_f``, then the unembedding ``model.lm_head``, and take the top token.
    Returns (n_layers + 1, batch) ``torch.long`` token ids.
    """
    with torch.no_grad():
        return model.lm_head(model.transformer.ln_f(residuals)).argmax(dim=-1)


def mass_mean_probe(activations, labels, train, test):
    """The simplest linear probe for a yes-or-no property: the difference of the two classes'
    mean activations (Marks & Tegmark 2023, mass-mean probing), layer by layer.

    activations: (n_layers + 1, batch, d_model); labels: 1 or True for the examples that have
    the property, 0 or False for those that do not; train, test: example indices. Call
    ``validate_probe_data`` first. For every layer, from the training examples only: the
    direction is mean(label 1) − mean(label 0), not normalised, and the threshold is the
    projection onto it of the midpoint of the two means. A test example is classed 1 when its
    projection exceeds the threshold. Returns (directions (n_layers + 1, d_model), accuracies
    (n_layers + 1,)), both float32.
    """
    validate_probe_data(activations, labels, train, test)
    positive = torch.as_tensor(np.asarray(labels).astype(bool))
    fit = torch.zeros(activations.shape[1], dtype=torch.bool)
    fit[train] = True
    yes = activations[:, fit & positive].mean(dim=1)
    no = activations[:, fit & ~positive].mean(dim=1)
    directions = yes - no
    thresholds = (((yes + no) / 2) * directions).sum(dim=-1)
    projections = torch.einsum("lnd,ld->ln", activations[:, test], directions)
    predicted = projections > thresholds[:, None]
    accuracies = (predicted == positive[test]).float().mean(dim=1)
    return directions.float(), accuracies


def steered_predictions(model, tokens, last_positions, layer, direction, scale):
    """The model's top-1 next token when ``scale × direction`` is added to the residual stream
    after block ``layer``, at each prompt's last position only.

    tokens: (batch, pos) prompts padded on the right; last_positions: (batch,) each prompt's last
    real token; direction: (d_model,). Patch ``blocks.{layer}.hook_resid_post``
    (``run_with_cache(..., patches=...)``) and read the top token at each prompt's last position.
    Returns (batch,) ``torch.long`` token ids.
    """
    rows = torch.arange(tokens.shape[0])

    def steer(activation, name):
        activation = activation.clone()
        activation[rows, last_positions] += scale * direction
        return activation

    logits, _ = run_with_cache(model, tokens, names=[],
                               patches={f"blocks.{layer}.hook_resid_post": steer})
    return logits[rows, last_positions].argmax(dim=-1)
