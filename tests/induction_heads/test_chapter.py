"""What chapter 03 says the induction model does, measured on the run its solution notebook makes.

The solution notebook is executed once per session; these tests read its results out of the
kernel, check the bars the chapter relies on, and check that the text states the measured
figures (``tests.claims``: every number stated about the model lives in the text only, and is
compared with the measurement to the precision it is written with). The bars use the zoo's own
definition of the circuit (``attn_only.circuit_heads``). The figures of the phase change happen
during training, so they are read from the training log shipped with the model."""

import inspect
import math
from collections import Counter

import pytest
import torch
from transformers import GPT2Config

from reference_impl.induction_heads import solutions as solution
from reference_impl.course.execute import Execution, score
from reference_impl.world import repeated_tokens
from reference_impl.world.tokenizer import SPECIAL_TOKENS
from reference_impl.zoo import attn_only, build_model
from tests.claims import stated, states


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


def _others(heads, n_layer=2, n_head=4):
    return [(l, h) for l in range(n_layer) for h in range(n_head) if (l, h) not in heads]


def test_solution_notebook_scores_full_marks(induction_heads_run):
    results = score(Execution(induction_heads_run.nb, 0.0))
    assert len(results) == 13
    assert all(r.passed for r in results), [(r.exercise, r.message) for r in results]


def test_the_notebook_finds_the_zoo_circuit(run, circuit):
    _, _, prev_heads, ind_heads, _ = circuit
    assert [tuple(h) for h in run("previous_heads")] == prev_heads
    assert [tuple(h) for h in run("induction_heads")] == ind_heads


def test_the_text_describes_the_model_and_the_data(run, text):
    n_layer, n_head, d_model, vocab = run("[config.n_layer, config.n_head, config.n_embd, "
                                          "config.vocab_size]")
    assert run("config.attention_only")  # no MLPs
    states(text, "a GPT-2 with {} layers of {} heads, a residual stream of {} dimensions, no MLPs, "
                 "and a vocabulary of {} words", n_layer, n_head, d_model, vocab)
    bos, unk, lowest = run("[tokenizer.bos_token_id, tokenizer.unk_token_id, "
                           "min(random_text[:, 1:].min().item(), tokens[:, 1:].min().item())]")
    assert lowest >= len(SPECIAL_TOKENS)  # r never contains a special token
    states(text, "(`r` never contains the special tokens BOS and UNK, ids {} and {})", bos, unk)
    sequences, positions = run("list(random_text.shape)")
    states(text, "First on text the model has no way to predict: {} sequences of {} random words "
                 "after BOS", sequences, positions - 1)
    threshold = run("DETECTOR_THRESHOLD")
    states(text, "`DETECTOR_THRESHOLD` = {}: at least {} % of the head's attention",
           threshold, threshold)


# 1 · Reading attention

def test_detectors(run, text):
    scores = torch.tensor(run("random_scores.tolist()"))  # (layer, detector, head)
    n_head = scores.shape[-1]
    current, previous, first = scores.transpose(0, 1).flatten(1)
    threshold = run("DETECTOR_THRESHOLD")
    label = [f"{i // n_head}.{i % n_head}" for i in range(len(previous))]
    assert run("detected") == {kind: [label[i] for i, s in enumerate(by_head) if s >= threshold]
                               for kind, by_head in (("current", current), ("previous", previous),
                                                     ("first", first))}
    best, second = previous.argsort(descending=True)[:2].tolist()
    states(text, "head {}.{} puts {} of its attention on the previous token",
           *divmod(best, n_head), previous[best].item())
    states(text, "The next best, head {}.{}, puts only {} there",
           *divmod(second, n_head), previous[second].item())
    assert previous[best] >= threshold > max(previous[second], current.max(), first.max())
    states(text, "as a current-token or first-token head (the largest such scores are {} and {})",
           current.max().item(), first.max().item())
    at = states(text, "at {}, head {}.{} would count as a previous-token head too",
                None, *divmod(second, n_head))[0]
    assert sorted(i for i, p in enumerate(previous) if p >= at) == sorted([best, second])


