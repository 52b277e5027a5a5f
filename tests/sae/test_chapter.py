"""What chapter 05 says about its SAEs, measured on the run its solution notebook makes.

The solution notebook is executed once per session; these tests read its results out of the
kernel, check the bars of the chapter's issue, and check that the text states the measured figures
(``tests.claims``: every number stated about a model lives in the text only)."""

import json

import pytest
import torch
from transformers import GPT2Config

from reference_impl import zoo
from reference_impl.course.execute import Execution, score
from reference_impl.hooks import run_with_cache
from reference_impl.sae import solutions as solution
from reference_impl.zoo import build_model
from tests.claims import stated, states

L1, TOPK = "L1 (world-5l-sae)", "TopK (world-5l-sae-topk)"


@pytest.fixture(scope="module")
def text(sae):
    return " ".join(sae.source.read_text().split())


@pytest.fixture(scope="module")
def run(sae_run):
    return sae_run.value


def test_solution_notebook_scores_full_marks(sae_run):
    results = score(Execution(sae_run.nb, 0.0))
    assert len(results) == 12
    assert all(r.passed for r in results), [(r.exercise, r.message) for r in results]


# 3 · Ground truth

def test_an_sae_recovers_the_true_features_given_room_and_a_penalty(run, text):
    n_true, d_in = run("list(features.shape)")
    states(text, "{} of them, embedded in {} dimensions", n_true, d_in)
    sizes, coefficients = run("toy_sizes"), run("toy_coefficients")
    grid = torch.tensor(run("toy_mmcs.tolist()"))  # (sizes, coefficients)
    assert sizes == [n_true // 2, n_true, 2 * n_true]
    # The bar: MMCS >= 0.95 with a dictionary at least as large as the true features.
    assert grid[1, -1] >= 0.95 and grid[2, -1] >= 0.95
    states(text, "With {} or {} latents and the strongest penalty, MMCS is {} and {}",
           sizes[1], sizes[2], grid[1, -1], grid[2, -1])
    states(text, "{} latents for {} features reach at most {}", sizes[0], n_true, grid[0].max())
    assert grid[0].max() < 0.95
    l0 = run("{f'{d},{c}': v for (d, c), v in toy_l0.items()}")
    states(text, "at λ = {}, MMCS falls to {} with {} latents, and that run uses {} latents per "
                 "input where {} features are present on average", coefficients[0], grid[2, 0],
           sizes[2], l0[f"{sizes[2]},{coefficients[0]}"], run("32 * 0.05"))
    # The figure: with room enough, MMCS rises with the penalty; the weakest penalty is worst.
    for row in (1, 2):
        assert all(a < b for a, b in zip(grid[row], grid[row][1:]))
    assert (grid.argmin(dim=1) == 0).all()


# 4 · Dead latents

def test_resampling_lowers_the_dead_fraction(run, text):
    dead = run("dead")
    d_sae = run("crowded.cfg['d_sae']")
    # A short run at a large learning rate is chaotic: on another CPU its sums differ in the last
    # bits and it ends tens of latents apart (measured elsewhere: 4.9 % dead after training on one
    # machine; 5.8 %, 9.1 % and 5.3 % for the three figures on another). What the text concludes
    # from them, their order, is asserted exactly below.
    chaotic = "the run ends tens of latents apart on another CPU"
    states(text, "After training, {} % of the {} latents are dead", dead["trained"], d_sae,
           tolerance=[0.025, None], reason=chaotic)
    states(text, "Resampling brings every one of them back at once ({} % dead)",
           dead["just resampled"])
    states(text, "after {} more steps {} % are dead, against {} % for the same run continued "
                 "without resampling", 300, dead["after resampling"],
           dead["without resampling"], tolerance=[None, 0.025, 0.025], reason=chaotic)
    assert dead["trained"] > 0 and dead["just resampled"] == 0
    assert dead["after resampling"] < dead["without resampling"]
    # "some of the revived latents die again, and some live ones die as training goes on"
    assert dead["after resampling"] > 0 and dead["without resampling"] > dead["trained"]
    states(text, "the activations of {} of the model's training texts", run("len(world_texts(2000))"))


# 5 · An SAE on world-5l

def test_the_zoo_saes_meet_their_bars_and_topk_reconstructs_better(run, text):
    e = run("{name: {k: v for k, v in e.items() if k != 'density'} for name, e in evaluation.items()}")
    l1, topk = e[L1], e[TOPK]
    # The bars for the shipped SAE.
    assert l1["l0"] <= 32 and l1["fvu"] <= 0.15 and l1["recovered"] >= 0.90 and l1["dead"] <= 0.10
    states(text, "The L1 SAE uses {} latents per token, leaves {} of the variance unexplained and "
                 "recovers {} of the loss; the TopK SAE, at {} latents, leaves {}",
           l1["l0"], l1["fvu"], l1["recovered"], topk["l0"], topk["fvu"])
    assert topk["l0"] <= l1["l0"] and topk["fvu"] < l1["fvu"]  # "at matched sparsity"
    d_sae = run(f"zoo_saes[{TOPK!r}].cfg['d_sae']")
    states(text, "{} of its latents are dense, active on more than a tenth of all tokens, where the "
                 "L1 SAE has none", topk["dense"] * d_sae)
    assert l1["dense"] == 0
    states(text, "the loss goes from {} to {}", l1["clean"], l1["zero"])
    states(text, "The loss with the L1 SAE spliced in, {}, says more: {} nats lost", l1["sae"],
           l1["sae"] - l1["clean"])
    states(text, "We measure them on {} training texts", run("len(held_out_texts)"))
    states(text, "an L1 SAE with {} latents", run(f"zoo_saes[{L1!r}].cfg['d_sae']"))


def test_the_notebook_measures_what_the_zoo_logged(run):
    # The chapter and the zoo page measure the same SAEs on the same held-out text.
    e = run("{name: {k: v for k, v in e.items() if k != 'density'} for name, e in evaluation.items()}")
    for name, label in (("world-5l-sae", L1), ("world-5l-sae-topk", TOPK)):
        logged = json.loads((zoo.MODELS_DIR / name / "training_log.json").read_text())["metrics"]
        assert e[label]["l0"] == pytest.approx(logged["l0"], rel=1e-4)
        assert e[label]["fvu"] == pytest.approx(logged["fvu"], rel=1e-3)
        assert e[label]["recovered"] == pytest.approx(logged["ce_loss_recovered"], rel=1e-4)
        assert e[label]["dead"] == pytest.approx(logged["dead_fraction"], abs=1e-6)


def test_the_figures_show_what_their_alt_texts_say(run):
    e = run("{name: {k: v for k, v in e.items() if k != 'density'} for name, e in evaluation.items()}")
    crowded = run("[crowded_statistics['l0'], crowded_statistics['fvu']]")
    # "much sparser and with several times the unexplained variance"
    assert crowded[0] < e[L1]["l0"] / 2 and crowded[1] > 2 * e[L1]["fvu"]
    density = {name: torch.tensor(d) for name, d in run(
        "{name: e['density'].tolist() for name, e in evaluation.items()}").items()}
    # "no dead latents in the L1 SAE and a handful in the TopK SAE"
    assert (density[L1] == 0).sum() == 0 and 0 < (density[TOPK] == 0).sum() <= 10
    # "most latents firing on between one token in a thousand and one in ten"
    for d in density.values():
        assert ((d >= 1e-3) & (d <= 0.1)).float().mean() > 0.5


# 6 · Reading features

def test_latents_are_classifiers_where_neurons_are_not(run, text):
    recall = run("RECALL")
    concepts = run("list(labels)")
    latent, neuron = run("latent_precision"), run("neuron_precision")
    # The bar: at least 5 named concepts, each with a latent of precision >= 0.9 at
    # recall >= 0.5 (chosen on one half of the text, scored on the other).
    assert len(concepts) >= 5 and recall >= 0.5 and min(latent) >= 0.9
    assert all(l > n for l, n in zip(latent, neuron))
    states(text, "At recall {}, the best latent for each concept has precision {} on the other "
                 "half", recall, min(latent))
    assert max(latent) == pytest.approx(min(latent), abs=0.005)
    states(text, "has precision {} for Calder, {} for Yarrowby, {} for sailor, {} for carpenter and "
                 "{} for David", *neuron)
    states(text, "the {} neurons of the MLP in block 2", run("neurons.shape[1]"))


def test_a_latent_fires_on_its_concept_and_weakly_on_much_else(run, text):
    fires = run("{c: [precision_recall(sae_latents, labels[c])[i][fires_on[c]].item() "
                "for i in (0, 1)] for c in labels}")
    # "a latent that fires on nearly all of its tokens, but ... most of what it fires on are
    # weak activations on other tokens"
    for precision, recall in fires.values():
        assert recall >= 0.9 and precision < 0.5
    # "Its strongest activations are Calder": the five the notebook prints.
    assert run("labels['the city Calder'][strongest[:5]].all().item()")
    at_full_recall, at_zero = run(
        "[precision_at_recall(sae_latents[:, [calder]], labels['the city Calder'], 1.0).item(), "
        "precision_recall(sae_latents[:, [calder]], labels['the city Calder'])[0].item()]")
    states(text, "With a threshold just low enough to let every Calder token of the text through, "
                 "{} of what passes is Calder; with the threshold at zero, only {} is",
           at_full_recall, at_zero)


# 7 · Steering

def test_one_latent_steers_the_model_into_saying_its_name(run, text):
    alphas, mentions, loss = run("alphas"), run("mentions"), run("steered_loss")
    assert mentions[0] <= 0.05 and max(mentions) >= 0.8  # the bar
    assert "Without steering no completion says Anna" in text and mentions[0] == 0
    at = {alpha: m for alpha, m in zip(alphas, mentions)}
    states(text, "At α = {}, {} of them do, and at α = {}, {}", 14, at[14], 16, at[16])
    states(text, "the loss on unrelated text rises from {} to {} at α = {}", loss[0],
           loss[alphas.index(14)], 14)
    assert all(a <= b for a, b in zip(loss, loss[1:]))  # "grows with the strength"


def _steered_by(run, concept, word):
    """For each strength of the notebook's ``alphas``: (share of completions that say ``word``,
    first generated words) when steering with the latent the notebook found for ``concept``."""
    return run(
        f"[(lambda out: [(out == tokenizer.convert_tokens_to_ids({word!r})).any(dim=1).float()"
        f".mean().item(), tokenizer.convert_ids_to_tokens(out[:, 0].tolist())])"
        f"(steer(model, neutral_tokens, HOOK_NAME, "
        f"F.normalize(sae.W_dec[fires_on[{concept!r}]].detach(), dim=0), alpha, 4)) "
        f"for alpha in alphas]")


def test_a_city_or_a_job_latent_does_not_steer_this_way(run):
    for concept, word in (("the city Calder", "Calder"), ("the job sailor", "sailor")):
        assert max(said for said, _ in _steered_by(run, concept, word)) <= 0.05, concept
    # "makes the model continue as if it had just read Calder": what follows a city in the
    # biographies, "( born )", becomes the most common next word.
    _, first_words = _steered_by(run, "the city Calder", "Calder")[-1]
    assert max(set(first_words), key=first_words.count) == "("


# The same code serves a full-size GPT-2

def test_every_exercise_runs_on_a_full_size_gpt2():
    torch.manual_seed(0)
    model = build_model(GPT2Config(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)).eval()
    tokens = torch.randint(0, model.config.vocab_size, (2, 6))
    hook = "blocks.6.hook_resid_post"
    _, cache = run_with_cache(model, tokens, names=[hook])
    x = cache[hook].flatten(0, 1)
    d_model = model.config.n_embd
    sae = solution.SAE(d_model, 4 * d_model, hook_name=hook)
    f = solution.encode(sae, x)
    assert f.shape == (12, 4 * d_model) and solution.decode(sae, f).shape == x.shape
    assert (solution.topk_encode(sae, x, 32) > 0).sum(dim=-1).max() <= 32
    optimizer = torch.optim.Adam(sae.parameters(), lr=1e-4)
    assert torch.isfinite(torch.tensor(solution.training_step(sae, optimizer, x, 1.0)))
    statistics = solution.sae_statistics(sae, x)
    assert statistics["density"].shape == (4 * d_model,)
    assert 0 <= solution.mmcs(sae.W_dec.detach(), x) <= 1
    solution.resample_dead_latents(sae, x, statistics["density"] == 0)
    loss = solution.ce_loss_recovered(model, sae, tokens, torch.ones(2, 5))
    assert all(torch.isfinite(torch.tensor(v)) for v in loss.values())
    labels = torch.arange(12) % 3 == 0
    precision, recall = solution.precision_recall(solution.encode(sae, x), labels)
    assert precision.shape == recall.shape == (4 * d_model,)
    assert solution.precision_at_recall(x, labels, 0.5).shape == (d_model,)
    assert solution.steer(model, tokens, hook, sae.W_dec[0].detach(), 2.0, 2).shape == (2, 2)


def test_bad_input_gets_one_sentence():
    sae = solution.SAE(8, 16, hook_name="blocks.2.hook_resid_post")
    with pytest.raises(ValueError, match="flatten batch and positions"):
        solution.latents(sae, torch.randn(2, 3, 8))
    with pytest.raises(ValueError, match=r"reads \(batch, 8\)"):
        solution.latents(sae, torch.randn(4, 5))
    with torch.no_grad():
        sae.W_dec.fill_(float("nan"))
    with pytest.raises(ValueError, match="became NaN or infinite at step 0"):
        solution.train_sae(sae, torch.randn(64, 8), steps=3, batch_size=8, progress=False)
