"""Grading checks for chapter 02, probing.

Each ``check_<exercise>(fn, seeds=...)`` grades one exercise on its own: it runs the learner's
function on inputs drawn from each seed and compares the result with the reference solution (or,
where the exercise leaves a choice open, checks the properties every right answer has). The
inputs are the shipped ``facts-6l`` model, small random GPT-2 models whose shapes change with the
seed, and random activations that carry a label signal of a different strength at every layer,
so that an answer that hard-codes a size, skips a step or mixes up the layers fails.
"""

import functools
import random

import numpy as np
import torch
from sklearn.tree import DecisionTreeClassifier

from reference_impl.course.grading import (CheckFailed, Exercise, captured_output, expect_number,
                                         expect_tensor, passed)
from reference_impl.hooks import run_with_cache
from reference_impl.probing import solutions as ref
from reference_impl.probing.data import encode, facts_world, recall_prompts
from reference_impl.world import BOS_ID, fact_prompt
from reference_impl.zoo import load_model, random_test_model

SOLUTION_MODULE = ref.__name__
VISIBLE_SEEDS = (0, 1, 2)

# Words for labels and people, so that a label is not also an index.
_WORDS = ("amber", "birch", "cedar", "delta", "ember", "fjord", "grove", "heath", "inlet",
          "juniper", "kestrel", "lagoon", "meadow", "nectar", "orchid", "prairie", "quartz",
          "raven", "sierra", "tundra")


def _generator(seed):
    return torch.Generator().manual_seed(seed)


def _pick(g, lo, hi):
    """A random integer in [lo, hi)."""
    return int(torch.randint(lo, hi, (), generator=g))


def _exercise(fn, name, dependencies=()):
    return Exercise(fn, name, SOLUTION_MODULE, {d: getattr(ref, d) for d in dependencies})


def _reference(fn, *args, **kwargs):
    """The reference's result, with whatever it warns (a slow probe's ConvergenceWarning) kept
    off the learner's screen."""
    with captured_output():
        return fn(*args, **kwargs)


@functools.lru_cache(maxsize=1)
def _shipped():
    return load_model("facts-6l")


@functools.lru_cache(maxsize=1)
def _world():
    return facts_world()


@functools.lru_cache(maxsize=16)
def _random_model(seed, n_layer=None):
    """A small random GPT-2 whose sizes depend on the seed."""
    return random_test_model(seed, n_layer or 2 + seed % 2, attention_only=seed % 4 == 1)


def _describe(model):
    c = model.config
    if _shipped.cache_info().currsize and model is _shipped()[0]:
        return "facts-6l"
    return (f"a random {c.n_layer}-layer model with d_model {c.n_embd}"
            f"{'' if getattr(c, 'attention_only', False) else ' and MLPs'}")


def _split(g, n, test_share=1 / 3):
    """Random disjoint (train, test) sorted example indices."""
    order = torch.randperm(n, generator=g)
    n_test = max(2, int(n * test_share))
    return order[n_test:].sort().values, order[:n_test].sort().values


def _as_labels(g, classes, style):
    """Class indices as the labels a learner meets: strings, a list of ints or a numpy array."""
    if style == 0:
        names = [_WORDS[int(i)] for i in torch.randperm(len(_WORDS), generator=g)]
        return [names[int(c)] for c in classes]
    if style == 1:
        return [int(c) for c in classes]
    return classes.numpy().copy()


# 1 · The residual stream, layer by layer -------------------------------------------------------

def _stack_cases(seed):
    """The shipped model and a random one, each with a batch of 5 random sequences (5 differs
    from every model's number of layers + 1 and d_model, so swapped axes change the shape) and a
    position per row, not always the last one."""
    cases = []
    for model in (_shipped()[0], _random_model(seed)):
        g = _generator(seed)
        length = _pick(g, 5, 16)
        tokens = torch.randint(1, model.config.vocab_size, (5, length), generator=g)
        tokens[:, 0] = 0  # BOS
        positions = torch.randint(0, length - 1, (5,), generator=g)
        positions[_pick(g, 0, 5)] = length - 1
        cases.append((model, tokens, positions))
    return cases


def check_residual_stack(residual_stack, seeds=VISIBLE_SEEDS):
    learner = _exercise(residual_stack, "residual_stack")
    for seed in seeds:
        for model, tokens, positions in _stack_cases(seed):
            n = model.config.n_layer
            got = learner(model, tokens, positions)
            expected = ref.residual_stack(model, tokens, positions)
            what = f"residual_stack on {_describe(model)} ({n} layers)"
            if isinstance(got, torch.Tensor) and got.shape == expected[1:].shape:
                if torch.allclose(got.detach().float(), expected[1:], atol=1e-4, rtol=1e-4):
                    raise CheckFailed(f"{what} is missing the embeddings: its first row should "
                                      f"be blocks.0.hook_resid_pre, before the first block, "
                                      f"then one row per block (n_layers + 1 = {n + 1} rows).")
                if torch.allclose(got.detach().float(), expected[:-1], atol=1e-4, rtol=1e-4):
                    raise CheckFailed(f"{what} is missing the output of the last block: after "
                                      f"blocks.0.hook_resid_pre read blocks.L.hook_resid_post of "
                                      f"every block (n_layers + 1 = {n + 1} rows), not "
                                      f"hook_resid_pre.")
            if (isinstance(got, torch.Tensor) and got.shape == expected.shape
                    and torch.allclose(got[:-1].detach().float(), expected[:-1], atol=1e-4)
                    and not torch.allclose(got[-1].detach().float(), expected[-1], atol=1e-4)):
                raise CheckFailed(f"{what}: every row is right but the last: it should be "
                                  f"blocks.{n - 1}.hook_resid_post, before the final LayerNorm "
                                  f"(the last of output_hidden_states has ln_f applied).")
            expect_tensor(got, expected, f"{what}, positions {positions.tolist()}",
                          "stack blocks.0.hook_resid_pre and every blocks.L.hook_resid_post, "
                          "layers first, and read row b at its own position positions[b] "
                          "(index with torch.arange(batch), positions)", atol=1e-4)
    passed("residual_stack", len(seeds))


# 2 · Probes, split by person --------------------------------------------------------------------

