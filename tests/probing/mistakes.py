"""Realistic wrong answers to the chapter 02 exercises. Every one must be rejected by its check.

Each is written the way a learner would write it, in the notebook's names (``validate_probe_data``,
``linear_probe``, ``residual_stack``, ``probe_by_layer``, ``project_out`` ... refer to whatever the
notebook defines; the checks hand over the reference versions)."""

import inspect
import random
from collections import Counter

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from reference_impl.hooks import run_with_cache
from reference_impl.probing.solutions import linear_probe as _given_probe
from reference_impl.world import fact_prompt

# The notebook's given probe, for the default arguments below: a copy of the reference's, defined
# here as the notebook defines it (not the solution module's own function).
exec(inspect.getsource(_given_probe))


# residual_stack -------------------------------------------------------------------------------

def _stack(model, tokens, positions, names):
    _, cache = run_with_cache(model, tokens, names=names)
    rows = torch.arange(tokens.shape[0])
    return torch.stack([cache[name][rows, positions] for name in names])


def _post(model):
    return [f"blocks.{layer}.hook_resid_post" for layer in range(model.config.n_layer)]


def stack_resid_post_only(model, tokens, positions):
    return _stack(model, tokens, positions, _post(model))


def stack_resid_pre_of_every_block(model, tokens, positions):
    return _stack(model, tokens, positions,
                  [f"blocks.{layer}.hook_resid_pre" for layer in range(model.config.n_layer)])


def stack_last_position(model, tokens, positions):
    names = ["blocks.0.hook_resid_pre"] + _post(model)
    _, cache = run_with_cache(model, tokens, names=names)
    return torch.stack([cache[name][:, -1] for name in names])


def stack_batch_first(model, tokens, positions):
    names = ["blocks.0.hook_resid_pre"] + _post(model)
    return _stack(model, tokens, positions, names).transpose(0, 1)


def stack_every_position_for_every_row(model, tokens, positions):
    names = ["blocks.0.hook_resid_pre"] + _post(model)
    _, cache = run_with_cache(model, tokens, names=names)
    return torch.stack([cache[name][:, positions] for name in names])


def stack_hidden_states(model, tokens, positions):
    with torch.no_grad():
        hidden = model(tokens, output_hidden_states=True).hidden_states  # the last has ln_f
    rows = torch.arange(tokens.shape[0])
    return torch.stack([h[rows, positions] for h in hidden])


def stack_ln_final_for_last_layer(model, tokens, positions):
    names = ["blocks.0.hook_resid_pre"] + _post(model)[:-1] + ["ln_final.hook_normalized"]
    return _stack(model, tokens, positions, names)


# split_by_person ------------------------------------------------------------------------------

def _indices(people, held_out):
    test = [i for i, person in enumerate(people) if person in held_out]
    train = [i for i, person in enumerate(people) if person not in held_out]
    return torch.tensor(train, dtype=torch.long), torch.tensor(test, dtype=torch.long)


def split_by_example(people, test_fraction, seed):
    order = list(range(len(people)))
    random.Random(seed).shuffle(order)
    n_test = max(1, round(test_fraction * len(people)))
    return (torch.tensor(sorted(order[n_test:]), dtype=torch.long),
            torch.tensor(sorted(order[:n_test]), dtype=torch.long))


def split_same_people_every_seed(people, test_fraction, seed):
    distinct = sorted(set(people))
    return _indices(people, set(distinct[:max(1, round(test_fraction * len(distinct)))]))


def split_fraction_of_examples(people, test_fraction, seed):
    distinct = sorted(set(people))
    random.Random(seed).shuffle(distinct)
    return _indices(people, set(distinct[:max(1, round(test_fraction * len(people)))]))


def split_lists(people, test_fraction, seed):
    distinct = sorted(set(people))
    random.Random(seed).shuffle(distinct)
    train, test = _indices(people, set(distinct[:max(1, round(test_fraction * len(distinct)))]))
    return train.tolist(), test.tolist()


def split_grouped_by_person(people, test_fraction, seed):
    distinct = sorted(set(people))
    random.Random(seed).shuffle(distinct)
    n_test = max(1, round(test_fraction * len(distinct)))
    test = [i for person in distinct[:n_test] for i, p in enumerate(people) if p == person]
    train = [i for person in distinct[n_test:] for i, p in enumerate(people) if p == person]
    return torch.tensor(train, dtype=torch.long), torch.tensor(test, dtype=torch.long)


def split_first_appearance(people, test_fraction, seed):
    distinct = list(dict.fromkeys(people))
    random.Random(seed).shuffle(distinct)
    return _indices(people, set(distinct[:max(1, round(test_fraction * len(distinct)))]))


def split_without_minimum(people, test_fraction, seed):
    distinct = sorted(set(people))
    random.Random(seed).shuffle(distinct)
    return _indices(people, set(distinct[:round(test_fraction * len(distinct))]))


