"""What chapter 03 says the induction model does, measured on the run its solution notebook makes.

The solution notebook is executed once per session; these tests read its results out of the
kernel, check the bars the chapter relies on, and check that the text states the measured
figures. The bars use the zoo's own definition of the circuit (``attn_only.circuit_heads``)."""

import pytest
import torch
from transformers import GPT2Config

from reference_impl.induction_heads import solutions as solution
from reference_impl.course.execute import Execution, score
from reference_impl.world import repeated_tokens
from reference_impl.zoo import attn_only, build_model


@pytest.fixture(scope="module")
def text(induction_heads):
    return " ".join(induction_heads.source.read_text().split())  # line breaks do not matter


@pytest.fixture(scope="module")
def run(induction_heads_run):
    return induction_heads_run.value


@pytest.fixture(scope="module")
def circuit(run):
    previous = torch.tensor(run("previous_scores.tolist()"))
    induction = torch.tensor(run("induction_scores.tolist()"))
    prev_heads, ind_heads, neither = attn_only.circuit_heads(previous, induction)
    return previous, induction, prev_heads, ind_heads, neither


def _stated(text, *fragments):
    for fragment in fragments:
        assert " ".join(fragment.split()) in text, fragment


def test_solution_notebook_scores_full_marks(induction_heads_run):
    results = score(Execution(induction_heads_run.nb, 0.0))
    assert len(results) == 13
    assert all(r.passed for r in results), [(r.exercise, r.message) for r in results]


def test_the_notebook_finds_the_zoo_circuit(run, circuit):
    _, _, prev_heads, ind_heads, _ = circuit
    assert [tuple(h) for h in run("previous_heads")] == prev_heads
    assert [tuple(h) for h in run("induction_heads")] == ind_heads


# 1 · Reading attention

def test_detectors(run, text):
    scores = torch.tensor(run("random_scores.tolist()"))  # (layer, detector, head)
    current, previous, first = scores.transpose(0, 1).flatten(1)
    assert run("detected") == {"current": [], "previous": ["0.3"], "first": []}
    assert round(previous[3].item(), 2) == 0.93
    assert round(previous[2].item(), 2) == 0.14 and previous.sort().values[-2] == previous[2]
    assert round(current.max().item(), 2) == 0.09 and round(first.max().item(), 2) == 0.20
    assert sorted(i for i, p in enumerate(previous) if p >= 0.1) == [2, 3]
    _stated(text, "head 0.3 puts 0.93 of its attention on the previous token",
            "The next best, head 0.2, puts only 0.14 there",
            "(the largest such scores are 0.09 and 0.20)",
            "at 0.1, head 0.2 would count as a previous-token head too")


# 2 · Repeated random tokens

def test_the_second_copy_is_predicted(run, text):
    first, second = run("[first_loss, second_loss]")
    assert round(first, 2) == 7.11 and round(second, 2) == 0.31
    assert first > torch.log(torch.tensor(288.0)).item() == pytest.approx(5.66, abs=0.005)
    losses = run("loss_by_token.tolist()")
    assert losses[25] > 5 and max(losses[26:]) < 1  # token 26 opens the second copy
    _stated(text, "the loss is 7.11 nats, worse than the 5.66 nats (ln 288)",
            "the loss falls to 0.31 nats", "(position 26) stays unpredictable")


# 3 · Induction heads

def test_scores_single_out_the_circuit_heads(circuit, text):
    """Bar: each circuit head scores at least twice the best head outside the circuit."""
    previous, induction, prev_heads, ind_heads, _ = circuit
    assert prev_heads == [(0, 3)] and ind_heads == [(1, 0), (1, 1), (1, 2), (1, 3)]
    for scores, heads in ((previous, prev_heads), (induction, ind_heads)):
        inside = torch.tensor([scores[h].item() for h in heads])
        outside = torch.tensor([scores[l, h].item() for l in range(2) for h in range(4)
                                if (l, h) not in heads])
        assert inside.min() >= 2 * outside.max()
        assert inside.min() > 6 * outside.max()
        assert round(outside.max().item(), 2) == (0.14 if heads == prev_heads else 0.03)
    assert round(previous[0, 3].item(), 2) == 0.93
    assert round(induction[1].min().item(), 2) == 0.58
    assert round(induction[1].max().item(), 2) == 0.64
    _stated(text, "Head 0.3 has a previous-token score of 0.93, against at most 0.14",
            "induction scores from 0.58 to 0.64, against at most 0.03",
            "more than six times the best head outside it", "24 positions below it")