def _people(g, n_people):
    """Examples about ``n_people`` people, 1 to 4 each, in a random order."""
    names = [f"{_WORDS[i % len(_WORDS)].title()} {i}" for i in range(n_people)]
    people = [name for name in names for _ in range(_pick(g, 1, 5))]
    return [people[int(i)] for i in torch.randperm(len(people), generator=g)]


def _split_result(got, call):
    """The learner's (train, test), checked for types and for covering every example once."""
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        raise CheckFailed(f"{call} should return a pair (train, test), got "
                          f"{type(got).__name__}.")
    for side, value in zip(("train", "test"), got):
        if not isinstance(value, torch.Tensor):
            raise CheckFailed(f"{call}: {side} should be a torch.Tensor of example indices, got "
                              f"{type(value).__name__}: wrap it with torch.tensor(..., "
                              f"dtype=torch.long).")
        if value.dtype != torch.long or value.dim() != 1:
            raise CheckFailed(f"{call}: {side} should be a 1-D torch.long tensor, got dtype "
                              f"{value.dtype} and shape {tuple(value.shape)}.")
        if value.numel() > 1 and not bool((value[1:] > value[:-1]).all()):
            raise CheckFailed(f"{call}: the {side} indices should be sorted in increasing order "
                              f"(torch.sort, or build them by going through the examples in "
                              f"order).")
    return got


def _held_out_people(got, people, call, n_expected):
    train, test = got
    n = len(people)
    both = torch.cat([train, test]).tolist()
    if sorted(both) != list(range(n)):
        missing = sorted(set(range(n)) - set(both))
        raise CheckFailed(f"{call}: every example index from 0 to {n - 1} should be in exactly "
                          f"one of train and test"
                          + (f" (index {missing[0]} is in neither)." if missing
                             else " (some index appears twice)."))
    sides = {}
    for side, indices in (("train", train), ("test", test)):
        for i in indices.tolist():
            sides.setdefault(people[i], {}).setdefault(side, i)
    for person, where in sides.items():
        if len(where) == 2:
            raise CheckFailed(f"{call}: person {person!r} has examples in both train and test "
                              f"(indices {where['train']} and {where['test']}): hold out whole "
                              f"people, so that the probe is scored on people it never saw.")
    held_out = {people[i] for i in test.tolist()}
    if not held_out:
        raise CheckFailed(f"{call} held out no one: hold out at least one person, "
                          f"max(1, round(test_fraction × number of people)) = {n_expected}.")
    if len(held_out) != n_expected:
        raise CheckFailed(f"{call} held out {len(held_out)} of {len(sides)} people, expected "
                          f"max(1, round(test_fraction × number of people)) = {n_expected}: "
                          f"count distinct people, not examples.")
    return held_out


def check_split_by_person(split_by_person, seeds=VISIBLE_SEEDS):
    learner = _exercise(split_by_person, "split_by_person")
    for seed in seeds:
        g = _generator(seed)
        for n_people, fraction in ((_pick(g, 12, 30), (0.2, 0.25, 0.3)[seed % 3]),
                                   (_pick(g, 3, 5), 0.1)):
            people = _people(g, n_people)
            n_expected = max(1, round(fraction * n_people))
            call = f"split_by_person(people, {fraction}, seed={seed}) with {n_people} people"
            held_out = _held_out_people(_split_result(learner(list(people), fraction, seed),
                                                      call), people, call, n_expected)
            again = _held_out_people(_split_result(learner(list(people), fraction, seed), call),
                                     people, call, n_expected)
            if again != held_out:
                raise CheckFailed(f"{call} gave a different split when called again with the "
                                  f"same seed: draw only from random.Random(seed).")
            order = torch.randperm(len(people), generator=g).tolist()
            shuffled = [people[i] for i in order]
            moved = _held_out_people(_split_result(learner(shuffled, fraction, seed), call),
                                     shuffled, call, n_expected)
            if moved != held_out:
                raise CheckFailed(f"{call}: the people held out depend on the order of the "
                                  f"examples (shuffling the examples changed them): sort the "
                                  f"distinct people before shuffling them.")
            if n_people >= 10:
                others = [_held_out_people(_split_result(learner(list(people), fraction, s),
                                                         call), people, call, n_expected)
                          for s in (seed + 1, seed + 2, seed + 3)]
                if all(other == held_out for other in others):
                    raise CheckFailed(f"{call} holds out the same people for seeds {seed} to "
                                      f"{seed + 3}: it ignores the seed; shuffle the distinct "
                                      f"people with random.Random(seed).")
    passed("split_by_person", len(seeds))


# 3 · Probes, layer by layer -------------------------------------------------------------------

def _tree_probe():
    """A probe other than the default, to see that make_probe is used."""
    return DecisionTreeClassifier(max_depth=2, random_state=0)


def _accuracy_tolerance(test):
    """Accuracies may differ by one test example: a probe fitted to float64 copies of the
    activations stops at a slightly different optimum, and an example near the boundary flips."""
    return 1.01 / len(test)


def _probe_data(seed):
    """Activations (layers, n, d) whose label signal has a different strength at every layer,
    labels of 2 to 4 classes (strings, a list of ints or a numpy array) and a random split."""
    g = _generator(seed)
    n_rows, n, d, n_classes = _pick(g, 3, 6), _pick(g, 60, 90), _pick(g, 6, 12), _pick(g, 2, 5)
    classes = torch.randint(0, n_classes, (n,), generator=g)
    classes[:n_classes] = torch.arange(n_classes)
    means = torch.randn(n_classes, d, generator=g)
    strength = torch.rand(n_rows, generator=g) * 1.2 + 0.1
    activations = torch.randn(n_rows, n, d, generator=g) + strength[:, None, None] * means[classes]
    labels = _as_labels(g, classes, seed % 3)
    train, test = _split(g, n)
    return activations, labels, train, test


def _raised_value_error(learner, name, args, what):
    """Pass if the learner's function raises ValueError on bad data; fail, saying what it
    accepted, if it returns, and say which error it raised if it raised another."""
    try:
        learner(*args)
    except CheckFailed as failure:
        message = str(failure)
        if message.startswith(f"`{name}` raised ValueError"):
            return
        if message.startswith(f"`{name}` raised "):
            raise CheckFailed(f"{name} should raise ValueError when given {what}, but it "
                              f"{message[len(name) + 3:]}: call validate_probe_data(activations, "
                              f"labels, train, test) first.") from None
        raise
    raise CheckFailed(f"{name} accepted {what}: call validate_probe_data(activations, labels, "
                      f"train, test) first, which raises ValueError.")