def split_swapped(people, test_fraction, seed):
    distinct = sorted(set(people))
    random.Random(seed).shuffle(distinct)
    train, test = _indices(people, set(distinct[:max(1, round(test_fraction * len(distinct)))]))
    return test, train


# probe_by_layer -------------------------------------------------------------------------------

def _scores(activations, labels, fit_on, score_on, make_probe=linear_probe, layers=None):
    labels = np.asarray(labels)
    scores = []
    for layer in (layers if layers is not None else activations):
        x = layer.detach().numpy()
        probe = make_probe().fit(x[fit_on.numpy()], labels[fit_on.numpy()])
        scores.append(probe.score(x[score_on.numpy()], labels[score_on.numpy()]))
    return scores


def probe_scored_on_train(activations, labels, train, test, make_probe=linear_probe):
    validate_probe_data(activations, labels, train, test)
    return torch.tensor(_scores(activations, labels, train, train, make_probe),
                        dtype=torch.float32)


def probe_train_test_swapped(activations, labels, train, test, make_probe=linear_probe):
    validate_probe_data(activations, labels, train, test)
    return torch.tensor(_scores(activations, labels, test, train, make_probe),
                        dtype=torch.float32)


def probe_last_layer_every_row(activations, labels, train, test, make_probe=linear_probe):
    validate_probe_data(activations, labels, train, test)
    layer = activations[-1]
    return torch.tensor(_scores(activations, labels, train, test, make_probe,
                                layers=[layer] * len(activations)), dtype=torch.float32)


def probe_without_validation(activations, labels, train, test, make_probe=linear_probe):
    return torch.tensor(_scores(activations, labels, train, test, make_probe),
                        dtype=torch.float32)


def probe_returns_list(activations, labels, train, test, make_probe=linear_probe):
    validate_probe_data(activations, labels, train, test)
    return _scores(activations, labels, train, test, make_probe)


def probe_percentages(activations, labels, train, test, make_probe=linear_probe):
    validate_probe_data(activations, labels, train, test)
    return 100 * torch.tensor(_scores(activations, labels, train, test, make_probe),
                              dtype=torch.float32)


def probe_ignores_make_probe(activations, labels, train, test, make_probe=linear_probe):
    validate_probe_data(activations, labels, train, test)
    return torch.tensor(_scores(activations, labels, train, test, linear_probe),
                        dtype=torch.float32)


def probe_float64(activations, labels, train, test, make_probe=linear_probe):
    validate_probe_data(activations, labels, train, test)
    return torch.tensor(np.array(_scores(activations, labels, train, test, make_probe)))


def probe_own_checks_without_label_count(activations, labels, train, test,
                                         make_probe=linear_probe):
    if not torch.isfinite(activations).all():
        raise ValueError("the activations are not finite")
    if set(train.tolist()) & set(test.tolist()):
        raise ValueError("train and test overlap")
    return torch.tensor(_scores(activations, labels, train, test, make_probe),
                        dtype=torch.float32)


def probe_checks_with_assert(activations, labels, train, test, make_probe=linear_probe):
    assert not set(train.tolist()) & set(test.tolist()), "train and test overlap"
    assert len(labels) == activations.shape[1], "one label per example"
    return torch.tensor(_scores(activations, labels, train, test, make_probe),
                        dtype=torch.float32)


def probe_cleans_nan(activations, labels, train, test, make_probe=linear_probe):
    activations = torch.nan_to_num(activations)  # "fixes" broken activations instead of refusing
    validate_probe_data(activations, labels, train, test)
    return torch.tensor(_scores(activations, labels, train, test, make_probe),
                        dtype=torch.float32)


def probe_skips_layers_it_cannot_fit(activations, labels, train, test, make_probe=linear_probe):
    if not torch.isfinite(activations).all():
        raise ValueError("the activations are not finite")
    if len(labels) != activations.shape[1]:
        raise ValueError("one label per example")
    if set(train.tolist()) & set(test.tolist()):
        raise ValueError("train and test overlap")
    labels = np.asarray(labels)
    scores = []
    for layer in activations:
        x = layer.numpy()
        try:
            probe = make_probe().fit(x[train.numpy()], labels[train.numpy()])
            scores.append(probe.score(x[test.numpy()], labels[test.numpy()]))
        except ValueError:  # a layer the probe cannot be fitted to scores 0
            scores.append(0.0)
    return torch.tensor(scores, dtype=torch.float32)


def probe_hangs_on_shared_examples(activations, labels, train, test, make_probe=linear_probe):
    while set(train.tolist()) & set(test.tolist()):
        pass
    validate_probe_data(activations, labels, train, test)
    return torch.tensor(_scores(activations, labels, train, test, make_probe),
                        dtype=torch.float32)


