"""What chapter 04 says about world-5l's IOI circuit, measured on the run its solution notebook
makes.

The solution notebook is executed once per session; these tests read its results out of the
kernel, check the bars of the chapter's issue, and check that the text states the measured figures
(``tests.claims``: every number stated about the model lives in the text only)."""

import dataclasses

import pytest
import torch
from transformers import GPT2Config

from reference_impl.course.execute import Execution, score
from reference_impl.ioi_circuit import solutions as solution
from reference_impl.ioi_circuit.data import IOIBatch, first, heldout_batches, ioi_batch
from reference_impl.world import IOI_NAMES, ioi_example
from reference_impl.zoo import build_model, load_model
from tests.claims import stated, states


@pytest.fixture(scope="module")
def text(ioi_circuit):
    return " ".join(ioi_circuit.source.read_text().split())


@pytest.fixture(scope="module")
def run(ioi_circuit_run):
    return ioi_circuit_run.value


def _grid(run, expression):
    return torch.tensor(run(f"{expression}.tolist()"))


def test_solution_notebook_scores_full_marks(ioi_circuit_run):
    results = score(Execution(ioi_circuit_run.nb, 0.0))
    assert len(results) == 10
    assert all(r.passed for r in results), [(r.exercise, r.message) for r in results]


def test_the_model_and_the_prompts(run, text):
    n_layer, n_head, d_model = run("[config.n_layer, config.n_head, config.n_embd]")
    states(text, "a GPT-2 with {} layers of {} heads, a residual stream of {} dimensions and MLPs",
           n_layer, n_head, d_model)
    n_prompts, n_templates = run("[n_prompts, len(batches)]")
    states(text, "The {} prompts come from {} templates the model never saw", n_prompts,
           n_templates)


# 1 · Metrics

def test_metrics(run, text):
    full = run("full")
    states(text, "the model's logit difference is {} and its accuracy {}; IO gets a "
                 "log-probability of {} and S one of {}", full["logit_diff"], full["accuracy"],
           full["log_p_io"], full["log_p_s"])
    states(text, "On the ABC prompts the logit difference is {}", run("abc_logit_diff"))


# 2 · Direct logit attribution

def test_the_parts_add_up_and_head_1_0_writes_most(run, text):
    accumulated = run("accumulated.tolist()")
    direct = run("direct")
    assert abs(sum(direct.values()) - run("full['logit_diff']")) < 1e-3
    assert abs(accumulated[-1] - run("full['logit_diff']")) < 1e-3
    assert max(abs(v) for v in accumulated[:2]) < 0.1  # nothing before block 1
    states(text, "block 1 brings the logit difference to {}", accumulated[2])
    states(text, "head 1.0 contributes {} directly, while MLP 1, MLP 2 and MLP 4 add {}, {} and {}",
           direct["1.0"], direct["mlp 1"], direct["mlp 2"], direct["mlp 4"])
    others = [abs(v) for k, v in direct.items() if "." in k and k != "1.0"]
    bound, = stated(text, "No other head contributes more than {} either way")
    assert max(others) <= bound


# 3 · Attention

def test_attention_roles(run, text):
    attention = _grid(run, "attention")  # (row, layer, head): end→IO, end→S1, end→S2, S2→S1
    abba, baba = _grid(run, "by_order['ABBA']"), _grid(run, "by_order['BABA']")
    states(text, "Head 1.0 attends from the end to S2, with {} of its attention",
           attention[2, 1, 0].item())
    states(text, "({} and {} for head 1.2)", attention[0, 1, 2].item(), attention[1, 1, 2].item())
    movers = [(1, 2), (3, 0), (4, 2)]
    states(text, "in ABBA prompts they attend to S1 ({}, {} and {}), in BABA prompts to IO ({}, {} "
                 "and {})", *[abba[1][h].item() for h in movers],
           *[baba[0][h].item() for h in movers])
    states(text, "Head 3.3 attends to the first name instead ({} in ABBA prompts, {} in BABA)",
           abba[0, 3, 3].item(), baba[1, 3, 3].item())
    bound, = stated(text, "No head attends from S2 to S1 by more than {}")
    assert attention[3].max() <= bound
    order = run("{o: m['logit_diff'] for o, m in order_metrics.items()}")
    states(text, "the logit difference is {} on ABBA prompts and {} on BABA", order["ABBA"],
           order["BABA"])


# 4 · Activation patching

