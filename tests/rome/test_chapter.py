"""What chapter 06 says about facts-6l, measured on the run its solution notebook makes.

The solution notebook is executed once per session; these tests read its results out of the
kernel, check the bars of the chapter's issue, and check that the text states the measured figures
(``tests.claims``: every number stated about the model lives in the text only)."""

import inspect

import pytest
import torch
from transformers import GPT2Config

from reference_impl.course.execute import Execution, score
from reference_impl.rome import solutions as solution
from reference_impl.rome.data import edit_requests, key_text_batch
from reference_impl.zoo import build_model, facts_model, load_model
from tests.claims import states
from tests.test_zoo_models import training_log


@pytest.fixture(scope="module")
def text(rome):
    return " ".join(rome.source.read_text().split())


@pytest.fixture(scope="module")
def run(rome_run):
    return rome_run.value


def test_solution_notebook_scores_full_marks(rome_run):
    results = score(Execution(rome_run.nb, 0.0))
    assert len(results) == 10
    assert all(r.passed for r in results), [(r.exercise, r.message) for r in results]


def test_the_model_and_its_prompts(run, text):
    model, tokenizer = load_model("facts-6l")
    world, _, asked = facts_model.world_and_people()
    states(text, "a 6-layer GPT-2 with MLPs, trained on biographies of the {} people of the "
                 "course's synthetic world and on questions about a quarter of them",
           len(world.people))
    assert model.config.n_layer == 6 and len(asked) == len(world.people) // 4
    names = [p.name for p in world.people]
    assert all(len(tokenizer(n, add_special_tokens=False).input_ids) == 2 for n in names)
    # "a first and a last name, which other people share"
    assert all(any(set(n.split()) & set(m.split()) for m in names if m != n) for n in names)
    assert run("len(prompts)") == 100 and run("SAMPLES") == facts_model.TRACE["samples"]


def test_the_subject_carries_the_fact_and_the_early_mlps_carry_it_from_there(run, text):
    mlp = torch.tensor(run("averages['mlp'].tolist()"))  # (window start, class)
    attn = torch.tensor(run("averages['attn'].tolist()"))
    classes = solution.POSITION_CLASSES
    subject_last, last = classes.index("last subject token"), classes.index("last token")
    states(text, "The average total effect of the subject is {}", run("total_effect['mlp']"))
    assert mlp[0, subject_last] == mlp.max()  # the largest effect of any MLP window and class
    states(text, "the window of layers 0–2 at the last subject token, whose average indirect "
                 "effect is {}", mlp[0, subject_last])
    states(text, "The best MLP window at the last token gives {}, and it is the last one, "
                 "layers {}–{}", mlp[:, last].max(), len(mlp) - 1, len(mlp) + 1)
    assert mlp[:, last].argmax() == len(mlp) - 1 and mlp[:, last].max() < mlp[0, subject_last]
    first = int(attn[:, last].argmax())
    states(text, "(the best window, layers {}–{}: {})", first, first + 2, attn[:, last].max())
    # "only the last token matters"
    assert attn[:, last].min() > 3 * attn[:, :last].max()
    # The residual stream (the figure's first panel): the last subject token carries the answer
    # in the first layers, the last token from the middle layers on.
    resid = torch.tensor(run("averages['resid'].tolist()"))
    assert resid[:2, subject_last].min() > resid[:2, last].max()
    assert resid[3:, last].min() > resid[3:, subject_last].max()
    assert (resid[1:, last] > resid[:-1, last]).all()


def logged():
    """The zoo's measurement of facts-6l, as its training log holds it (test_zoo_models checks
    that a fresh measurement gives the same)."""
    return training_log(facts_model.NAME)["metrics"]


def test_tracing_over_noise_seeds_meets_its_bars():
    # The chapter points to the zoo page for the ten-seed figures; these are the bars.
    metrics = logged()
    assert len(facts_model.TRACE["seeds"]) >= 10 and facts_model.TRACE["prompts"] >= 100
    assert metrics["subject_mlp_recovery"] - 2 * metrics["subject_mlp_recovery_std"] > (
        metrics["final_mlp_recovery"] + 2 * metrics["final_mlp_recovery_std"])
    assert metrics["rome_layer"] == 0


def test_rome_meets_its_bars_and_costs_the_person(run, text):
    rome, unedited = run("rome"), run("unedited")
    assert run("N_EDITS") >= 50 and run("LAYER") == logged()["rome_layer"]
    assert rome["efficacy"] >= 0.99 and rome["paraphrase"] >= 0.90
    assert rome["neighbourhood"] >= 0.90
    states(text, "On {} requests ROME reaches ES {}, PS {} and NS {}", run("N_EDITS"),
           rome["efficacy"], rome["paraphrase"], rome["neighbourhood"])
    states(text, "answered correctly {} of the time before the edit, are answered correctly only "
                 "{} of the time after it", unedited["same_person"], rome["same_person"])
    states(text, "people who share a name token with the subject fall from {} to {}",
           unedited["same_name"], rome["same_name"])
    # The zoo's bars measure the same edits.
    zoo = logged()
    for name in solution.SCORES:
        assert zoo[f"rome_{name}"] == pytest.approx(rome[name], abs=1e-6)