# majority_baseline ----------------------------------------------------------------------------

def _share(labels, test, label):
    return float(np.mean(np.asarray(labels)[test.numpy()] == label))


def majority_of_test_labels(labels, train, test):
    counts = Counter(np.asarray(labels)[test.numpy()].tolist())
    return _share(labels, test, min(counts, key=lambda label: (-counts[label], label)))


def majority_of_all_labels(labels, train, test):
    counts = Counter(np.asarray(labels).tolist())
    return _share(labels, test, min(counts, key=lambda label: (-counts[label], label)))


def majority_one_over_classes(labels, train, test):
    return 1 / len(set(np.asarray(labels).tolist()))


def majority_first_seen_wins_ties(labels, train, test):
    label, _ = Counter(np.asarray(labels)[train.numpy()].tolist()).most_common(1)[0]
    return _share(labels, test, label)


def majority_count(labels, train, test):
    counts = Counter(np.asarray(labels)[train.numpy()].tolist())
    majority = min(counts, key=lambda label: (-counts[label], label))
    return int((np.asarray(labels)[test.numpy()] == majority).sum())


def majority_tensor(labels, train, test):
    counts = Counter(np.asarray(labels)[train.numpy()].tolist())
    majority = min(counts, key=lambda label: (-counts[label], label))
    return torch.tensor(np.asarray(labels)[test.numpy()] == majority).float().mean()


# probe_properties -----------------------------------------------------------------------------

def properties_same_positions(model, tokens, properties, train, test):
    first_positions = next(iter(properties.values()))[0]
    activations = residual_stack(model, tokens, first_positions)
    return {name: (probe_by_layer(activations, labels, train, test),
                   majority_baseline(labels, train, test))
            for name, (_, labels) in properties.items()}


def properties_last_position(model, tokens, properties, train, test):
    last = torch.full((tokens.shape[0],), tokens.shape[1] - 1)
    activations = residual_stack(model, tokens, last)
    return {name: (probe_by_layer(activations, labels, train, test),
                   majority_baseline(labels, train, test))
            for name, (_, labels) in properties.items()}


def properties_baseline_of_all_labels(model, tokens, properties, train, test):
    everyone = torch.arange(tokens.shape[0])
    return {name: (probe_by_layer(residual_stack(model, tokens, positions), labels, train, test),
                   majority_baseline(labels, everyone, everyone))
            for name, (positions, labels) in properties.items()}


def properties_only_accuracies(model, tokens, properties, train, test):
    return {name: probe_by_layer(residual_stack(model, tokens, positions), labels, train, test)
            for name, (positions, labels) in properties.items()}


def properties_return_in_loop(model, tokens, properties, train, test):
    results = {}
    for name, (positions, labels) in properties.items():
        activations = residual_stack(model, tokens, positions)
        results[name] = (probe_by_layer(activations, labels, train, test),
                         majority_baseline(labels, train, test))
        return results


def properties_baseline_first(model, tokens, properties, train, test):
    return {name: (majority_baseline(labels, train, test),
                   probe_by_layer(residual_stack(model, tokens, positions), labels, train, test))
            for name, (positions, labels) in properties.items()}


# control_task ---------------------------------------------------------------------------------

def control_per_example(people, labels, seed):
    rng = random.Random(seed)
    return [rng.choice(list(labels)) for _ in people]


def control_from_distinct_classes(people, labels, seed):
    rng = random.Random(seed)
    classes = sorted(set(labels))
    drawn = {person: rng.choice(classes) for person in sorted(set(people))}
    return [drawn[person] for person in people]


def control_first_appearance(people, labels, seed):
    rng = random.Random(seed)
    drawn = {}
    for person in people:
        if person not in drawn:
            drawn[person] = rng.choice(list(labels))
    return [drawn[person] for person in people]


def control_ignores_seed(people, labels, seed):
    rng = random.Random(0)
    drawn = {person: rng.choice(list(labels)) for person in sorted(set(people))}
    return [drawn[person] for person in people]


def control_permuted_labels(people, labels, seed):
    shuffled = list(labels)
    random.Random(seed).shuffle(shuffled)
    return shuffled


def control_class_indices(people, labels, seed):
    rng = random.Random(seed)
    drawn = {person: rng.randrange(len(set(labels))) for person in sorted(set(people))}
    return [drawn[person] for person in people]


def control_numpy_generator(people, labels, seed):
    rng = np.random.default_rng(seed)
    drawn = {person: labels[int(rng.integers(len(labels)))] for person in sorted(set(people))}
    return [drawn[person] for person in people]


def control_sorts_in_place(people, labels, seed):
    rng = random.Random(seed)
    order = people
    order.sort()
    drawn = {person: rng.choice(list(labels)) for person in dict.fromkeys(order)}
    return [drawn[person] for person in order]