def _bad_probe_inputs(activations, labels, train, test):
    """(what, (activations, labels, train, test)) for each kind of data no probe should take."""
    shared = torch.cat([test, train[:3]]).sort().values
    longer = list(labels) + list(labels)[:3]
    broken = activations.clone()
    broken[-1, train[1], 0] = float("nan")
    single = np.asarray(labels).copy()
    single[train.numpy()] = single[test[0].item()]
    single = single.tolist() if isinstance(labels, list) else single
    return [("train and test indices that share examples", (activations, labels, train, shared)),
            (f"{len(longer)} labels for {activations.shape[1]} examples",
             (activations, longer, train, test)),
            ("activations that contain NaN", (broken, labels, train, test)),
            ("training labels of a single class", (activations, single, train, test))]


def check_probe_by_layer(probe_by_layer, seeds=VISIBLE_SEEDS):
    learner = _exercise(probe_by_layer, "probe_by_layer", ("validate_probe_data", "linear_probe"))
    for seed in seeds:
        activations, labels, train, test = _probe_data(seed)
        what = (f"probe_by_layer on {activations.shape[0]} layers of {activations.shape[1]} "
                f"examples ({len(test)} for test)")
        for make_probe, probe in ((ref.linear_probe, ""),
                                  (_tree_probe, " with another make_probe (a decision tree)")):
            got = learner(activations, labels, train, test, make_probe=make_probe)
            expected = _reference(ref.probe_by_layer, activations, labels, train, test,
                                  make_probe=make_probe)
            if (isinstance(got, torch.Tensor) and got.shape == expected.shape
                    and got.is_floating_point() and float(got.max()) > 1.0):
                raise CheckFailed(f"{what}{probe} returned values above 1: return accuracies "
                                  f"between 0 and 1 (probe.score), not percentages.")
            expect_tensor(got, expected, what + probe,
                          "for every layer, fit make_probe() on the training examples and "
                          "take probe.score on the test examples", atol=_accuracy_tolerance(test),
                          rtol=0)
        for bad, args in _bad_probe_inputs(activations, labels, train, test):
            _raised_value_error(learner, "probe_by_layer", args, bad)
    passed("probe_by_layer", len(seeds))


def _majority_cases(seed):
    """Label sets whose majority training label differs from the test set's and from the whole
    set's, and (every second one, a tie) from the training label seen first."""
    g = _generator(seed)
    t = _pick(g, 4, 9)
    words = sorted(_WORDS[int(i)] for i in torch.randperm(len(_WORDS), generator=g)[:4])
    cases = []
    for style in ("strings", "ints"):
        a, b, c, d = words if style == "strings" else (3, 5, 8, 11)
        # no tie: b wins by one; c rules the test set and the whole set.
        train_labels = [b] * (t + 1) + [a] * t + [c] * 2
        random.Random(seed + 2).shuffle(train_labels)
        test_labels = [c] * (t + 2) + [a] * 3 + [b] * 2
        random.Random(seed + 3).shuffle(test_labels)
        cases.append((train_labels, test_labels, False))
        # a and b tie in training, b comes first; c rules the test set and the whole set.
        tail = [a] * t + [b] * (t - 1) + [c] * (t - 2) + [d]
        random.Random(seed).shuffle(tail)
        train_labels = [b] + tail
        test_labels = [c] * (t + 3) + [a] * 2 + [b] * 3 + [d]
        random.Random(seed + 1).shuffle(test_labels)
        cases.append((train_labels, test_labels, True))
    out = []
    for train_labels, test_labels, tie in cases:
        n = len(train_labels) + len(test_labels)
        train = torch.randperm(n, generator=g)[:len(train_labels)].sort().values
        test = torch.tensor(sorted(set(range(n)) - set(train.tolist())), dtype=torch.long)
        labels = [None] * n
        for i, label in zip(train.tolist(), train_labels):
            labels[i] = label
        for i, label in zip(test.tolist(), test_labels):
            labels[i] = label
        if isinstance(labels[0], int) and seed % 2:
            labels = np.array(labels)
        out.append((labels, train, test, tie))
    return out


def check_majority_baseline(majority_baseline, seeds=VISIBLE_SEEDS):
    learner = _exercise(majority_baseline, "majority_baseline")
    for seed in seeds:
        for labels, train, test, tie in _majority_cases(seed):
            got = learner(labels, train, test)
            if isinstance(got, torch.Tensor) or not isinstance(got, (int, float)):
                raise CheckFailed(f"majority_baseline should return a Python float, got "
                                  f"{type(got).__name__}: use float(...).")
            expect_number(got, ref.majority_baseline(labels, train, test),
                          f"majority_baseline on {len(train)} training and {len(test)} test "
                          f"labels{', two training labels tied for the majority' if tie else ''}",
                          "find the most common label among the training labels (a tie goes to "
                          "the label that sorts first), then return the share of test examples "
                          "that have it", tol=1e-9)
    passed("majority_baseline", len(seeds))


# 4 · Many properties, one chart ----------------------------------------------------------------

def _property_case(seed):
    """A random model, random sentences, and two properties, each read at its own
    positions and decided by the token there (drawn from a few tokens, so a probe can learn it)."""
    model = _random_model(seed)
    g = _generator(seed)
    batch, length = _pick(g, 48, 64), _pick(g, 6, 10)
    vocab = model.config.vocab_size
    tokens = torch.randint(1, vocab, (batch, length), generator=g)
    tokens[:, 0] = 0
    rows = torch.arange(batch)
    names = ("colour", "shape")
    # each row reads its properties at different positions
    order = torch.stack([torch.randperm(length - 1, generator=g) + 1 for _ in range(batch)])
    properties = {}
    for p, name in enumerate(names):
        positions = order[:, p]
        n_classes = 2 + p % 2
        few = torch.randperm(vocab - 1, generator=g)[:2 * n_classes] + 1
        choice = torch.randint(0, len(few), (batch,), generator=g)
        tokens[rows, positions] = few[choice]
        properties[name] = (positions, _as_labels(g, choice % n_classes, p % 2))
    train, test = _split(g, batch)
    return model, tokens, properties, train, test


