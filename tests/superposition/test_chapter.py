"""What chapter 01 says its models do, measured on the runs its solution notebook makes.

The solution notebook is executed once per session; these tests read the trained models and
results out of its kernel, and check that the text states the measured figures."""

from datetime import datetime

import pytest

from reference_impl.course.execute import CELL_TIMEOUT, score


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


def test_sparse_batches_have_the_stated_density(run, text):
    fractions = run("(batch != 0).float().mean(dim=(0, 2)).tolist()")
    assert fractions == pytest.approx([1.0, 0.3, 0.05], abs=0.01)
    # P(no feature of five present) and P(two or more) at p = 0.05
    none, two_or_more = run("[(batch[:, 2] == 0).all(-1).float().mean().item(),"
                            " ((batch[:, 2] != 0).sum(-1) >= 2).float().mean().item()]")
    assert none == pytest.approx(0.77, abs=0.01) and two_or_more == pytest.approx(0.02, abs=0.01)
    assert "no feature active 77 % of the time, and two or more only 2 %" in text


def test_linear_model_keeps_only_the_top_m_features(run, text):
    norms = run("linear.W.detach().norm(dim=1).squeeze().tolist()")
    assert all(n == pytest.approx(1.0, abs=0.05) for n in norms[:5])
    assert max(norms[5:]) < 0.1
    assert "The five most important features have norm 1 and the other fifteen almost none " \
           "(below 0.1)" in text


def test_relu_model_represents_more_features_as_density_falls(run, text):
    counts = run("(relu_model.W.detach().norm(dim=1) >= 0.5).sum(dim=1).tolist()")
    assert counts == [5, 10, 12, 16, 20]
    assert "5, 10, 12, 16 and 20\nfeatures at the five densities" in text


def test_pentagons(run, text):
    pentagon = run("pentagon_instances(pentagon_model.W.detach(), "
                   "pentagon_model.b.detach()).tolist()")
    assert sum(pentagon) >= 5
    assert pentagon == [False] + [True] * 7
    assert "Seven of the eight instances" in text
    norms = run("[pentagon_model.W.detach()[1:].norm(dim=1).min().item(), "
                "pentagon_model.W.detach()[1:].norm(dim=1).max().item()]")
    assert 1.125 <= norms[0] and norms[1] < 1.145
    assert "equal norms (1.13 to 1.14)" in text
    biases = run("[pentagon_model.b.detach()[1:].min().item(), "
                 "pentagon_model.b.detach()[1:].max().item()]")
    assert -0.265 <= biases[0] and biases[1] < -0.235
    assert "negative bias (−0.26 to −0.24)" in text
    dims = run("feature_dimensionality(pentagon_model.W.detach())[1:].flatten().tolist()")
    assert all(abs(d - 0.4) <= 0.01 for d in dims)


def test_the_local_minimum_is_a_square_with_a_shrunk_feature(run, text):
    norms = sorted(run("pentagon_model.W.detach()[0].norm(dim=0).tolist()"))
    assert norms[0] == pytest.approx(0.35, abs=0.01)
    assert all(n == pytest.approx(1.0, abs=0.06) for n in norms[1:])
    angles = sorted(run("neighbour_angles(pentagon_model.W.detach())[:1].flatten().tolist()"))
    assert angles[0] < 5 and all(a == pytest.approx(90, abs=3) for a in angles[1:])
    dims = sorted(run("feature_dimensionality(pentagon_model.W.detach())[0].tolist()"))
    assert all(d == pytest.approx(0.5, abs=0.06) for d in dims[1:])
    assert "fifth shrunk to a norm of 0.35" in text


def test_dimensions_per_feature_falls_with_a_plateau_at_one_half(run, text):
    density = run("sweep_densities.tolist()")
    dims = run("sweep_dims.tolist()")
    assert dims[0] == pytest.approx(1.0, abs=0.02)
    assert all(later <= earlier + 0.02 for earlier, later in zip(dims, dims[1:]))
    assert dims[-1] == pytest.approx(0.14, abs=0.01)
    plateau = [i for i, d in enumerate(dims) if abs(d - 0.5) <= 0.07]
    runs = [i for i in plateau if all(j in plateau for j in (i, i + 1, i + 2))]
    assert runs, "no three consecutive densities within 0.5 ± 0.07"
    assert min(dims[i] for i in plateau) >= 0.48 and max(dims[i] for i in plateau) <= 0.52
    assert density[plateau[0]] == pytest.approx(0.45, abs=0.01)
    assert density[plateau[-1]] == pytest.approx(0.28, abs=0.01)
    assert "from about 0.45 to 0.28 the curve\nrests on a plateau at 1/2 (0.52 to 0.48)" in text
    assert "towards 0.14 at $p = 0.01$" in text
    # Feature by feature: on the plateau every represented feature has D_i close to 1/2.
    plateau_dims = run(f"[feature_dimensionality(sweep_model.W.detach())[i]"
                       f"[sweep_model.W.detach()[i].norm(dim=0) >= 0.5].tolist() "
                       f"for i in {plateau}]")
    assert all(abs(d - 0.5) <= 0.1 for dims_at_p in plateau_dims for d in dims_at_p)
    assert all(len(dims_at_p) >= 30 for dims_at_p in plateau_dims)
    assert "every represented feature has $D_i$\nclose to 1/2" in text


def test_phase_diagram_has_three_regions(run, text):
    phase = run("phase.view(9, 9).tolist()")  # rows: density 0.01 ... 1; columns: r 0.1 ... 10
    importance = run("relative_importance.tolist()")
    density = run("phase_densities.tolist()")
    NOT_REPRESENTED, DEDICATED, SUPERPOSITION = 0, 1, 2
    cell = {(round(r, 2), round(p, 2)): phase[i][j]
            for i, p in enumerate(density) for j, r in enumerate(importance)}
    assert cell[(0.1, 1.0)] == NOT_REPRESENTED
    assert cell[(10.0, 1.0)] == DEDICATED
    assert cell[(1.0, 0.01)] == SUPERPOSITION
    dense = phase[-1]
    assert all(v == NOT_REPRESENTED for r, v in zip(importance, dense) if r < 1)
    assert all(v == DEDICATED for r, v in zip(importance, dense) if r > 1)
    assert all(v == SUPERPOSITION for p, row in zip(density, phase) if p <= 0.1 + 1e-6
               for v in row)
    assert "(every cell with\n$p \\le 0.1$)" in text


def test_rotating_the_hidden_space_changes_nothing(run):
    assert run("change.item()") < 1e-5


def test_dense_relu_model_is_an_identity_block_and_sparse_ones_pair_up(run, text):
    gram = run("(relu_model.W.detach()[0].T @ relu_model.W.detach()[0])[:5, :5].tolist()")
    for i in range(5):
        for j in range(5):
            assert gram[i][j] == pytest.approx(1.0 if i == j else 0.0, abs=0.1)
    # At p = 0.3 the ten represented features form five antipodal pairs.
    cosines = run("torch.nn.functional.normalize(relu_model.W.detach()[1][:, "
                  "relu_model.W.detach()[1].norm(dim=0) >= 0.5], dim=0)"
                  ".T.matmul(torch.nn.functional.normalize(relu_model.W.detach()[1][:, "
                  "relu_model.W.detach()[1].norm(dim=0) >= 0.5], dim=0)).min(dim=1).values.tolist()")
    assert len(cosines) == 10 and max(cosines) < -0.9
    assert "the ten represented features form\nfive such pairs" in text