def test_the_value_and_fine_tuning_settings_are_the_ones_stated(run, text):
    defaults = inspect.signature(solution.optimise_value).parameters
    states(text, "{} Adam steps at learning rate {}, $\\lambda_\\text{KL} = {}$, "
                 "$\\lambda_\\text{wd} = {}$", defaults["steps"].default, defaults["lr"].default,
           defaults["kl_factor"].default, defaults["weight_decay"].default)
    weight = load_model("facts-6l")[0].transformer.h[0].mlp.c_proj.weight
    states(text, "We use the paper's {} Adam steps at learning rate {}; the weights of this layer "
                 "are about {} in size, and we let each move by at most {}.", 25, 5e-4,
           weight.abs().mean().item(), 5e-3, tolerance=0.005,
           reason="'about 0.04': the mean absolute weight, to one significant digit")
    assert "steps=25, lr=5e-4, max_change=5e-3" in text


def test_rome_beats_fine_tuning_on_the_papers_three_scores(run, text):
    rome, fine_tuning = run("rome"), run("fine_tuning")
    assert all(rome[s] > fine_tuning[s] for s in ("efficacy", "paraphrase", "neighbourhood"))
    assert rome["efficacy"] - fine_tuning["efficacy"] > 0.1
    assert rome["paraphrase"] - fine_tuning["paraphrase"] > 0.1
    states(text, "Fine-tuning makes {} of the edits, and only {} of the paraphrases follow; the "
                 "neighbours keep their object {} of the time. It spares the same person's other "
                 "relations ({}) and the people who share a name ({})", fine_tuning["efficacy"],
           fine_tuning["paraphrase"], fine_tuning["neighbourhood"], fine_tuning["same_person"],
           fine_tuning["same_name"])
    assert fine_tuning["same_person"] > rome["same_person"] + 0.3


def test_every_exercise_runs_on_a_full_size_gpt2():
    torch.manual_seed(0)
    model = build_model(GPT2Config(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)).eval()
    tokens = torch.randint(1, model.config.vocab_size, (6,))
    tokens[0] = model.config.bos_token_id
    subject, target, d_model = (1, 3), 11, model.config.n_embd
    noise = solution.subject_noise(2, 2, d_model, solution.noise_scale(model, tokens[1:3]))
    assert solution.corrupted_probabilities(model, tokens, subject, target, noise).shape == (2,)
    assert solution.restored_probabilities(model, tokens, subject, target, noise, "mlp", [3],
                                           2).shape == (2,)
    traced = solution.trace(model, tokens, subject, target, noise, "attn", 10,
                            positions=range(1, 6))
    assert traced.restored.shape == (3, 5)
    effects = solution.average_indirect_effect([traced], [subject])
    assert effects.shape == (3, 4)
    key = solution.subject_key(model, [(tokens, 2)], 6)
    text = torch.randint(1, 1000, (8, 6))
    moment = solution.with_ridge(solution.key_second_moment(model, text, torch.ones(8, 6), 6))
    assert key.shape == (4 * d_model,) and moment.shape == (4 * d_model, 4 * d_model)
    value, prob = solution.frozen_call(model, solution.optimise_value, model, [(tokens, 2)],
                                       [(tokens[:3], 2)], 6, target, steps=2)
    assert value.shape == (d_model,) and 0 <= prob <= 1
    projection = model.transformer.h[6].mlp.c_proj
    weight = solution.rank_one_update(projection.weight.detach(), projection.bias.detach(), key,
                                      value, moment)
    assert weight.shape == (4 * d_model, d_model)
    with solution.edited(model, 6, weight):
        pass
    tuned = solution.frozen_call(model, solution.finetune_layer, model, [tokens], 6, target,
                                 steps=1)
    assert tuned.shape == weight.shape


def test_requests_and_the_key_text():
    model, tokenizer = load_model("facts-6l")
    requests = edit_requests(model, tokenizer, 50)
    world, _, asked = facts_model.world_and_people()
    for request in requests:
        prompt = request.prompt
        assert request.new_object != prompt.object
        assert request.new_object in {f.object for f in world.facts_for(prompt.relation)}
        assert len(request.paraphrases) == 5 and prompt not in request.paraphrases
        assert {p.template_id for p in request.paraphrases} | {prompt.template_id} == set(range(6))
        assert all(p.object == prompt.object and p.subject != prompt.subject
                   and p.subject in asked for p in request.neighbours)
        assert {p.relation for p in request.same_person} == (
            set(facts_model.RELATIONS) - {prompt.relation})
        assert all(set(p.subject.split()) & set(prompt.subject.split())
                   for p in request.same_name)
    tokens, mask = key_text_batch(tokenizer, 10)
    assert (tokens[mask == 0] == tokenizer.bos_token_id).all()
    assert mask.sum(dim=1).tolist() == [len(tokenizer(t).input_ids) for t in
                                        facts_model.key_text(world, facts_model.world_and_people()[1], 10)]