def check_probe_properties(probe_properties, seeds=VISIBLE_SEEDS):
    learner = _exercise(probe_properties, "probe_properties",
                        ("residual_stack", "probe_by_layer", "majority_baseline"))
    for seed in seeds:
        model, tokens, properties, train, test = _property_case(seed)
        got = learner(model, tokens, properties, train, test)
        expected = _reference(ref.probe_properties, model, tokens, properties, train, test)
        call = f"probe_properties on {_describe(model)} with properties {list(properties)}"
        if not isinstance(got, dict):
            raise CheckFailed(f"{call} should return a dict {{name: (accuracies, baseline)}}, "
                              f"got {type(got).__name__}.")
        for name, (accuracies, baseline) in expected.items():
            if name not in got:
                raise CheckFailed(f"{call} has no entry for the property {name!r}: return one "
                                  f"entry per property (is `return` inside the loop?).")
            value = got[name]
            if not isinstance(value, (tuple, list)) or len(value) != 2:
                raise CheckFailed(f"{call}: the entry for {name!r} should be a pair "
                                  f"(accuracies, baseline), got {type(value).__name__}.")
            expect_tensor(value[0], accuracies, f"the accuracies of {call} for {name!r}",
                          "run residual_stack at this property's own positions, then "
                          "probe_by_layer with its labels", atol=_accuracy_tolerance(test), rtol=0)
            expect_number(value[1], baseline, f"the baseline of {call} for {name!r}",
                          "majority_baseline(labels, train, test) of this property's labels",
                          tol=1e-9)
        extra = set(got) - set(expected)
        if extra:
            raise CheckFailed(f"{call} has entries for {sorted(extra)}, which are not "
                              f"properties: use the names of `properties` as keys.")
    passed("probe_properties", len(seeds))


# 5 · Control tasks and selectivity --------------------------------------------------------------

def _control_case(g, seed):
    """People with 1 to 4 examples each, in a random order, and a task label per person (the
    same on all their examples) from a skewed distribution of 3 or 4 string classes."""
    people = _people(g, _pick(g, 15, 30))
    n_classes = 3 + seed % 2
    classes = [_WORDS[int(i)] for i in torch.randperm(len(_WORDS), generator=g)[:n_classes]]
    weights = torch.tensor([4.0, 2.0, 1.0, 1.0][:n_classes])
    own = {person: classes[int(torch.multinomial(weights, 1, generator=g))]
           for person in sorted(set(people))}
    return people, [own[person] for person in people]


def check_control_task(control_task, seeds=VISIBLE_SEEDS):
    learner = _exercise(control_task, "control_task")
    for seed in seeds:
        g = _generator(seed)
        people, labels = _control_case(g, seed)
        results = {}
        for s in (seed, seed + 1, seed + 2, seed + 3):
            given_people, given_labels = list(people), list(labels)
            got = learner(given_people, given_labels, s)
            call = f"control_task(people, labels, seed={s}) for {len(set(people))} people"
            if given_people != people or given_labels != labels:
                raise CheckFailed(f"{call} changed its input lists in place: sort or shuffle a "
                                  f"copy (sorted(...)), not the list it was given.")
            if not isinstance(got, list) or len(got) != len(people):
                raise CheckFailed(f"{call} should return a list of {len(people)} labels, one per "
                                  f"example, got "
                                  f"{type(got).__name__}"
                                  f"{f' of length {len(got)}' if hasattr(got, '__len__') else ''}.")
            for label in got:
                if label not in set(labels):
                    raise CheckFailed(f"{call}: the control label {label!r} is not one of the "
                                      f"task's labels {sorted(set(labels))}: draw each person's "
                                      f"label from the labels themselves, with rng.choice.")
            drawn = {}
            for person, label in zip(people, got):
                if drawn.setdefault(person, label) != label:
                    raise CheckFailed(f"{call}: the examples of person {person!r} got different "
                                      f"control labels ({drawn[person]!r} and {label!r}): draw "
                                      f"one label per person and give it to all of their "
                                      f"examples.")
            results[s] = got
        if all(results[s] == results[seed] for s in results):
            raise CheckFailed(f"control_task gives the same control labels for seeds {seed} to "
                              f"{seed + 3}: it ignores the seed; draw with random.Random(seed).")
        for s, got in results.items():
            expected = ref.control_task(people, labels, s)
            for person, label, right in zip(people, got, expected):
                if label != right:
                    raise CheckFailed(
                        f"control_task(people, labels, seed={s}) gave person {person!r} the "
                        f"label {label!r}, expected {right!r}: with rng = random.Random(seed), "
                        f"call rng.choice(labels) (the list, repeats included) once per "
                        f"distinct person, in sorted order.")
    passed("control_task", len(seeds))


def _selectivity_case(seed):
    """One layer of activations about people: each person has a task label (a property of the
    person), a large random offset of their own and noise, and a control label. Two splits: by
    person (the control task cannot be learnt), and by example (a probe can learn the control
    task by memorising the people, as in Hewitt and Liang's word-type control tasks)."""
    g = _generator(seed)
    people = _people(g, _pick(g, 30, 45))
    distinct = sorted(set(people))
    d, n_classes = _pick(g, 10, 16), 2 + seed % 2
    means = torch.randn(n_classes, d, generator=g) * 1.5
    own_class = {p: int(torch.randint(0, n_classes, (), generator=g)) for p in distinct}
    offset = {p: 2 * torch.randn(d, generator=g) for p in distinct}
    activations = torch.stack([means[own_class[p]] + offset[p] for p in people])
    activations = activations + 0.3 * torch.randn(activations.shape, generator=g)
    names = [_WORDS[int(i)] for i in torch.randperm(len(_WORDS), generator=g)[:n_classes]]
    labels = [names[own_class[p]] for p in people]
    control = ref.control_task(people, labels, seed)
    while len(set(control)) < 2:
        seed += 1000
        control = ref.control_task(people, labels, seed)

    def usable(train):
        return all(len({values[i] for i in train.tolist()}) >= 2 for values in (labels, control))

    split_seed = seed
    by_person = ref.split_by_person(people, 0.3, split_seed)
    while not usable(by_person[0]):
        split_seed += 1000
        by_person = ref.split_by_person(people, 0.3, split_seed)
    by_example = _split(g, len(people), 0.3)
    while not usable(by_example[0]):
        by_example = _split(g, len(people), 0.3)
    return activations, labels, control, {"split by person": by_person,
                                          "split by example": by_example}