def test_activation_patching(run, text):
    residual = _grid(run, "residual_grid")  # (layer, pos)
    s2, end = run("[patch_batch.positions['S2'][0].item(), patch_batch.positions['end'][0].item()]")
    states(text, "patching the residual stream at S2 entering block 1 restores {} of the logit "
                 "difference, at the end entering block 2 {}", residual[1, s2].item(),
           residual[2, end].item())
    carriers = torch.zeros_like(residual, dtype=torch.bool)
    carriers[:2, s2] = carriers[2:, end] = True
    assert (residual[carriers] > 0.95).all() and residual[~carriers].abs().max() < 0.05
    z, pattern, v = (_grid(run, f"head_grids['{a}']") for a in ("z", "pattern", "v"))
    states(text, "patching its output restores {} of the logit difference", z[1, 0].item())
    others = z.clone()
    others[1, 0] = 0
    bound, = stated(text, "no other head restores more than {}")
    assert others.abs().max() <= bound
    states(text, "Its values alone restore almost as much ({})", v[1, 0].item())
    assert abs(pattern[1, 0]) < 0.05
    by_position = _grid(run, "z_by_position")
    by_position[1, 0, end] = 0
    assert by_position.abs().max() < 0.05  # head 1.0 at the end, and nowhere else


# 5 · Path patching

def _effects(run, name):
    return {tuple(k): v for k, v in run(f"[[[str(s[0]), str(s[1]), kind], e] for (s, kind), e "
                                        f"in {name}.items()]")}


def test_path_patching_names_what_the_heads_read(run, text):
    into_suppressor = _effects(run, "into_suppressor")
    states(text, "from MLP 0 into its values, {}", into_suppressor[("0", "mlp", "v")])
    bound, = stated(text, "the query and key paths carry little (no sender beyond {})")
    assert max(abs(e) for (_, _, kind), e in into_suppressor.items() if kind != "v") <= bound
    others = [abs(e) for k, e in into_suppressor.items() if k != ("0", "mlp", "v")]
    assert max(others) <= bound
    into_movers = _effects(run, "into_movers")
    bound, = stated(text, "no sender in layers 0 to 2 carries more than {} through their queries")
    assert max(abs(e) for e in into_movers.values()) <= bound


# 6 · Attribution patching

def test_attribution_patching_agrees_with_activation_patching(run, text):
    agreement = run("agreement")
    assert agreement["heads"] >= 0.8  # the bar
    states(text, "its Pearson correlation with activation patching is {} on the head grid and {} "
                 "on the residual grid", agreement["heads"], agreement["residual stream"])
    n_layer, positions = run("list(residual_grid.shape)")
    states(text, "{} runs for the residual grid and {} for the heads above", n_layer * positions,
           run("len(heads)"))
    head, residual = _grid(run, "head_estimate"), _grid(run, "residual_estimate")
    s2 = run("patch_batch.positions['S2'][0].item()")
    states(text, "head 1.0 is estimated at {} of the logit difference it restores when patched, "
                 "and the residual stream at S2 entering block 1 at {}",
           head[1, 0].item(), residual[1, s2].item())


# 7 · The circuit

def test_single_knock_outs_and_the_metric_lesson(run, text):
    full = run("full")
    single = {tuple(map(int, k.split("."))): m for k, m in
              run("{f'{l}.{h}': m for (l, h), m in single.items()}").items()}
    suppressor = single[(1, 0)]
    states(text, "Knocking out head 1.0 takes the logit difference from {} to {} and the accuracy "
                 "to {}: log p(S) rises from {} to {}", full["logit_diff"],
           suppressor["logit_diff"], suppressor["accuracy"], full["log_p_s"],
           suppressor["log_p_s"])
    alone = run("only_suppressor")
    states(text, "even raises the logit difference to {}", alone["logit_diff"])
    states(text, "But then the accuracy is {}: IO's log-probability falls to {}",
           alone["accuracy"], alone["log_p_io"])
    # The bar: a head whose knock-out lowers accuracy while raising the logit difference.
    mover = single[(1, 2)]
    assert mover["accuracy"] < full["accuracy"] and mover["logit_diff"] > full["logit_diff"]
    states(text, "Knocking out head 1.2 *raises* the logit difference, to {}, while the accuracy "
                 "falls to {} and log p(IO) from {} to {}", mover["logit_diff"],
           mover["accuracy"], full["log_p_io"], mover["log_p_io"])
    states(text, "S falls further (log p(S) {})", mover["log_p_s"])
    together = run("movers_out")
    states(text, "heads 1.2, 3.0 and 4.2 take the accuracy to {}, lower than 1.2 alone ({}), 3.0 "
                 "alone ({}) or 4.2 alone ({})", together["accuracy"], mover["accuracy"],
           single[(3, 0)]["accuracy"], single[(4, 2)]["accuracy"])
    assert together["accuracy"] < min(single[h]["accuracy"] for h in [(1, 2), (3, 0), (4, 2)])


