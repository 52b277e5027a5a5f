"""What chapter 01 says its models do, measured on the runs its solution notebook makes.

The solution notebook is executed once per session; these tests read the trained models and
results out of its kernel, check the bars the chapter's claims rest on, and check that the text
states the measured figures (``tests.claims``: every number stated about a model lives in the text
only, and is compared with the measurement to the precision it is written with)."""

import math
from datetime import datetime

import pytest

from reference_impl.course.execute import CELL_TIMEOUT, score
from tests.claims import stated, states

# A feature is represented when its norm is at least this (the notebook prints the same count).
REPRESENTED = 0.5


@pytest.fixture(scope="module")
def text(superposition):
    return superposition.source.read_text()


@pytest.fixture(scope="module")
def run(superposition_run):
    return superposition_run.value


def test_solution_notebook_scores_full_marks(superposition_run):
    from reference_impl.course.execute import Execution

    results = score(Execution(superposition_run.nb, 0.0))
    assert len(results) == 8
    assert all(r.passed for r in results), [(r.exercise, r.message) for r in results]


def test_every_cell_is_well_inside_the_cell_timeout(superposition_run):
    durations = []
    for cell in superposition_run.nb.cells:
        timing = cell.metadata.get("execution", {})
        if "iopub.execute_input" in timing:
            start, end = (datetime.fromisoformat(timing[k].replace("Z", "+00:00"))
                          for k in ("iopub.execute_input", "shell.execute_reply"))
            durations.append((end - start).total_seconds())
    assert durations and max(durations) < CELL_TIMEOUT / 2


def test_the_text_describes_the_models_the_notebook_trains(run, text):
    train_lr, train_batch = run("[__import__('inspect').signature(train).parameters[k].default "
                                "for k in ('lr', 'batch_size')]")
    states(text, "Adam with a learning rate of $10^{{}}$, a fresh batch of {} inputs every step",
           math.log10(train_lr), train_batch)
    _, m, n = run("list(linear.W.shape)")
    importance = run("linear.importance[0].tolist()")
    assert not run("linear.relu") and run("relu_model.relu")
    states(text, "First, $n = {}$ features in $m = {}$ dimensions with importances "
                 "$I_i = {}^i$, every feature always present ($p = {}$), and no ReLU",
           n, m, [b / a for a, b in zip(importance, importance[1:])], run("linear.density.item()"))
    assert run("(relu_model.importance == linear.importance).all().item()")
    instances, m, n = run("list(pentagon_model.W.shape)")
    assert len(set(run("pentagon_model.importance.flatten().tolist()"))) == 1  # equally important
    states(text, "Take $n = {}$ equally important features in $m = {}$ dimensions at density "
                 "$p = {}$, and train {} instances", n, m, run("pentagon_model.density.tolist()"),
           instances)
    density = run("sweep_densities.tolist()")
    instances, m, n = run("list(sweep_model.W.shape)")
    assert instances == len(density)  # one instance per density
    states(text, "we sweep $n = {}$ features in $m = {}$ dimensions over {} densities from {} to "
                 "{}, one instance per density", n, m, len(density), density[0], density[-1])
    _, m, n = run("list(phase_diagram_weights(torch.ones(1), torch.ones(1), copies=1, steps=1)"
                  ".shape)")
    states(text, "the smallest interesting case, $n = {}$ features and $m = {}$ dimension", n, m)
    importance, density = run("relative_importance.tolist()"), run("phase_densities.tolist()")
    copies = run("__import__('inspect').signature(phase_diagram_weights)"
                 ".parameters['copies'].default")
    assert len(run("phase.tolist()")) == len(importance) * len(density)
    states(text, "a {} × {} grid of relative importances from {} to {} and densities from {} to {}",
           len(importance), len(density), importance[0], importance[-1], density[0], density[-1])
    states(text, "every cell is trained from {} random starts at once and the start with the "
                 "lowest loss is kept ({} instances in one `ToyModel`",
           copies, copies * len(importance) * len(density))


def test_sparse_batches_have_the_stated_density(run, text):
    fractions = run("(batch != 0).float().mean(dim=(0, 2)).tolist()")
    n = run("batch.shape[-1]")
    # every feature present at density 1, fewer as the density falls
    assert fractions[0] == 1.0 and fractions == sorted(fractions, reverse=True)
    # P(no feature of five present) and P(two or more), sampled and exact, at the last density
    none, two_or_more = run("[(batch[:, 2] == 0).all(-1).float().mean().item(),"
                            " ((batch[:, 2] != 0).sum(-1) >= 2).float().mean().item()]")
    p, = stated(text, "at $p = {}$ an input with")
    exact_none = (1 - p) ** n
    exact_two = 1 - exact_none - n * p * (1 - p) ** (n - 1)
    states(text, "at $p = {}$ an input with {} features has no feature active {} % of the time, "
                 "and two or more only {} % of the time",
           fractions[2], n, [none, exact_none], [two_or_more, exact_two])