# 2 · Repeated random tokens

def test_the_second_copy_is_predicted(run, text):
    first, second = run("[first_loss, second_loss]")
    ordinary = run("config.vocab_size") - len(SPECIAL_TOKENS)
    assert first > math.log(ordinary)  # worse than a uniform guess
    states(text, "the loss is {} nats, worse than the {} nats (ln {})",
           first, math.log(ordinary), ordinary)
    states(text, "the loss falls to {} nats", second)
    losses, length = run("loss_by_token.tolist()"), run("length")
    # losses[i] is the loss on token i + 1; the second copy is tokens length + 1 ... 2 length
    second_copy = range(length, len(losses))
    unpredictable = [i + 1 for i in second_copy if losses[i] > 1]
    assert len(unpredictable) == 1 and losses[unpredictable[0] - 1] > 5
    states(text, "Only the first token of the second copy (position {}) stays unpredictable",
           unpredictable[0])
    assert unpredictable[0] == length + 1


# 3 · Induction heads

def test_scores_single_out_the_circuit_heads(run, circuit, text):
    """Bar: each circuit head scores at least twice the best head outside the circuit."""
    previous, induction, prev_heads, ind_heads, _ = circuit
    times, = stated(text, "Every head of the circuit scores more than {} times the best head "
                          "outside it")
    for scores, heads in ((previous, prev_heads), (induction, ind_heads)):
        inside = torch.tensor([scores[h].item() for h in heads])
        outside = torch.tensor([scores[h].item() for h in _others(heads)])
        assert inside.min() >= 2 * outside.max()
        assert inside.min() > times * outside.max()
    assert len(prev_heads) == 1
    states(text, "Head {}.{} has a previous-token score of {}, against at most {} for any other "
                 "head", *prev_heads[0], previous[prev_heads[0]].item(),
           max(previous[h].item() for h in _others(prev_heads)))
    layers = {l for l, _ in ind_heads}
    assert len(layers) == 1 and len(ind_heads) == induction.shape[1]  # every head of one layer
    values = [induction[h].item() for h in ind_heads]
    states(text, "the {} heads of layer {} have induction scores from {} to {}, against at most {} "
                 "for any other head", len(ind_heads), *layers, min(values), max(values),
           max(induction[h].item() for h in _others(ind_heads)))
    # The stripe: where each induction head attends most, on the second copy of one sequence.
    # The stripe: where each induction head attends most, on the second copy of one sequence
    # of the batch and of the short sequence of the figure.
    def stripes(sequence, length):
        offsets = run(f"(lambda cache: [[q - k for q, k in enumerate(cache[f'blocks.{{l}}.attn"
                      f".hook_pattern'][0, h].argmax(-1).tolist()) if q > {length}] for l, h in "
                      f"induction_heads])(run_with_cache(model, {sequence}, names=lambda name: "
                      f"name.endswith('attn.hook_pattern'))[1])")
        found = [Counter(head).most_common(1)[0] for head in offsets]
        assert all(count >= 0.9 * len(head) for (_, count), head in zip(found, offsets))
        return [offset for offset, _ in found]

    short_length = run("short.shape[1] // 2")
    batch, short = stripes("tokens[:1]", run("length")), stripes("short", short_length)
    states(text, "the induction heads draw a stripe parallel to the diagonal, {} positions below "
                 "it; on the short sequence drawn above (L = {}) the stripe is {} positions below "
                 "it", batch, short_length, short)
    assert set(batch) == {run("length") - 1} and set(short) == {short_length - 1}


# 4 · The logit lens

def test_the_answer_appears_after_layer_1(run, text):
    accuracy = run("[row[length + 1:].mean().item() for row in accuracy]")
    assert run("torch.allclose(lens[-1], logits, atol=1e-4)")
    states(text, "(top-1 accuracy {} at both stages); after layer {} it does {} %",
           accuracy[:-1], len(accuracy) - 2, accuracy[-1])


# 5 · Direct logit attribution