# selectivity ----------------------------------------------------------------------------------

def selectivity_reversed(activations, labels, control_labels, train, test,
                         make_probe=linear_probe):
    task = probe_by_layer(activations[None], labels, train, test, make_probe).item()
    control = probe_by_layer(activations[None], control_labels, train, test, make_probe).item()
    return task, control, control - task


def selectivity_control_on_task_labels(activations, labels, control_labels, train, test,
                                       make_probe=linear_probe):
    task = probe_by_layer(activations[None], labels, train, test, make_probe).item()
    control = probe_by_layer(activations[None], labels, train, test, make_probe).item()
    return task, control, task - control


def selectivity_tensor(activations, labels, control_labels, train, test,
                       make_probe=linear_probe):
    task = probe_by_layer(activations[None], labels, train, test, make_probe)
    control = probe_by_layer(activations[None], control_labels, train, test, make_probe)
    return torch.cat([task, control, task - control])


def selectivity_one_probe(activations, labels, control_labels, train, test,
                          make_probe=linear_probe):
    x = activations.detach().numpy()
    labels, control_labels = np.asarray(labels), np.asarray(control_labels)
    probe = make_probe().fit(x[train.numpy()], labels[train.numpy()])
    task = probe.score(x[test.numpy()], labels[test.numpy()])
    control = probe.score(x[test.numpy()], control_labels[test.numpy()])
    return float(task), float(control), float(task - control)


def selectivity_without_layer_axis(activations, labels, control_labels, train, test,
                                   make_probe=linear_probe):
    task = probe_by_layer(activations, labels, train, test, make_probe)[0].item()
    control = probe_by_layer(activations, control_labels, train, test, make_probe)[0].item()
    return task, control, task - control


def selectivity_ignores_make_probe(activations, labels, control_labels, train, test,
                                   make_probe=linear_probe):
    task = probe_by_layer(activations[None], labels, train, test).item()
    control = probe_by_layer(activations[None], control_labels, train, test).item()
    return task, control, task - control


# project_out ----------------------------------------------------------------------------------

def project_out_unnormalised(x, directions):
    return x - (x @ directions.T) @ directions


def project_out_normalised_rows(x, directions):
    unit = directions / directions.norm(dim=-1, keepdim=True)
    return x - (x @ unit.T) @ unit


def project_out_qr(x, directions):
    q, _ = torch.linalg.qr(directions.T)
    return x - (x @ q) @ q.T


def project_out_returns_projection(x, directions):
    u, s, _ = torch.linalg.svd(directions.T, full_matrices=False)
    basis = u[:, s > 1e-5 * s.max()]
    return (x @ basis) @ basis.T


def project_out_in_place(x, directions):
    u, s, _ = torch.linalg.svd(directions.T, full_matrices=False)
    basis = u[:, s > 1e-5 * s.max()]
    x -= (x @ basis) @ basis.T
    return x


def project_out_gram_schmidt(x, directions):
    basis = []
    for direction in directions:
        for b in basis:
            direction = direction - (direction @ b) * b
        basis.append(direction / direction.norm())
    for b in basis:
        x = x - (x @ b)[..., None] * b
    return x


# nullspace_directions -------------------------------------------------------------------------

def _nullspace(project_out, activations, labels, train, rounds, make_probe=linear_probe,
               project=True, fit_on=None, last_only=False, transpose=False, dtype=torch.float32,
               cumulative=True, normalise=False):
    labels = np.asarray(labels)
    fit_on = train if fit_on is None else fit_on
    directions = activations.new_zeros(0, activations.shape[-1])
    found = directions
    for _ in range(rounds):
        removed = directions if cumulative else found
        x = (project_out(activations, removed) if project and len(removed) else activations)
        x = x.detach().numpy()
        probe = make_probe().fit(x[fit_on.numpy()], labels[fit_on.numpy()])
        found = torch.tensor(probe.coef_, dtype=torch.float32)
        if normalise:
            found = found / found.norm(dim=-1, keepdim=True)
        directions = found if last_only else torch.cat([directions, found])
    directions = directions.to(dtype)
    return directions.T if transpose else directions


def nullspace_without_projection(activations, labels, train, rounds, make_probe=linear_probe):
    return _nullspace(project_out, activations, labels, train, rounds, make_probe, project=False)


def nullspace_last_round_only(activations, labels, train, rounds, make_probe=linear_probe):
    return _nullspace(project_out, activations, labels, train, rounds, make_probe, last_only=True)


def nullspace_coef_transposed(activations, labels, train, rounds, make_probe=linear_probe):
    return _nullspace(project_out, activations, labels, train, rounds, make_probe, transpose=True)