def check_selectivity(selectivity, seeds=VISIBLE_SEEDS):
    learner = _exercise(selectivity, "selectivity",
                        ("probe_by_layer", "validate_probe_data", "linear_probe"))
    for seed in seeds:
        activations, labels, control, splits = _selectivity_case(seed)
        for split, make_probe, probe in (
                ("split by person", ref.linear_probe, ""),
                ("split by example", ref.linear_probe, ""),
                ("split by person", _tree_probe, " with another make_probe (a decision tree)"),
                ("split by example", _tree_probe, " with another make_probe (a decision tree)")):
            train, test = splits[split]
            got = learner(activations, labels, control, train, test, make_probe=make_probe)
            expected = _reference(ref.selectivity, activations, labels, control, train, test,
                                  make_probe=make_probe)
            call = (f"selectivity on {activations.shape[0]} examples of {len(set(labels))} "
                    f"classes, {split}{probe}")
            if (not isinstance(got, (tuple, list)) or len(got) != 3
                    or any(isinstance(v, torch.Tensor) and v.numel() != 1 for v in got)):
                raise CheckFailed(f"{call} should return three Python floats (task, control, "
                                  f"task - control), got {type(got).__name__}.")
            for i, (part, hint) in enumerate((
                    ("task accuracy", "train make_probe() on the task labels of the training "
                                      "examples and score it on the test examples"),
                    ("control accuracy", "train a second make_probe() on the control labels and "
                                         "score it on the control labels of the test examples"),
                    ("selectivity", "return task accuracy - control accuracy"))):
                expect_number(got[i], expected[i], f"the {part} of {call}", hint,
                              tol=(2 if i == 2 else 1) * _accuracy_tolerance(test))
    passed("selectivity", len(seeds))


# 6 · Amnesic probing ----------------------------------------------------------------------------

def _directions(g, d, k, dependent=False):
    """k directions in d dimensions, neither orthogonal nor normalised; with ``dependent``, the
    last is a combination of two others."""
    directions = torch.randn(k, d, generator=g) * (torch.rand(k, 1, generator=g) * 5 + 0.2)
    directions = directions + 0.8 * directions[:1]  # far from orthogonal
    if dependent:
        directions[-1] = 2.0 * directions[0] - 0.5 * directions[1]
    return directions