def test_the_circuit_is_faithful_and_minimal(run, text):
    full, kept = run("full"), run("kept")
    circuit = [tuple(h) for h in run("circuit")]
    single = {tuple(map(int, k.split("."))): m for k, m in
              run("{f'{l}.{h}': m for (l, h), m in single.items()}").items()}
    accuracy_step, logit_step = stated(text, "We keep every head whose knock-out moves the "
                                             "accuracy by at least {} (3 of the 200 prompts) or the "
                                             "logit difference by at least {}")
    assert circuit == [h for h, m in single.items()
                       if abs(m["accuracy"] - full["accuracy"]) >= accuracy_step
                       or abs(m["logit_diff"] - full["logit_diff"]) >= logit_step]
    # The bars: at most 10 heads, >= 0.8 of the logit difference, accuracy >= 0.8.
    assert len(circuit) <= 10
    assert kept["logit_diff"] >= 0.8 * full["logit_diff"] and kept["accuracy"] >= 0.8
    states(text, "{} heads pass: {}.{}, {}.{}, {}.{}, {}.{}, {}.{}, {}.{}, {}.{}, {}.{} and {}.{}",
           len(circuit), *[x for h in circuit for x in h])
    states(text, "the circuit keeps a logit difference of {}, {} of the full model's, and an "
                 "accuracy of {}, {} of the full model's", kept["logit_diff"],
           kept["logit_diff"] / full["logit_diff"], kept["accuracy"],
           kept["accuracy"] / full["accuracy"])
    outside = [h for h in single if h not in circuit]
    states(text, "No head outside it moves the logit difference by more than {} or the accuracy "
                 "by more than {}",
           max(abs(single[h]["logit_diff"] - full["logit_diff"]) for h in outside),
           max(abs(single[h]["accuracy"] - full["accuracy"]) for h in outside))
    without = {tuple(map(int, k.split("."))): m for k, m in
               run("{f'{l}.{h}': m for (l, h), m in without_one.items()}").items()}
    for head, m in without.items():  # minimality: every head is needed
        assert m["accuracy"] < kept["accuracy"] and m["log_p_io"] < kept["log_p_io"], head
    lowest = min(without, key=lambda h: without[h]["accuracy"])
    highest = max(without, key=lambda h: without[h]["accuracy"])
    states(text, "to between {} (without {}.{}) and {} (without {}.{})",
           without[lowest]["accuracy"], *lowest, without[highest]["accuracy"], *highest)


def test_every_circuit_head_has_a_measured_role(run, text):
    circuit = [tuple(h) for h in run("circuit")]
    labels = run("labels")
    attribution, roles = run("attribution.tolist()"), run("roles_direct.tolist()")
    by_name = _grid(run, "by_name")  # end→N1, end→N2, end→S2

    def direct(values, head):
        return values[labels.index(f"{head[0]}.{head[1]}")]

    states(text, "| 1.0 | S2 ({}) | +{} to logit(IO) − logit(S) |", by_name[2, 1, 0].item(),
           direct(attribution, (1, 0)))
    movers = [(1, 2), (3, 0), (4, 2)]
    states(text, "| 1.2, 3.0, 4.2 | N2 ({}, {}, {}) | +{}, +{}, +{} to logit(N2) − logit(N1) |",
           *[by_name[1][h].item() for h in movers], *[direct(roles, h) for h in movers])
    states(text, "| 3.3 | N1 ({}) | {} to logit(N2) − logit(N1) |", by_name[0, 3, 3].item(),
           direct(roles, (3, 3)))
    states(text, "| 1.3 | N1 and N2 ({}, {}) | {} to logit(N2) − logit(N1) |",
           by_name[0, 1, 3].item(), by_name[1, 1, 3].item(), direct(roles, (1, 3)))
    early = [h for h in circuit if h[0] == 0]
    assert early == [(0, 1), (0, 2), (0, 3)]
    to_n1, to_n2, writes = stated(text, "| 0.3 | N1 and N2 ({}, {}) | at most {} along either "
                                        "direction |")
    assert abs(by_name[0, 0, 3].item() - to_n1) <= 0.005
    assert abs(by_name[1, 0, 3].item() - to_n2) <= 0.005
    others, = stated(text, "| 0.1, 0.2 | no name (at most {}) |")
    assert by_name[:3, 0, 1:3].max() <= others
    assert max(abs(direct(v, h)) for v in (attribution, roles) for h in early) <= writes
    shift, = stated(text, "knocking any one of them out moves the attention of the later circuit "
                          "heads by at most {}")
    assert max(run("list(early_shift.values())")) <= shift
    assert {h for h in circuit} == {(1, 0), (1, 2), (3, 0), (4, 2), (3, 3), (1, 3), *early}