def test_attribution_adds_up_to_the_logit(run, text):
    exponent, = stated(text, "add up to the logit to within $10^{{}}$")
    assert run("(attribution.sum(dim=-1) - correct_logit).abs().max().item()") < 10 ** exponent


def test_induction_heads_dominate_the_attribution(run, circuit, text):
    """Bar: the induction heads write at least half of the correct-token logit beyond the
    embedding's share."""
    _, _, prev_heads, ind_heads, neither = circuit
    labels = run("labels")
    on_second = dict(zip(labels, run("on_second.tolist()")))
    induction = sum(on_second[f"{l}.{h}"] for l, h in ind_heads)
    beyond_embedding = sum(on_second.values()) - on_second["embed"]
    assert induction / beyond_embedding >= 0.5
    states(text, "gets a logit of {} on average, and the {} induction heads write {} of it: "
                 "{} % of everything but the token embedding's share", sum(on_second.values()),
           len(ind_heads), induction, induction / beyond_embedding)
    bound, = stated(text, "no component contributes more than {}")
    assert max(abs(v) for v in run("on_first.tolist()")) < bound
    (layer, head), = prev_heads
    states(text, "({} for head {}.{}, as little as the heads that do neither)",
           on_second[f"{layer}.{head}"], layer, head)
    assert abs(on_second[f"{layer}.{head}"]) < max(abs(on_second[f"{l}.{h}"]) for l, h in neither)


# 6 · Ablation

def test_ablation_bars(run, circuit, text):
    """Bars: mean-ablating the induction heads, or the previous-token heads as a group, raises
    the second-copy loss at least 3×; any head outside the circuit less than 1.5×."""
    _, _, prev_heads, ind_heads, _ = circuit
    groups = run("{f'{g} {m}': r for (g, m), r in group_ratios.items()}")
    assert groups["induction heads mean"] >= 3 and groups["previous-token heads mean"] >= 3
    mean = torch.tensor(run("ratios['mean'].tolist()"))
    zero = torch.tensor(run("ratios['zero'].tolist()"))
    outside = _others(prev_heads + ind_heads)
    assert len(outside) == 3 and max(mean[h].item() for h in outside) < 1.5
    (layer, head), = prev_heads
    states(text, "Mean-ablating the {} induction heads together multiplies the second-copy loss "
                 "by {}, and mean-ablating the previous-token head {}.{} by {}",
           len(ind_heads), groups["induction heads mean"], layer, head,
           groups["previous-token heads mean"])
    *_, less_than = states(text, "Heads {}.{}, {}.{} and {}.{}, which are not in the circuit, "
                                 "change the loss by less than {} % each",
                           *(i for h in outside for i in h), None)
    assert max(abs(mean[h].item() - 1) for h in outside) < less_than
    single = [mean[h].item() for h in ind_heads]
    states(text, "A single induction head raises the loss only {}× to {}×", min(single),
           max(single))
    states(text, "zero-ablating the {} induction heads multiplies the loss by {} rather than {}",
           len(ind_heads), groups["induction heads zero"], groups["induction heads mean"])
    # The head on which the two kinds of ablation disagree most.
    disagree = max(((l, h) for l in range(mean.shape[0]) for h in range(mean.shape[1])),
                   key=lambda h: abs(mean[h] - zero[h]).item())
    states(text, "for head {}.{} alone zero-ablation gives {}× where mean-ablation gives {}×",
           *disagree, zero[disagree].item(), mean[disagree].item())
    states(text, "Mean-ablating head {}.{} writes its average output", *disagree)


# 7 · Circuits