def nullspace_fitted_on_all_examples(activations, labels, train, rounds,
                                     make_probe=linear_probe):
    return _nullspace(project_out, activations, labels, train, rounds, make_probe,
                      fit_on=torch.arange(activations.shape[0]))


def nullspace_float64(activations, labels, train, rounds, make_probe=linear_probe):
    return _nullspace(project_out, activations, labels, train, rounds, make_probe,
                      dtype=torch.float64)


def nullspace_projects_last_round_only(activations, labels, train, rounds,
                                       make_probe=linear_probe):
    return _nullspace(project_out, activations, labels, train, rounds, make_probe, cumulative=False)


def nullspace_normalised(activations, labels, train, rounds, make_probe=linear_probe):
    return _nullspace(project_out, activations, labels, train, rounds, make_probe, normalise=True)


# amnesic_recall -------------------------------------------------------------------------------

def _recall(project_out, model, tokens, name_positions, last_positions, layer, directions, targets,
            hook="resid_post", where="name", read_last=True, patch=True, count=False):
    rows = torch.arange(tokens.shape[0])

    def forget(activation, name):
        activation = activation.clone()
        if where == "all":
            return project_out(activation, directions)
        positions = name_positions if where == "name" else last_positions
        activation[rows, positions] = project_out(activation[rows, positions], directions)
        return activation

    patches = {f"blocks.{layer}.hook_{hook}": forget} if patch else {}
    logits, _ = run_with_cache(model, tokens, names=[], patches=patches)
    predictions = (logits[rows, last_positions] if read_last else logits[:, -1]).argmax(dim=-1)
    right = (predictions == targets).float()
    return right.sum().item() if count else right.mean().item()


def amnesic_every_position(model, tokens, name_positions, last_positions, layer, directions,
                           targets):
    return _recall(project_out, model, tokens, name_positions, last_positions, layer,
                   directions, targets, where="all")


def amnesic_resid_pre(model, tokens, name_positions, last_positions, layer, directions, targets):
    return _recall(project_out, model, tokens, name_positions, last_positions, layer,
                   directions, targets, hook="resid_pre")


def amnesic_prediction_at_minus_one(model, tokens, name_positions, last_positions, layer,
                                    directions, targets):
    return _recall(project_out, model, tokens, name_positions, last_positions, layer,
                   directions, targets, read_last=False)


def amnesic_no_patch(model, tokens, name_positions, last_positions, layer, directions, targets):
    return _recall(project_out, model, tokens, name_positions, last_positions, layer,
                   directions, targets, patch=False)


def amnesic_count(model, tokens, name_positions, last_positions, layer, directions, targets):
    return _recall(project_out, model, tokens, name_positions, last_positions, layer,
                   directions, targets, count=True)


def amnesic_patch_last_position(model, tokens, name_positions, last_positions, layer,
                                directions, targets):
    return _recall(project_out, model, tokens, name_positions, last_positions, layer,
                   directions, targets, where="last")


# integrated_gradients -------------------------------------------------------------------------

def _ig(model, tokens, target, baseline, steps, alphas=None, start=None, difference=True,
        position=-1, reduce="mean", sum_d=True):
    embed = model.get_input_embeddings()
    with torch.no_grad():
        x = embed(tokens)
        x0 = embed(baseline) if start is None else start(x)
    if alphas is None:
        alphas = (torch.arange(steps, dtype=x.dtype) + 0.5) / steps
    path = (x0 + alphas[:, None, None] * (x - x0)).requires_grad_(True)
    logits = model(inputs_embeds=path).logits[:, position, target]
    gradients, = torch.autograd.grad(logits.sum(), path)
    gradients = gradients.mean(dim=0) if reduce == "mean" else gradients.sum(dim=0)
    attributions = (x - x0) * gradients if difference else gradients.expand_as(x)
    return attributions.sum(dim=-1) if sum_d else attributions


def ig_gradient_times_input(model, tokens, target, baseline, steps):
    return _ig(model, tokens, target, baseline, steps, alphas=torch.ones(1),
               start=torch.zeros_like)


def ig_single_step(model, tokens, target, baseline, steps):
    return _ig(model, tokens, target, baseline, steps, alphas=torch.ones(1))


def ig_zero_baseline(model, tokens, target, baseline, steps):
    return _ig(model, tokens, target, baseline, steps, start=torch.zeros_like)


def ig_left_riemann_sum(model, tokens, target, baseline, steps):
    return _ig(model, tokens, target, baseline, steps, alphas=torch.arange(steps) / steps)


def ig_without_difference(model, tokens, target, baseline, steps):
    return _ig(model, tokens, target, baseline, steps, difference=False)


def ig_logit_at_position_0(model, tokens, target, baseline, steps):
    return _ig(model, tokens, target, baseline, steps, position=0)


def ig_summed_gradients(model, tokens, target, baseline, steps):
    return _ig(model, tokens, target, baseline, steps, reduce="sum")