# Bad input, and a full-size model

def test_bad_batches_get_one_sentence():
    _, tokenizer = load_model("world-5l")
    one = ioi_example(0, *IOI_NAMES[:3], "ABBA")
    other = ioi_example(1, *IOI_NAMES[:3], "ABBA")
    with pytest.raises(ValueError, match="different lengths .* group_by_template"):
        ioi_batch(tokenizer, [one, other])
    with pytest.raises(ValueError, match="the same name"):
        ioi_batch(tokenizer, [dataclasses.replace(one, s=one.io)])


def test_bad_metrics_and_patches_get_one_sentence():
    model, tokenizer = load_model("world-5l")
    batch = first(heldout_batches(tokenizer)[0], 3)
    with pytest.raises(ValueError, match=r"returned a tensor of shape \(3,\), not one number"):
        solution.residual_patching(model, batch.tokens, batch.corrupted,
                                   lambda logits: solution.logit_diff(logits, batch.io, batch.s))
    with pytest.raises(ValueError, match="returned shape"):
        solution.final_metric(model, batch.tokens, lambda logits: logits[:, 0].mean(),
                              {"blocks.0.hook_resid_pre": lambda x, _: x[:, :-1]})


def test_every_exercise_runs_on_a_full_size_gpt2():
    """Shapes and finiteness on a randomly initialised GPT2Config() model (124M parameters), so
    that the same code analyses GPT-2 small's IOI."""
    torch.manual_seed(0)
    model = build_model(GPT2Config()).eval()
    n_layer, n_head = model.config.n_layer, model.config.n_head
    size, length = 2, 5
    tokens = torch.randint(0, model.config.vocab_size, (size, length))
    corrupted = tokens.clone()
    corrupted[:, 3] = 7
    io, s = tokens[:, 1], tokens[:, 2]
    positions = {"IO": torch.tensor([1, 2]), "S1": torch.tensor([2, 1]), "S2": torch.tensor([3, 3]),
                 "end": torch.tensor([4, 4])}
    batch = IOIBatch(tokens, corrupted, io, s, positions, [])

    def metric(logits):
        return solution.logit_diff(logits, io, s).mean()

    logits = model(tokens).logits[:, -1]
    assert set(solution.ioi_metrics(logits, io, s)) == {"logit_diff", "accuracy", "log_p_io",
                                                        "log_p_s"}
    assert solution.accumulated_logit_diff(model, tokens, io, s).shape == (n_layer + 1, size)
    parts = solution.logit_diff_attribution(model, tokens, io, s)
    assert parts.shape == (len(solution.component_labels(model)), size)
    assert torch.allclose(parts.sum(0), solution.logit_diff(logits, io, s).detach(), atol=1e-2)
    assert solution.ioi_attention(model, batch.tokens, batch.positions).shape == (4, n_layer, n_head)
    assert solution.residual_patching(model, tokens, corrupted, metric).shape == (n_layer, length)
    effect = solution.path_patching(model, tokens, corrupted, metric, (0, 3), [(11, 9, "q")])
    assert isinstance(effect, float)
    names = ["blocks.5.attn.hook_z", "blocks.5.hook_resid_pre"]
    estimates = solution.attribution_patching(model, tokens, corrupted, metric, names)
    assert estimates[names[0]].shape == (length, n_head, 64)
    patches = solution.mean_ablation_patches(model, corrupted, [(9, 6), (10, 7)])
    assert len(patches) == n_layer


@pytest.mark.slow  # one forward pass of a 124M-parameter model per head: 144 of them
def test_head_patching_runs_on_a_full_size_gpt2():
    torch.manual_seed(0)
    model = build_model(GPT2Config()).eval()
    tokens = torch.randint(0, model.config.vocab_size, (1, 4))
    corrupted = tokens.clone()
    corrupted[:, 2] = 7

    def metric(logits):
        return solution.logit_diff(logits, tokens[:, 1], tokens[:, 2]).mean()

    grid = solution.head_patching(model, tokens, corrupted, metric, activation="v")
    assert grid.shape == (model.config.n_layer, model.config.n_head) and torch.isfinite(grid).all()