# 4 · The logit lens

def test_the_answer_appears_after_layer_1(run, text):
    accuracy = run("[row[length + 1:].mean().item() for row in accuracy]")
    assert [round(a, 2) for a in accuracy] == [0.00, 0.00, 0.95]
    assert run("torch.allclose(lens[-1], logits, atol=1e-4)")
    _stated(text, "(top-1 accuracy 0.00 at both stages); after layer 1 it does 95 %")


# 5 · Direct logit attribution

def test_attribution_adds_up_to_the_logit(run, text):
    assert run("(attribution.sum(dim=-1) - correct_logit).abs().max().item()") < 1e-5
    _stated(text, "add up to the logit to within $10^{-5}$")


def test_induction_heads_dominate_the_attribution(run, circuit, text):
    """Bar: the induction heads write at least half of the correct-token logit beyond the
    embedding's share."""
    labels = run("labels")
    on_second = dict(zip(labels, run("on_second.tolist()")))
    induction = sum(on_second[f"{l}.{h}"] for l, h in circuit[3])
    beyond_embedding = sum(on_second.values()) - on_second["embed"]
    assert induction / beyond_embedding >= 0.5
    assert round(100 * induction / beyond_embedding) == 100
    assert round(sum(on_second.values()), 1) == 9.6 and round(induction, 1) == 9.6
    assert round(on_second["0.3"], 2) == 0.01
    assert abs(on_second["0.3"]) < max(abs(on_second["0.0"]), abs(on_second["0.1"]))
    assert max(abs(v) for v in run("on_first.tolist()")) < 0.25
    _stated(text, "a logit of 9.6 on average, and the four induction heads write 9.6 of it: 100 %",
            "no component contributes more than 0.25", "(0.01 for head 0.3")


# 6 · Ablation

def test_ablation_bars(run, circuit, text):
    """Bars: mean-ablating the induction heads, or the previous-token heads as a group, raises
    the second-copy loss at least 3×; any head outside the circuit less than 1.5×."""
    _, _, prev_heads, ind_heads, _ = circuit
    groups = run("{f'{g} {m}': r for (g, m), r in group_ratios.items()}")
    assert groups["induction heads mean"] >= 3 and groups["previous-token heads mean"] >= 3
    mean = torch.tensor(run("ratios['mean'].tolist()"))
    outside = [mean[l, h].item() for l in range(2) for h in range(4)
               if (l, h) not in prev_heads + ind_heads]
    assert len(outside) == 3 and max(outside) < 1.5
    assert max(abs(r - 1) for r in outside) < 0.08
    assert round(groups["induction heads mean"], 1) == 18.8
    assert round(groups["previous-token heads mean"], 1) == 19.3
    assert round(groups["induction heads zero"], 1) == 21.0
    assert round(mean[1].min().item(), 1) == 1.5 and round(mean[1].max().item(), 1) == 2.2
    zero = torch.tensor(run("ratios['zero'].tolist()"))
    assert round(zero[1, 2].item(), 1) == 1.1 and round(mean[1, 2].item(), 1) == 2.2
    _stated(text, "multiplies the second-copy loss by 18.8",
            "mean-ablating the previous-token head 0.3 by 19.3",
            "change the loss by less than 8 % each", "only 1.5× to 2.2×",
            "multiplies the loss by 21.0 rather than 18.8",
            "for head 1.2 alone zero-ablation gives 1.1× where mean-ablation gives 2.2×")


# 7 · Circuits