def ig_per_dimension(model, tokens, target, baseline, steps):
    return _ig(model, tokens, target, baseline, steps, sum_d=False)


# true_false_statements ------------------------------------------------------------------------

def _statements(world, people, relation, seed, template=0, order=((1, 1), (0, 0)),
                objects=None, keep_true=False, rng_seed=None):
    rng = random.Random(seed if rng_seed is None else rng_seed)
    if objects is None:
        objects = sorted({fact.object for fact in world.facts_for(relation)})
    texts, labels = [], []
    for person in people:
        true = world.lookup(person, relation)
        false = rng.choice([o for o in objects if keep_true or o != true])
        for which, label in order:
            obj = true if which else false
            texts.append(fact_prompt(person, relation, template, obj).text)
            labels.append(label)
    return texts, labels


def statements_false_from_all_objects(world, people, relation, seed):
    return _statements(world, people, relation, seed, keep_true=True)


def statements_false_first(world, people, relation, seed):
    return _statements(world, people, relation, seed, order=((0, 0), (1, 1)))


def statements_other_template(world, people, relation, seed):
    return _statements(world, people, relation, seed, template=1)


def statements_ignore_seed(world, people, relation, seed):
    return _statements(world, people, relation, seed, rng_seed=0)


def statements_objects_in_world_order(world, people, relation, seed):
    objects = list(dict.fromkeys(fact.object for fact in world.facts_for(relation)))
    return _statements(world, people, relation, seed, objects=objects)


def statements_labels_as_words(world, people, relation, seed):
    texts, labels = _statements(world, people, relation, seed)
    return texts, ["true" if label else "false" for label in labels]


# generic ---------------------------------------------------------------------------------------

def raises_index_error(*args, **kwargs):
    return [][0]


def loops_forever(*args, **kwargs):
    while True:
        pass


def control_task_noisy_but_right(people, labels, seed):
    import sys
    import warnings

    print("debugging", file=sys.stderr)
    warnings.warn("this is only a warning")
    rng = random.Random(seed)
    drawn = {person: rng.choice(list(labels)) for person in sorted(set(people))}
    return [drawn[person] for person in people]


def probe_by_layer_noisy_but_right(activations, labels, train, test, make_probe=linear_probe):
    import sys

    validate_probe_data(activations, labels, train, test)
    print(f"probing {len(activations)} layers", file=sys.stderr)
    # max_iter=1 makes sklearn warn (ConvergenceWarning) before the real fit
    LogisticRegression(max_iter=1).fit(activations[0, train].numpy(),
                                       np.asarray(labels)[train.numpy()])
    return torch.tensor(_scores(activations, labels, train, test, make_probe),
                        dtype=torch.float32)


# logit_lens -----------------------------------------------------------------------------------

def lens_without_final_layernorm(model, residuals):
    return model.lm_head(residuals).argmax(dim=-1)


def lens_through_the_embeddings(model, residuals):
    return (model.transformer.ln_f(residuals) @ model.transformer.wte.weight.T).argmax(dim=-1)


def lens_final_layernorm_except_last(model, residuals):
    # "the last block's output has been through ln_f already"
    normed = torch.cat([model.transformer.ln_f(residuals[:-1]), residuals[-1:]])
    return model.lm_head(normed).argmax(dim=-1)


def lens_logits(model, residuals):
    return model.lm_head(model.transformer.ln_f(residuals))


def lens_top_probability(model, residuals):
    return model.lm_head(model.transformer.ln_f(residuals)).softmax(dim=-1).max(dim=-1).values


def lens_last_block_layernorm(model, residuals):
    return model.lm_head(model.transformer.h[-1].ln_2(residuals)).argmax(dim=-1)


# mass_mean_probe ------------------------------------------------------------------------------

def _mass_mean(activations, labels, fit_on, score_on, sign=1.0, threshold="midpoint",
               normalise=False):
    positive = torch.as_tensor(np.asarray(labels).astype(bool))
    fit = torch.zeros(activations.shape[1], dtype=torch.bool)
    fit[fit_on] = True
    yes = activations[:, fit & positive].mean(dim=1)
    no = activations[:, fit & ~positive].mean(dim=1)
    directions = sign * (yes - no)
    if normalise:
        directions = directions / directions.norm(dim=-1, keepdim=True)
    projections = torch.einsum("lnd,ld->ln", activations, directions)
    if threshold == "midpoint":
        cut = (((yes + no) / 2) * directions).sum(dim=-1)
    elif threshold == "zero":
        cut = torch.zeros(len(activations))
    else:  # the mean projection of all training examples
        cut = projections[:, fit].mean(dim=1)
    predicted = projections[:, score_on] > cut[:, None]
    return directions, (predicted == positive[score_on]).float().mean(dim=1)