def check_project_out(project_out, seeds=VISIBLE_SEEDS):
    learner = _exercise(project_out, "project_out")
    for seed in seeds:
        g = _generator(seed)
        d = _pick(g, 6, 16)
        shapes = ((d,), (_pick(g, 2, 6), d), (_pick(g, 2, 4), _pick(g, 2, 5), d))
        cases = (
            ("one direction, not of norm 1", _directions(g, d, 1),
             "a direction need not have norm 1: divide by its norm (or use the SVD)"),
            ("several directions, neither orthogonal nor normalised",
             _directions(g, d, _pick(g, 2, d // 2 + 1)),
             "the directions need not be orthogonal: project onto an orthonormal basis of "
             "their span, the left singular vectors of directionsᵀ (torch.linalg.svd)"),
            ("directions that are linearly dependent",
             _directions(g, d, _pick(g, 3, d // 2 + 2), dependent=True),
             "the directions may be dependent: keep only the singular vectors with non-zero "
             "singular values (above 1e-5 of the largest)"),
        )
        for shape, (what, directions, hint) in zip(shapes, cases):
            x = torch.randn(shape, generator=g) * 2
            got = learner(x, directions)
            expected = ref.project_out(x, directions)
            call = (f"project_out(x, directions) for x of shape {tuple(x.shape)} and "
                    f"{len(directions)} {what}")
            if (isinstance(got, torch.Tensor) and got.shape == x.shape
                    and torch.allclose(got.detach(), x - expected, atol=1e-4)):
                raise CheckFailed(f"{call} returned the component of x in the span of the "
                                  f"directions: return what is left, x minus that component.")
            expect_tensor(got, expected, call, hint, atol=1e-4)
    passed("project_out", len(seeds))


def _nullspace_case(seed):
    g = _generator(seed)
    n, d, n_classes = _pick(g, 60, 90), _pick(g, 12, 20), 2 + seed % 2
    classes = torch.randint(0, n_classes, (n,), generator=g)
    classes[:n_classes] = torch.arange(n_classes)
    means = torch.randn(n_classes, d, generator=g) * 1.5
    activations = means[classes] + torch.randn(n, d, generator=g)
    labels = _as_labels(g, classes, seed % 3)
    train, _ = _split(g, n)
    return activations, labels, train


def check_nullspace_directions(nullspace_directions, seeds=VISIBLE_SEEDS):
    learner = _exercise(nullspace_directions, "nullspace_directions",
                        ("project_out", "linear_probe"))
    for seed in seeds:
        activations, labels, train = _nullspace_case(seed)
        n_classes = len(set(np.asarray(labels).tolist()))
        for r in (1, 3):
            got = learner(activations, labels, train, r)
            expected = _reference(ref.nullspace_directions, activations, labels, train, r)
            per_round = 1 if n_classes == 2 else n_classes
            expect_tensor(got, expected,
                          f"nullspace_directions with {r} round{'s' if r > 1 else ''} and "
                          f"{n_classes} classes ({per_round} "
                          f"direction{'s' if per_round > 1 else ''} per round)",
                          "each round, project every direction found so far out of the "
                          "activations, fit make_probe() on the training examples only, and "
                          "append the rows of probe.coef_ (as float32) to the directions",
                          atol=1e-2 * float(expected.abs().max()), rtol=1e-2)
    passed("nullspace_directions", len(seeds))


def _recall_cases(seed):
    """(model, tokens, name_positions, last_positions, layer, directions, targets): fact prompts
    of the shipped model, and random sequences of different lengths (padded on the right) on a
    random model. Most targets are what the model predicts with the directions projected out,
    some are other tokens, so that the accuracy is neither 0 nor 1."""
    g = _generator(seed)
    cases = []
    model, tokenizer = _shipped()
    world, asked = _world()
    relation = ("born_in", "works_as", "owns")[seed % 3]
    prompts = recall_prompts(world, asked, relation)
    chosen = [prompts[int(i)] for i in torch.randperm(len(prompts), generator=g)[:40]]
    tokens = encode(tokenizer, [p.prompt for p in chosen])
    names = torch.tensor([p.subject_span[1] for p in chosen])  # last name word, after BOS
    lasts = torch.tensor([len(p.prompt.split()) for p in chosen])
    d = model.config.n_embd
    cases.append((model, tokens, names, lasts, seed % 2, torch.randn(d - 8, d, generator=g)))
    model = _random_model(seed)
    batch, length = 32, _pick(g, 5, 9)
    tokens = torch.randint(1, model.config.vocab_size, (batch, length), generator=g)
    tokens[:, 0] = 0
    lasts = torch.randint(2, length - 1, (batch,), generator=g)
    for row in range(batch):
        tokens[row, lasts[row] + 1:] = BOS_ID  # padding
    names = lasts - 1 - (torch.rand(batch, generator=g) < 0.3).long()
    d = model.config.n_embd
    cases.append((model, tokens, names, lasts, 0, torch.randn(d - 1, d, generator=g)))
    out = []
    for model, tokens, names, lasts, layer, directions in cases:
        rows = torch.arange(len(tokens))

        def forget(activation, name, directions=directions, names=names, rows=rows):
            activation = activation.clone()
            activation[rows, names] = ref.project_out(activation[rows, names], directions)
            return activation

        logits, _ = run_with_cache(model, tokens, names=[],
                                   patches={f"blocks.{layer}.hook_resid_post": forget})
        targets = logits[rows, lasts].argmax(dim=-1)
        others = torch.randint(1, model.config.vocab_size, (len(tokens),), generator=g)
        swap = torch.rand(len(tokens), generator=g) < 0.25
        swap[0] = True
        targets = torch.where(swap, others, targets)
        out.append((model, tokens, names, lasts, layer, directions, targets))
    return out


def check_amnesic_recall(amnesic_recall, seeds=VISIBLE_SEEDS):
    learner = _exercise(amnesic_recall, "amnesic_recall", ("project_out",))
    for seed in seeds:
        for model, tokens, names, lasts, layer, directions, targets in _recall_cases(seed):
            got = learner(model, tokens, names, lasts, layer, directions, targets)
            expected = ref.amnesic_recall(model, tokens, names, lasts, layer, directions,
                                          targets)
            expect_number(got, expected,
                          f"amnesic_recall on {_describe(model)} after block {layer}, "
                          f"{len(directions)} directions, {len(tokens)} prompts of different "
                          f"lengths",
                          f"patch blocks.{layer}.hook_resid_post only at each prompt's name "
                          f"position, with project_out of itself, and compare the argmax at "
                          f"each prompt's last position (last_positions) with targets; return "
                          f"the share that match", tol=1e-6)
    passed("amnesic_recall", len(seeds))


# 7 · Integrated gradients -----------------------------------------------------------------------

def _target_logit(model, tokens, target):
    with torch.no_grad():
        return float(model(tokens[None]).logits[0, -1, target])


def _ig_cases(seed):
    """(model, tokens, target, baseline, other baseline, steps) on the shipped model (a fact
    prompt from an all-BOS baseline) and a random model (random tokens)."""
    g = _generator(seed)
    model, tokenizer = _shipped()
    world, asked = _world()
    prompts = recall_prompts(world, asked, ("born_in", "works_as", "owns")[seed % 3])
    prompt = prompts[_pick(g, 0, len(prompts))]
    tokens = encode(tokenizer, [prompt.prompt])[0]
    target = tokenizer.convert_tokens_to_ids(prompt.object)
    baseline = torch.full_like(tokens, BOS_ID)
    other = baseline.clone()
    other[1:] = torch.randint(1, model.config.vocab_size, (len(tokens) - 1,), generator=g)
    cases = [(model, tokens, target, baseline, other, _pick(g, 12, 24))]
    model = _random_model(seed)
    length = _pick(g, 4, 9)
    tokens = torch.randint(1, model.config.vocab_size, (length,), generator=g)
    baseline = torch.randint(1, model.config.vocab_size, (length,), generator=g)
    other = torch.zeros_like(tokens)
    target = _pick(g, 0, model.config.vocab_size)
    cases.append((model, tokens, target, baseline, other, _pick(g, 12, 24)))
    return cases


def check_integrated_gradients(integrated_gradients, seeds=VISIBLE_SEEDS):
    learner = _exercise(integrated_gradients, "integrated_gradients")
    for seed in seeds:
        for model, tokens, target, baseline, other, steps in _ig_cases(seed):
            what = (f"integrated_gradients on {_describe(model)} for {len(tokens)} tokens, "
                    f"{steps} steps")
            got = learner(model, tokens, target, baseline, steps)
            expected = ref.integrated_gradients(model, tokens, target, baseline, steps)
            if not isinstance(got, torch.Tensor):
                raise CheckFailed(f"{what} should return a torch.Tensor, got "
                                  f"{type(got).__name__}.")
            got = got.detach()
            if got.shape != expected.shape:
                d = model.config.n_embd
                raise CheckFailed(f"{what}: expected shape {tuple(expected.shape)}, one "
                                  f"attribution per token, got {tuple(got.shape)}"
                                  + (": sum (x - x') × mean gradient over d_model."
                                     if got.shape[-1:] == (d,) else "."))
            if not torch.isfinite(got).all():
                raise CheckFailed(f"{what} contains NaN or infinite values.")
            scale = float(expected.abs().max())
            # The path: with one step the midpoint rule gives a different answer.
            one_step = learner(model, tokens, target, baseline, 1)
            if (isinstance(one_step, torch.Tensor) and one_step.shape == got.shape
                    and float(got.abs().max()) > 1e-3 * scale
                    and torch.allclose(one_step.detach(), got, atol=1e-6 * scale, rtol=0)
                    and not torch.allclose(ref.integrated_gradients(model, tokens, target,
                                                                    baseline, 1),
                                           expected, atol=1e-3 * scale, rtol=0)):
                raise CheckFailed(f"{what} gives the same attributions for steps=1 and "
                                  f"steps={steps}: it ignores the steps; average the gradients "
                                  f"at the `steps` points x' + α (x - x') along the path, not "
                                  f"the gradient at one point.")
            moved = learner(model, tokens, target, other, steps)
            if (isinstance(moved, torch.Tensor) and moved.shape == got.shape
                    and float(got.abs().max()) > 1e-3 * scale
                    and torch.allclose(moved.detach(), got, atol=1e-6 * scale, rtol=0)):
                raise CheckFailed(f"{what} gives the same attributions for two different "
                                  f"baselines: it ignores the baseline; the path starts at "
                                  f"x' = wte(baseline), and each attribution multiplies by "
                                  f"x - x'.")
            change = _target_logit(model, tokens, target) - _target_logit(model, baseline,
                                                                           target)
            gap, reference_gap = abs(float(got.sum()) - change), abs(float(expected.sum()) - change)
            if gap > 3 * reference_gap + 0.02 * max(abs(change), scale):
                raise CheckFailed(f"{what} breaks completeness: the attributions sum to "
                                  f"{float(got.sum()):.4g}, but the target's logit at the final "
                                  f"position goes from {_target_logit(model, baseline, target):.4g}"
                                  f" (baseline) to {_target_logit(model, tokens, target):.4g} "
                                  f"(input), a change of {change:.4g}: multiply the mean gradient "
                                  f"of that logit by x - x' and sum over d_model.")
            expect_tensor(got, expected, what,
                          "use the midpoint rule, α = (k + ½) / steps for k = 0 .. steps - 1, "
                          "and average (not sum) the gradients", atol=1e-4 * scale, rtol=1e-4)
    passed("integrated_gradients", len(seeds))


# 8 · A probe that finds nothing ---------------------------------------------------------------

def _statement_cases(seed):
    g = _generator(seed)
    world, asked = _world()
    everyone = [p.name for p in world.people]
    cases = []
    for relation, pool in ((("born_in", "works_as", "owns", "lives_in")[seed % 4], everyone),
                           (("owns", "lives_in", "born_in", "works_as")[seed % 4],
                            sorted(asked))):
        people = [pool[int(i)] for i in torch.randperm(len(pool), generator=g)[:50]]
        cases.append((people, relation))
    return world, cases


def _statement_problem(got, world, people, relation, call):
    """What is wrong with the form of the learner's statements (not the draws), or None."""
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return f"{call} should return a pair (texts, labels), got {type(got).__name__}."
    texts, labels = got
    if len(texts) != 2 * len(people) or len(labels) != 2 * len(people):
        return (f"{call} returned {len(texts)} texts and {len(labels)} labels: expected two "
                f"statements per person, {2 * len(people)} in all.")
    if list(labels) != [1, 0] * len(people):
        return (f"{call}: the labels should alternate 1, 0, 1, 0: for each person the true "
                f"statement (label 1) first, then the false one (label 0).")
    for i, person in enumerate(people):
        right = fact_prompt(person, relation, 0, world.lookup(person, relation)).text
        if texts[2 * i] != right:
            return (f"{call}: the true statement about {person!r} should be {right!r}, got "
                    f"{texts[2 * i]!r}: use the relation's first template, "
                    f"FACT_TEMPLATES[relation][0], via fact_prompt(person, relation, 0, obj).text.")
        false = texts[2 * i + 1]
        if false == right:
            return (f"{call}: the false statement {false!r} is true: draw the false object from "
                    f"the relation's objects without the true one.")
        head = fact_prompt(person, relation, 0, "").prompt
        if not (isinstance(false, str) and false.startswith(head + " ")):
            return (f"{call}: the false statement about {person!r} should start {head!r}, got "
                    f"{false!r}: use the same template as the true one, with another object.")
    return None


def check_true_false_statements(true_false_statements, seeds=VISIBLE_SEEDS):
    learner = _exercise(true_false_statements, "true_false_statements")
    for seed in seeds:
        world, cases = _statement_cases(seed)
        results = []
        # First the form of every statement, over all cases (a false statement that is true
        # shows up only where the draw happens to hit the true object) ...
        for people, relation in cases:
            for s in (seed, seed + 101):
                call = (f"true_false_statements(world, people, {relation!r}, seed={s}) for "
                        f"{len(people)} people")
                got = learner(world, list(people), relation, s)
                problem = _statement_problem(got, world, people, relation, call)
                if problem:
                    raise CheckFailed(problem)
                results.append((people, relation, s, list(got[0])))
        # ... then the draws.
        for people, relation, s, texts in results:
            expected, _ = ref.true_false_statements(world, people, relation, s)
            if texts != expected:
                twin = next(t for p, r, s2, t in results
                            if p is people and r == relation and s2 != s)
                if twin == texts:
                    raise CheckFailed(f"true_false_statements gives the same statements for "
                                      f"seeds {seed} and {seed + 101}: it ignores the seed; "
                                      f"draw with random.Random(seed).")
                i = next(i for i, (a, b) in enumerate(zip(texts, expected)) if a != b)
                raise CheckFailed(
                    f"true_false_statements(world, people, {relation!r}, seed={s}): the false "
                    f"statement about {people[i // 2]!r} should be {expected[i]!r}, got "
                    f"{texts[i]!r}: with rng = random.Random(seed), call rng.choice on the "
                    f"relation's objects, sorted, without the true one, once per person in the "
                    f"order given.")
    passed("true_false_statements", len(seeds))


# 9 · A model that lies ---------------------------------------------------------------------------

def _lens_cases(seed):
    """(model, residuals): the shipped model's residual stream on random tokens, and random
    residuals (not centred, of different scales) for a random model whose embeddings are not tied
    to its unembedding and whose final LayerNorm is not the identity."""
    g = _generator(seed)
    model = _shipped()[0]
    tokens = torch.randint(1, model.config.vocab_size, (6, _pick(g, 4, 10)), generator=g)
    tokens[:, 0] = BOS_ID
    positions = torch.randint(1, tokens.shape[1], (6,), generator=g)
    cases = [(model, ref.residual_stack(model, tokens, positions).detach())]
    model = _random_model(seed)
    d, n_rows = model.config.n_embd, model.config.n_layer + 1
    residuals = (torch.randn(n_rows, 7, d, generator=g) * (torch.rand(n_rows, 1, 1, generator=g)
                                                           * 4 + 0.5) + torch.randn(d, generator=g))
    cases.append((model, residuals))
    return cases


def check_logit_lens(logit_lens, seeds=VISIBLE_SEEDS):
    learner = _exercise(logit_lens, "logit_lens")
    for seed in seeds:
        for model, residuals in _lens_cases(seed):
            got = learner(model, residuals)
            expected = ref.logit_lens(model, residuals)
            call = (f"logit_lens on {_describe(model)}, residuals of shape "
                    f"{tuple(residuals.shape)}")
            if (isinstance(got, torch.Tensor) and got.is_floating_point()
                    and got.shape == expected.shape):
                raise CheckFailed(f"{call} returned floats: return the top token's id "
                                  f"(argmax over the vocabulary), as torch.long.")
            expect_tensor(got, expected, call,
                          "apply model.transformer.ln_f to every read-out point (the last "
                          "block's output too, which comes before it), then model.lm_head "
                          "(not the embedding matrix: a model need not tie them), and take the "
                          "argmax over the vocabulary", atol=0, rtol=0)
    passed("logit_lens", len(seeds))


def _mass_mean_case(seed):
    """Activations (layers, n, d) with a different gap between the two classes at every layer and
    an offset far from the origin (a threshold at zero fails), classes of unequal size (a threshold
    at the mean of all projections fails), labels as bools, 0/1 ints or a numpy array, and a
    random split."""
    g = _generator(seed)
    n_rows, n, d = _pick(g, 3, 6), _pick(g, 60, 90), _pick(g, 6, 12)
    positive = torch.rand(n, generator=g) < 0.3
    positive[:2] = torch.tensor([True, False])
    gap = torch.randn(d, generator=g)
    strength = torch.rand(n_rows, generator=g) * 1.2 + 0.2
    offset = torch.randn(n_rows, 1, d, generator=g) * 3
    activations = (torch.randn(n_rows, n, d, generator=g) + offset
                   + strength[:, None, None] * positive[None, :, None] * gap)
    labels = [(bool(p), int(p), None)[seed % 3] for p in positive]
    if seed % 3 == 2:
        labels = positive.numpy().astype(int)
    train, test = _split(g, n)
    return activations, labels, train, test


def check_mass_mean_probe(mass_mean_probe, seeds=VISIBLE_SEEDS):
    learner = _exercise(mass_mean_probe, "mass_mean_probe", ("validate_probe_data",))
    for seed in seeds:
        activations, labels, train, test = _mass_mean_case(seed)
        call = (f"mass_mean_probe on {activations.shape[0]} layers of {activations.shape[1]} "
                f"examples ({len(test)} for test, classes of unequal size)")
        got = learner(activations, labels, train, test)
        expected = ref.mass_mean_probe(activations, labels, train, test)
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise CheckFailed(f"{call} should return a pair (directions, accuracies), got "
                              f"{type(got).__name__}.")
        directions, accuracies = got
        if (isinstance(directions, torch.Tensor) and directions.shape == expected[0].shape
                and torch.allclose(directions.float(), -expected[0], atol=1e-4)):
            raise CheckFailed(f"{call}: the directions point the wrong way: mean of the "
                              f"label-1 examples minus mean of the label-0 examples.")
        expect_tensor(directions, expected[0], f"the directions of {call}",
                      "the difference of the two classes' mean activations over the training "
                      "examples only, not normalised", atol=1e-4)
        expect_tensor(accuracies, expected[1], f"the accuracies of {call}",
                      "threshold each test example's projection onto the direction at the "
                      "projection of the midpoint of the two training means (not at zero, and "
                      "not at the mean of all projections: the classes differ in size)",
                      atol=_accuracy_tolerance(test), rtol=0)
        for bad, args in _bad_probe_inputs(activations, labels, train, test):
            _raised_value_error(learner, "mass_mean_probe", args, bad)
    passed("mass_mean_probe", len(seeds))


def _steering_cases(seed):
    """(model, tokens, last_positions, layer, direction, scale): fact prompts of different lengths
    on the shipped model, and random padded sequences on a random model, each with a random
    direction (not of norm 1) at a scale that changes some of the predictions."""
    g = _generator(seed)
    model, tokenizer = _shipped()
    world, asked = _world()
    prompts = recall_prompts(world, asked, ("born_in", "works_as", "owns")[seed % 3])
    chosen = [prompts[int(i)] for i in torch.randperm(len(prompts), generator=g)[:40]]
    tokens = encode(tokenizer, [p.prompt for p in chosen])
    lasts = torch.tensor([len(p.prompt.split()) for p in chosen])
    d = model.config.n_embd
    cases = [(model, tokens, lasts, 1 + seed % 3, torch.randn(d, generator=g) * 0.7,
              (3.0, -2.0, 5.0)[seed % 3])]
    model = _random_model(seed)
    batch, length = 24, _pick(g, 5, 9)
    tokens = torch.randint(1, model.config.vocab_size, (batch, length), generator=g)
    tokens[:, 0] = BOS_ID
    lasts = torch.randint(2, length - 1, (batch,), generator=g)
    for row in range(batch):
        tokens[row, lasts[row] + 1:] = BOS_ID  # padding
    cases.append((model, tokens, lasts, 0, torch.randn(model.config.n_embd, generator=g) * 0.5,
                  (2.0, 3.0, -3.0)[seed % 3]))
    return cases


def check_steered_predictions(steered_predictions, seeds=VISIBLE_SEEDS):
    learner = _exercise(steered_predictions, "steered_predictions")
    for seed in seeds:
        for model, tokens, lasts, layer, direction, scale in _steering_cases(seed):
            got = learner(model, tokens, lasts, layer, direction, scale)
            expected = ref.steered_predictions(model, tokens, lasts, layer, direction, scale)
            expect_tensor(got, expected,
                          f"steered_predictions on {_describe(model)} after block {layer}, "
                          f"scale {scale:g}, {len(tokens)} prompts of different lengths",
                          f"add scale × direction (as given, not normalised) to "
                          f"blocks.{layer}.hook_resid_post only at each prompt's last real "
                          f"token (last_positions), and read the argmax there", atol=0, rtol=0)
    passed("steered_predictions", len(seeds))