def test_induction_heads_copy(run, circuit, text):
    """Bar: every induction head's OV circuit has top-1 accuracy and copying score ≥ 0.9."""
    ov = {(int(l), int(h)): (accuracy, copying) for l, h, accuracy, copying
          in run("[list(map(str, h)) + [ov_accuracy[h], ov_copying[h]] for h in every_head]")}
    for head in circuit[3]:
        accuracy, copying = ov[head]
        assert accuracy >= 0.9 and copying >= 0.9 and copying > 0.999
    accuracies = [ov[head][0] for head in circuit[3]]
    assert round(min(accuracies), 2) == 0.92 and round(max(accuracies), 2) == 0.95
    assert round(ov[(0, 3)][0], 2) == 0.75
    _stated(text, "For 92 % to 95 % of the ordinary tokens", "copying scores are above 0.999",
            "the previous-token head 0.3 reaches a top-1 accuracy of 0.75 too")


def test_previous_token_heads_are_positional(run, circuit, text):
    one_back = run("one_back")
    assert [round(one_back[str(h)], 2) for h in range(4)] == [0.16, 0.06, 0.65, 0.95]
    assert round(circuit[0][0, 2].item(), 2) == 0.14
    _stated(text, "For head 0.3 the position one back gets the highest score at 95 %",
            "Head 0.2 reaches 65 %, yet puts only 0.14 of its real attention",
            "For heads 0.0 and 0.1 it is 16 % and 6 %")


def test_k_composition(run, circuit, text):
    """Bar: the previous-token heads K-compose with the induction heads at ≥ 2× the random
    baseline (mean over the pairs)."""
    _, _, prev_heads, ind_heads, _ = circuit
    baseline = run("baseline")
    k = torch.tensor(run("k_composition.tolist()"))
    pairs = torch.tensor([[k[p, i].item() for _, i in ind_heads] for _, p in prev_heads])
    assert pairs.mean() >= 2 * baseline
    assert round(baseline, 3) == 0.125
    assert round(k[3].mean().item(), 2) == 0.30 and round((k[3].mean() / baseline).item(), 1) == 2.4
    others = k[:3].mean(dim=1) / baseline
    assert round(others.min().item(), 1) == 1.0 and round(others.max().item(), 1) == 1.3
    _stated(text, "The random baseline is 0.125",
            "at 2.4 times the baseline (0.30 on average); the other layer-0 heads at 1.0 to 1.3")


# 8 · The phase change

def test_the_phase_change(run, text):
    log = run("log")
    assert run("formed_at") == 850
    index = log["steps"].index
    best = [max(max(row) for row in scores[1:]) for scores in log["induction_scores"]]
    best_previous = [max(scores[0]) for scores in log["previous_token_scores"]]
    assert max(best[:index(850)]) < 0.5 <= best[index(850)]
    assert round(best[index(750)], 2) == 0.25 and round(best[index(850)], 2) == 0.62
    assert round(log["second_copy_loss"][index(750)], 2) == 4.29
    assert round(log["second_copy_loss"][index(950)], 2) == 0.68
    assert round(best_previous[index(750)], 2) == 0.19
    assert round(best_previous[index(950)], 2) == 0.67
    assert round(log["loss"][index(750)], 2) == 4.42 and round(log["loss"][index(950)], 2) == 2.34
    assert log["steps"][-1] == 3000
    _stated(text, "form at step 850 of 3,000", "0.25 at step 750 to 0.62 at step 850",
            "falls from 4.29 to 0.68 nats between steps 750 and 950", "rises from 0.19 to 0.67",
            "from 4.42 to 2.34 over the same 200 steps")


# The tools work on a full-size GPT-2 -------------------------------------------------------------

def test_the_tools_run_on_a_full_size_gpt2():
    torch.manual_seed(0)
    model = build_model(GPT2Config()).eval()
    tokens = repeated_tokens(model.config.vocab_size, 6, 1, torch.Generator().manual_seed(0))
    previous, induction = solution.head_scores(model, tokens)
    assert previous.shape == induction.shape == (12, 12)
    lens = solution.logit_lens(model, tokens)
    assert lens.shape == (13, 1, 13, model.config.vocab_size)
    attribution = solution.direct_logit_attribution(model, tokens)
    logits = model(tokens).logits[:, :-1].gather(-1, tokens[:, 1:, None]).squeeze(-1)
    assert torch.allclose(attribution.sum(dim=-1), logits, atol=1e-3)
    assert solution.k_composition_scores(model, writer=3, reader=7).shape == (12, 12)
    assert solution.positional_qk_circuit(model, 5, 1).shape == (1024, 1024)