def mass_mean_reversed(activations, labels, train, test):
    validate_probe_data(activations, labels, train, test)
    return _mass_mean(activations, labels, train, test, sign=-1.0)


def mass_mean_from_all_examples(activations, labels, train, test):
    validate_probe_data(activations, labels, train, test)
    everyone = torch.arange(activations.shape[1])
    directions, _ = _mass_mean(activations, labels, everyone, test)
    return directions, _mass_mean(activations, labels, train, test)[1]


def mass_mean_threshold_zero(activations, labels, train, test):
    validate_probe_data(activations, labels, train, test)
    return _mass_mean(activations, labels, train, test, threshold="zero")


def mass_mean_threshold_mean_projection(activations, labels, train, test):
    validate_probe_data(activations, labels, train, test)
    return _mass_mean(activations, labels, train, test, threshold="mean")


def mass_mean_normalised(activations, labels, train, test):
    validate_probe_data(activations, labels, train, test)
    return _mass_mean(activations, labels, train, test, normalise=True)


def mass_mean_scored_on_train(activations, labels, train, test):
    validate_probe_data(activations, labels, train, test)
    return _mass_mean(activations, labels, train, train)


def mass_mean_without_validation(activations, labels, train, test):
    return _mass_mean(activations, labels, train, test)


def mass_mean_accuracies_only(activations, labels, train, test):
    validate_probe_data(activations, labels, train, test)
    return _mass_mean(activations, labels, train, test)[1]


# steered_predictions --------------------------------------------------------------------------

def _steered(model, tokens, read_at, hook, add_at, vector):
    rows = torch.arange(tokens.shape[0])

    def steer(activation, name):
        activation = activation.clone()
        if add_at is None:
            return activation + vector
        activation[rows, add_at] += vector
        return activation

    logits, _ = run_with_cache(model, tokens, names=[], patches={hook: steer})
    return logits[rows, read_at].argmax(dim=-1)


def steer_every_position(model, tokens, last_positions, layer, direction, scale):
    return _steered(model, tokens, last_positions, f"blocks.{layer}.hook_resid_post", None,
                    scale * direction)


def steer_before_the_block(model, tokens, last_positions, layer, direction, scale):
    return _steered(model, tokens, last_positions, f"blocks.{layer}.hook_resid_pre",
                    last_positions, scale * direction)


def steer_read_at_the_end(model, tokens, last_positions, layer, direction, scale):
    return _steered(model, tokens, -1, f"blocks.{layer}.hook_resid_post", last_positions,
                    scale * direction)


def steer_at_the_end(model, tokens, last_positions, layer, direction, scale):
    end = torch.full_like(last_positions, tokens.shape[1] - 1)
    return _steered(model, tokens, last_positions, f"blocks.{layer}.hook_resid_post", end,
                    scale * direction)


def steer_without_scale(model, tokens, last_positions, layer, direction, scale):
    return _steered(model, tokens, last_positions, f"blocks.{layer}.hook_resid_post",
                    last_positions, direction)


def steer_unit_direction(model, tokens, last_positions, layer, direction, scale):
    return _steered(model, tokens, last_positions, f"blocks.{layer}.hook_resid_post",
                    last_positions, scale * direction / direction.norm())