def test_linear_model_keeps_only_the_top_m_features(run, text):
    norms = run("linear.W.detach().norm(dim=1).squeeze().tolist()")
    importance = run("linear.importance[0].tolist()")
    m = run("linear.W.shape[1]")
    top = sorted(range(len(norms)), key=lambda i: -importance[i])[:m]
    assert [i for i, norm in enumerate(norms) if norm >= REPRESENTED] == sorted(top)
    *_, below = states(
        text, "The {} most important features have norm {} and the other {} almost none "
              "(below {})", m, [norms[i] for i in top], len(norms) - m, None,
        tolerance=[None, 0.05, None, None],
        reason="'norm 1' says the kept features have unit length; trained norms are within 0.05")
    assert max(norm for i, norm in enumerate(norms) if i not in top) < below


def test_relu_model_represents_more_features_as_density_falls(run, text):
    counts = run(f"(relu_model.W.detach().norm(dim=1) >= {REPRESENTED}).sum(dim=1).tolist()")
    density = run("relu_model.density.tolist()")
    _, m, n = run("list(relu_model.W.shape)")
    assert density == sorted(density, reverse=True)
    assert all(a < b for a, b in zip(counts, counts[1:])), counts  # more as density falls
    assert counts[0] == m and counts[-1] == n, counts
    states(text, "When every feature is always present ($p = {}$), the ReLU model behaves like "
                 "the linear one: {} features, {} dimensions", density[0], counts[0], m)
    states(text, "the model represents more and more of them in the same {} dimensions: "
                 "{}, {}, {}, {} and {} features at the {} densities", m, *counts, len(density))


def test_pentagons(run, text):
    pentagon = run("pentagon_instances(pentagon_model.W.detach(), "
                   "pentagon_model.b.detach()).tolist()")
    n = run("pentagon_model.W.shape[-1]")
    assert sum(pentagon) >= 5
    assert not pentagon[0]  # "The first instance is stuck in a local minimum"
    states(text, "{} of the {} instances place the {} features at the corners of a regular "
                 "pentagon", sum(pentagon), len(pentagon), n)

    def on_pentagons(expression):
        return run(f"({expression})[pentagon_instances(pentagon_model.W.detach(), "
                   "pentagon_model.b.detach())].flatten().tolist()")

    norms = on_pentagons("pentagon_model.W.detach().norm(dim=1)")
    biases = on_pentagons("pentagon_model.b.detach()")
    dims = on_pentagons("feature_dimensionality(pentagon_model.W.detach())")
    angles = on_pentagons("neighbour_angles(pentagon_model.W.detach())")
    assert max(biases) < 0  # "a negative bias"
    *_, centre, spread, _, _ = states(
        text, "equal norms ({} to {}), {}° between neighbours, every feature with dimensionality "
              "$D_i = 2/5$ ({} ± {}), and a negative bias ({} to {})",
        min(norms), max(norms), angles, sum(dims) / len(dims), None, min(biases), max(biases),
        tolerance=[None, None, 1.0, None, None, None, None],
        reason="'72°' is the regular pentagon's angle; trained pentagons are within a degree of it")
    assert centre == pytest.approx(2 / 5)
    assert all(abs(d - centre) <= spread + 1e-9 for d in dims)


def test_the_local_minimum_is_a_square_with_a_shrunk_feature(run, text):
    norms = sorted(run("pentagon_model.W.detach()[0].norm(dim=0).tolist()"))
    assert all(n == pytest.approx(1.0, abs=0.06) for n in norms[1:])
    angles = sorted(run("neighbour_angles(pentagon_model.W.detach())[:1].flatten().tolist()"))
    assert angles[0] < 5  # the fifth is squeezed in beside one of the others
    dims = sorted(run("feature_dimensionality(pentagon_model.W.detach())[0].tolist()"))
    assert all(d == pytest.approx(0.5, abs=0.06) for d in dims[1:])  # D_i ≈ 1/2
    states(text, "The first instance is stuck in a local minimum: {} features in a square, at {}° "
                 "from each other with $D_i \\approx 1/2$, and the fifth shrunk to a norm of {}",
           len(norms) - 1, angles[1:], norms[0])