def test_induction_heads_copy(run, circuit, text):
    """Bar: every induction head's OV circuit has top-1 accuracy and copying score ≥ 0.9."""
    _, _, prev_heads, ind_heads, _ = circuit
    ov = {(int(l), int(h)): (accuracy, copying) for l, h, accuracy, copying
          in run("[list(map(str, h)) + [ov_accuracy[h], ov_copying[h]] for h in every_head]")}
    ordinary = run("[ordinary.start, ordinary.stop]")
    assert ordinary == [len(SPECIAL_TOKENS), None]
    states(text, "We measure both over the ordinary tokens, ids {} and up", ordinary[0])
    above, = stated(text, "their copying scores are above {}")
    for head in ind_heads:
        accuracy, copying = ov[head]
        assert accuracy >= 0.9 and copying >= 0.9 and copying > above
    accuracies = [ov[head][0] for head in ind_heads]
    states(text, "All {} induction heads copy. For {} % to {} % of the ordinary tokens",
           len(ind_heads), min(accuracies), max(accuracies))
    (layer, head), = prev_heads
    states(text, "the previous-token head {}.{} reaches a top-1 accuracy of {} too",
           layer, head, ov[(layer, head)][0])


def test_previous_token_heads_are_positional(run, circuit, text):
    previous, _, prev_heads, _, _ = circuit
    one_back = {int(h): share for h, share in run("one_back").items()}
    (layer, best), = prev_heads
    states(text, "For head {}.{} the position one back gets the highest score at {} % of the query "
                 "positions", layer, best, one_back[best])
    others = sorted((h for h in one_back if h != best), key=lambda h: -one_back[h])
    second, rest = others[0], sorted(others[1:])
    states(text, "Head {}.{} reaches {} %, yet puts only {} of its real attention on the previous "
                 "token", layer, second, one_back[second], previous[layer, second].item())
    states(text, "For heads {}.{} and {}.{} it is {} % and {} %", layer, rest[0], layer, rest[1],
           one_back[rest[0]], one_back[rest[1]])


def test_k_composition(run, circuit, text):
    """Bar: the previous-token heads K-compose with the induction heads at ≥ 2× the random
    baseline (mean over the pairs)."""
    _, _, prev_heads, ind_heads, _ = circuit
    baseline = run("baseline")
    k = torch.tensor(run("k_composition.tolist()"))  # (layer-0 head, layer-1 head)
    pairs = torch.tensor([[k[p, i].item() for _, i in ind_heads] for _, p in prev_heads])
    assert pairs.mean() >= 2 * baseline
    states(text, "The random baseline is {}, close to $1/\\sqrt{d_\\text{model}} = 1/{}$",
           baseline, math.sqrt(run("config.n_embd")))
    (layer, head), = prev_heads
    others = torch.cat([k[:head], k[head + 1:]]).mean(dim=1) / baseline
    states(text, "Head {}.{}, the previous-token head, K-composes with the {} induction heads "
                 "at {} times the baseline ({} on average); the other layer-0 heads at {} to {} "
                 "times",
           layer, head, len(ind_heads), (k[head].mean() / baseline).item(), k[head].mean().item(),
           others.min().item(), others.max().item())


# 8 · The phase change (training-time figures: read from the shipped training log)

def test_the_phase_change(run, text):
    log = run("log")
    steps = log["steps"]
    states(text, "recorded, every {} steps, the training loss", [b - a for a, b in
                                                                   zip(steps, steps[1:])])
    formed_at = run("formed_at")
    at = steps.index(formed_at)
    best = [max(max(row) for row in scores[1:]) for scores in log["induction_scores"]]
    best_previous = [max(scores[0]) for scores in log["previous_token_scores"]]
    threshold = inspect.signature(solution.phase_change_step).parameters["threshold"].default
    assert max(best[:at]) < threshold <= best[at]
    # The notebook prints the log two entries either side of the step the heads form at.
    before, after = at - 2, at + 2
    states(text, "The induction heads form at step {} of {}", formed_at, steps[-1])
    states(text, "the best induction score goes from {} at step {} to {} at step {}",
           best[before], steps[before], best[at], steps[at])
    loss = log["second_copy_loss"]
    states(text, "the loss on the second copy falls from {} to {} nats between steps {} and {}",
           loss[before], loss[after], steps[before], steps[after])
    states(text, "(the best previous-token score rises from {} to {})",
           best_previous[before], best_previous[after])
    states(text, "a sudden drop in the training loss (from {} to {} over the same {} steps)",
           log["loss"][before], log["loss"][after], steps[after] - steps[before])


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