# Each mistake, with a fragment of the message that must reject it: the reason it was written for.
MISTAKES = {
    "residual_stack": {
        stack_resid_post_only: "is missing the embeddings",
        stack_resid_pre_of_every_block: "is missing the output of the last block",
        stack_last_position: "has wrong values",
        stack_batch_first: "expected shape",
        stack_every_position_for_every_row: "expected shape",
        stack_hidden_states: "before the final LayerNorm",
        stack_ln_final_for_last_layer: "before the final LayerNorm",
    },
    "split_by_person": {
        split_by_example: "has examples in both train and test",
        split_same_people_every_seed: "ignores the seed",
        split_fraction_of_examples: "people, expected max(1, round(",
        split_lists: "should be a torch.Tensor",
        split_grouped_by_person: "should be sorted",
        split_first_appearance: "depend on the order of the examples",
        split_without_minimum: "held out no one",
        split_swapped: "people, expected max(1, round(",
    },
    "probe_by_layer": {
        probe_scored_on_train: "has wrong values",
        probe_train_test_swapped: "has wrong values",
        probe_last_layer_every_row: "has wrong values",
        probe_without_validation: "accepted train and test indices that share examples",
        probe_returns_list: "should be a torch.Tensor",
        probe_percentages: "not percentages",
        probe_ignores_make_probe: "with another make_probe (a decision tree) has wrong values",
        probe_float64: "expected dtype torch.float32",
        probe_own_checks_without_label_count: "labels for",
        probe_checks_with_assert: "should raise ValueError",
        probe_cleans_nan: "accepted activations that contain NaN",
        probe_skips_layers_it_cannot_fit: "accepted training labels of a single class",
    },
    "majority_baseline": {
        majority_of_test_labels: "test labels: expected",
        majority_of_all_labels: "test labels: expected",
        majority_one_over_classes: "test labels: expected",
        majority_first_seen_wins_ties: "two training labels tied for the majority",
        majority_count: "test labels: expected",
        majority_tensor: "should return a Python float",
    },
    "probe_properties": {
        properties_same_positions: "the accuracies of",
        properties_last_position: "the accuracies of",
        properties_baseline_of_all_labels: "the baseline of",
        properties_only_accuracies: "should be a pair (accuracies, baseline)",
        properties_return_in_loop: "has no entry for the property",
        properties_baseline_first: "should be a torch.Tensor",
    },
    "control_task": {
        control_per_example: "got different control labels",
        control_from_distinct_classes: "once per distinct person, in sorted order",
        control_first_appearance: "once per distinct person, in sorted order",
        control_ignores_seed: "it ignores the seed",
        control_permuted_labels: "got different control labels",
        control_class_indices: "is not one of the task's labels",
        control_numpy_generator: "once per distinct person, in sorted order",
        control_sorts_in_place: "changed its input lists in place",
    },
    "selectivity": {
        selectivity_reversed: "the selectivity of",
        selectivity_control_on_task_labels: "the control accuracy of",
        selectivity_tensor: "should return three Python floats",
        selectivity_one_probe: "the control accuracy of",
        selectivity_without_layer_axis: "raised IndexError",
        selectivity_ignores_make_probe: "with another make_probe",
    },
    "project_out": {
        project_out_unnormalised: "need not have norm 1",
        project_out_normalised_rows: "need not be orthogonal",
        project_out_qr: "the directions may be dependent",
        project_out_returns_projection: "returned the component of x in the span",
        project_out_in_place: "changed its input",
        project_out_gram_schmidt: "linearly dependent",
    },
    "nullspace_directions": {
        nullspace_without_projection: "has wrong values",
        nullspace_last_round_only: "expected shape",
        nullspace_coef_transposed: "expected shape",
        nullspace_fitted_on_all_examples: "has wrong values",
        nullspace_float64: "expected dtype torch.float32",
        nullspace_projects_last_round_only: "with 3 rounds",
        nullspace_normalised: "has wrong values",
    },
    "amnesic_recall": {
        amnesic_every_position: "amnesic_recall on",
        amnesic_resid_pre: "amnesic_recall on",
        amnesic_prediction_at_minus_one: "amnesic_recall on",
        amnesic_no_patch: "amnesic_recall on",
        amnesic_count: "amnesic_recall on",
        amnesic_patch_last_position: "amnesic_recall on",
    },
    "integrated_gradients": {
        ig_gradient_times_input: "it ignores the steps",
        ig_single_step: "it ignores the steps",
        ig_zero_baseline: "it ignores the baseline",
        ig_left_riemann_sum: "midpoint rule",
        ig_without_difference: "breaks completeness",
        ig_logit_at_position_0: "breaks completeness",
        ig_summed_gradients: "breaks completeness",
        ig_per_dimension: "one attribution per token",
    },
    "true_false_statements": {
        statements_false_from_all_objects: "is true",
        statements_false_first: "the labels should alternate 1, 0",
        statements_other_template: "use the relation's first template",
        statements_ignore_seed: "it ignores the seed",
        statements_objects_in_world_order: "the relation's objects, sorted",
        statements_labels_as_words: "the labels should alternate 1, 0",
    },
    "logit_lens": {
        lens_without_final_layernorm: "apply model.transformer.ln_f to every read-out point",
        lens_through_the_embeddings: "not the embedding matrix",
        lens_final_layernorm_except_last: "has wrong values (at index (",
        lens_logits: "expected shape",
        lens_top_probability: "returned floats",
        lens_last_block_layernorm: "has wrong values",
    },
    "mass_mean_probe": {
        mass_mean_reversed: "the directions point the wrong way",
        mass_mean_from_all_examples: "over the training examples only",
        mass_mean_threshold_zero: "not at zero",
        mass_mean_threshold_mean_projection: "not at the mean of all projections",
        mass_mean_normalised: "not normalised",
        mass_mean_scored_on_train: "the accuracies of",
        mass_mean_without_validation: "accepted train and test indices that share examples",
        mass_mean_accuracies_only: "should return a pair (directions, accuracies)",
    },
    "steered_predictions": {
        steer_every_position: "only at each prompt's last real token",
        steer_before_the_block: "has wrong values",
        steer_read_at_the_end: "has wrong values",
        steer_at_the_end: "has wrong values",
        steer_without_scale: "has wrong values",
        steer_unit_direction: "has wrong values",
    },
}