def test_dimensions_per_feature_falls_with_a_plateau_at_one_half(run, text):
    density = run("sweep_densities.tolist()")
    dims = run("sweep_dims.tolist()")
    states(text, "Dense features get a dimension each ({} at $p = {}$)", dims[0], density[0])
    assert all(later <= earlier + 0.02 for earlier, later in zip(dims, dims[1:]))
    # The plateau: the densities at which the curve is near 1/2 (within 0.07) form one
    # stretch of at least three, and the curve is flat on it (its stated range).
    plateau = [i for i, d in enumerate(dims) if abs(d - 0.5) <= 0.07]
    assert len(plateau) >= 3 and plateau == list(range(plateau[0], plateau[-1] + 1)), plateau
    on_plateau = [dims[i] for i in plateau]
    states(text, "for densities from about {} to {} the curve rests on a plateau at 1/2 "
                 "({} to {})", density[plateau[0]], density[plateau[-1]], max(on_plateau),
           min(on_plateau), tolerance=[None, None, 0.03, 0.03],
           reason="the toy models train to slightly different optima on another CPU (0.46 on one)")
    states(text, "before it drops again towards {} at $p = {}$", dims[-1], density[-1])
    # Feature by feature: on the plateau every represented feature has D_i close to 1/2.
    plateau_dims = run(f"[feature_dimensionality(sweep_model.W.detach())[i]"
                       f"[sweep_model.W.detach()[i].norm(dim=0) >= {REPRESENTED}].tolist() "
                       f"for i in {plateau}]")
    assert all(abs(d - 0.5) <= 0.1 for dims_at_p in plateau_dims for d in dims_at_p)
    assert all(len(dims_at_p) >= 30 for dims_at_p in plateau_dims)
    assert "every represented feature has $D_i$\nclose to 1/2" in text


def test_phase_diagram_has_three_regions(run, text):
    phase = run("phase.view(9, 9).tolist()")  # rows: density 0.01 ... 1; columns: r 0.1 ... 10
    importance = run("relative_importance.tolist()")
    density = run("phase_densities.tolist()")
    NOT_REPRESENTED, DEDICATED, SUPERPOSITION = 0, 1, 2
    assert run("[NOT_REPRESENTED, DEDICATED, SUPERPOSITION]") == [0, 1, 2]
    dense_p, = stated(text, "When the features are dense ($p = {}$), only one of them fits")
    sparse_p, = stated(text, "(every cell with\n$p \\le {}$)")
    row = min(range(len(density)), key=lambda i: abs(density[i] - dense_p))
    assert density[row] == pytest.approx(dense_p)
    dense = phase[row]
    assert all(v == NOT_REPRESENTED for r, v in zip(importance, dense) if r < 1)
    assert all(v == DEDICATED for r, v in zip(importance, dense) if r > 1)
    sparse = [row for p, row in zip(density, phase) if p <= sparse_p * (1 + 1e-6)]
    assert sparse and all(v == SUPERPOSITION for row in sparse for v in row)


def test_rotating_the_hidden_space_changes_nothing(run):
    assert run("change.item()") < 1e-5


def _represented_cosines(run, instance):
    """Cosines between the represented features of one instance of the ReLU model."""
    W = f"relu_model.W.detach()[{instance}]"
    unit = (f"torch.nn.functional.normalize({W}[:, {W}.norm(dim=0) >= {REPRESENTED}], dim=0)")
    return run(f"{unit}.T.matmul({unit}).tolist()")


def test_dense_relu_model_is_an_identity_block_and_sparse_ones_pair_up(run, text):
    m = run("relu_model.W.shape[1]")
    gram = run(f"(relu_model.W.detach()[0].T @ relu_model.W.detach()[0])[:{m}, :{m}].tolist()")
    for i in range(m):
        for j in range(m):
            assert gram[i][j] == pytest.approx(1.0 if i == j else 0.0, abs=0.1)
    # At the stated density the represented features form antipodal pairs: each one's most
    # opposite partner has it as its own, at a cosine below -0.9.
    p, = stated(text, "At $p = {}$, for example, the")
    density = run("relu_model.density.tolist()")
    instance = min(range(len(density)), key=lambda i: abs(density[i] - p))
    cosines = _represented_cosines(run, instance)
    partner = [min(range(len(row)), key=row.__getitem__) for row in cosines]
    pairs = {frozenset((i, j)) for i, j in enumerate(partner) if partner[j] == i}
    assert all(cosines[i][j] < -0.9 for i, j in map(tuple, pairs))
    assert 2 * len(pairs) == len(cosines)  # every represented feature is in a pair
    states(text, "At $p = {}$, for example, the {} represented features form\n{} such pairs",
           density[instance], len(cosines), len(pairs))
