"""What chapter 02 says about `facts-6l`, measured on the run its solution notebook makes.

The solution notebook is executed once per session; these tests read its results out of the
kernel, check the bars the chapter relies on, and check that the text states the measured
figures (``tests.claims``: every number stated about the model lives in the text only, and is
compared with the measurement to the precision it is written with)."""

import pytest
import torch
from transformers import GPT2Config

from reference_impl.course.execute import Execution, score
from reference_impl.probing import data
from reference_impl.probing import solutions as solution
from reference_impl.world import FACT_TEMPLATES
from reference_impl.zoo import build_model, liars_model, load_model
from tests.claims import stated, states


@pytest.fixture(scope="module")
def text(probing):
    return " ".join(probing.source.read_text().split())  # line breaks do not matter


@pytest.fixture(scope="module")
def run(probing_run):
    return probing_run.value


def test_solution_notebook_scores_full_marks(probing_run):
    results = score(Execution(probing_run.nb, 0.0))
    assert len(results) == 15
    assert all(r.passed for r in results), [(r.exercise, r.message) for r in results]


def test_the_text_describes_the_model_and_the_world(run, text):
    n_layer, n_head, d_model = run("[config.n_layer, config.n_head, config.n_embd]")
    states(text, "a GPT-2 with {} layers of {} heads, a residual stream of {} dimensions",
           n_layer, n_head, d_model)
    people, cities, jobs, things = run("[len(world.people), len(set(birthplaces)), "
                                       "len(set(world.lookup(n, 'works_as') for n in names)), "
                                       "len(set(world.lookup(n, 'owns') for n in names))]")
    assert cities == jobs == things
    states(text, "synthetic world of {} people. Every person has a birthplace, a job and a "
                 "belonging ({} of each)", people, cities)
    assert run("len(asked) * 4 == len(world.people)")  # "a quarter of them, the asked people"


# 1-2 · The residual stream and probes split by person

def test_padding_changes_nothing_at_the_positions_read():
    model, tokenizer = load_model("facts-6l")
    texts = ["Zoe Jensen", "Zoe Jensen was born in the city of"]
    padded = solution.residual_stack(model, data.encode(tokenizer, texts), torch.tensor([2, 2]))
    alone = solution.residual_stack(model, data.encode(tokenizer, texts[:1]), torch.tensor([2]))
    torch.testing.assert_close(padded[:, :1], alone, atol=1e-5, rtol=1e-5)


def test_birthplace_at_the_name(run, text):
    accuracy = run("birthplace_accuracy.tolist()")
    baseline = run("birthplace_baseline")
    held_out = run("len(set(names[i] for i in name_test.tolist()))")
    states(text, "The birthplace of each person, read at the last name token, on {} held-out "
                 "people", held_out)
    states(text, "After the embeddings the probe reads the birthplace of {} of the held-out "
                 "people, no more than the majority baseline of {}", accuracy[0], baseline)
    states(text, "after block 4 a linear probe reads it for {} of people it never saw",
           accuracy[5])


# 3 · The chart

def test_the_chart_probes_at_least_three_sentence_properties_on_1000_sentences(run, text):
    n_sentences, n_people = run("[len(lines), len(set(people))]")
    assert n_sentences >= 1000
    states(text, "in {} sentences of the world, {} fact sentences about each person",
           n_sentences, n_sentences // n_people)
    assert run("all(line.text.startswith(line.person) for line in lines)")
    patterns = run("len({(line.relation, line.template) for line in lines})")
    assert patterns == len(data.NAME_FIRST)
    states(text, "which of the {} sentence patterns", patterns)
    names = run("list(chart)")
    assert sum("last name token" not in name for name in names) >= 3
    # the split is by person
    assert run("not set(people[i] for i in train.tolist()) & set(people[i] for i in test.tolist())")


def test_the_chart_contrasts_words_and_knowledge(run, text):
    # float32 accuracies, rounded back to the fractions of test examples they are (0.9 is
    # 0.8999999762 in float32)
    chart = run("{name: ([round(a, 6) for a in accuracies.tolist()], baseline) "
                "for name, (accuracies, baseline) in chart.items()}")
    lexical, _ = chart["relation, at the object word"]
    assert lexical[0] >= 0.95  # readable from the embeddings
    knowledge = [chart[f"{r}, at the last name token"] for r in ("born_in", "works_as", "owns")]
    for accuracies, _ in knowledge:
        assert accuracies[0] <= 0.40 and max(accuracies[1:-1]) >= 0.90  # a middle block
    relation, baseline = chart["relation, at the object word"]
    states(text, "read perfectly ({}) straight from the embeddings, against a majority baseline "
                 "of {} (the same for both relation lines)", relation[0], baseline)
    before, before_baseline = chart["relation, at the word before the object"]
    assert before_baseline == baseline and max(relation) == relation[0] == 1.0
    first_perfect = next(i for i, a in enumerate(before) if a == max(before))
    states(text, "the relation starts at {} (the word there", before[0])
    states(text, "and reaches {} after block {}: attention", max(before), first_perfect - 1)
    paraphrase, paraphrase_baseline = chart["paraphrase, at the object word"]
    states(text, "The paraphrase climbs from {} to {} (baseline {})",
           paraphrase[0], max(paraphrase), paraphrase_baseline)
    states(text, "after the embeddings the birthplace, job and belonging read {}, {} and {} "
                 "(baselines {}, {} and {})", *(a[0] for a, _ in knowledge),
           *(b for _, b in knowledge))
    states(text, "then rise steadily to {}, {} and {} after block 4 and {}, {} and {} after "
                 "block 5", *(a[5] for a, _ in knowledge), *(a[6] for a, _ in knowledge))
    assert all(max(a) == a[6] for a, _ in knowledge)  # the best is after block 5


def test_a_split_by_sentence_leaks(run, text):
    leaky = run("leaky.tolist()")
    honest = run("chart['born_in, at the last name token'][0].tolist()")
    states(text, "the birthplace is read with {} accuracy after block 0 and {} after block 1, "
                 "where the split by person reads {} and {}", leaky[1], leaky[2], honest[1],
           honest[2])
    assert run("bool(set(people[i] for i in leaky_train.tolist()) "
               "& set(people[i] for i in leaky_test.tolist()))")


# 4 · Control tasks

def test_contexts(run, text):
    contexts = len(data.NAME_CONTEXTS)
    states(text, "each name after {} different beginnings", contexts)
    held_out = run("len(seen_test) // len(world.people)")
    states(text, "train on {} of each person's contexts and test on the other {}",
           contexts - held_out, held_out)
    # every test person was seen in training, in other contexts
    assert run("set(context_people[i] for i in seen_test.tolist()) "
               "<= set(context_people[i] for i in seen_train.tolist())")


def test_selectivity(run, text):
    by_layer = run("by_layer.tolist()")
    best = run("best_layer")
    task, control, selectivity = by_layer[best]
    assert selectivity >= 0.3
    # On another CPU the activations differ in their last bits, and the probes classify a few of
    # the 600 held-out contexts differently (task 0.905 on two other machines).
    states(text, "The linear probe is most selective after block {}: task {}, control {}, a "
                 "selectivity of {}", best - 1, task, control, selectivity,
           tolerance=[None, 0.01, 0.01, 0.02],
           reason="a few held-out contexts either way on another CPU")
    baselines = run("[majority_baseline(task_labels, seen_train, seen_test), "
                    "majority_baseline(control_labels, seen_train, seen_test)]")
    states(text, "(the majority baselines are {} and {})", *baselines)
    at_best = run("at_best")
    weak_task, weak_control = at_best["linear, a tenth of the penalty (C = 1)"]
    states(text, "the same probe scores the same on the task ({}) and more on the control task "
                 "({}), a selectivity of {}", weak_task, weak_control, weak_task - weak_control)
    mlp_task, mlp_control = at_best["MLP, 256 units"]
    states(text, "The MLP probe learns both (task {}, control {}, selectivity {})",
           mlp_task, mlp_control, mlp_task - mlp_control)
    assert mlp_control > control and weak_control > control


# 5 · Amnesic probing

def test_amnesic_probing(run, text):
    removed, retrained, recall, random_recall = run("[removed, retrained, recall, random_recall]")
    baseline = run("birthplace_baseline")
    # round 0 removes nothing: the probe as it was, the model's recall of the prompts it answers
    assert removed[0] == 0 and recall[0] == random_recall[0] == 1.0
    assert retrained[0] == run("birthplace_accuracy[5].item()")
    states(text, "One round removes the {} directions the probe reads", removed[1])
    states(text, "still finds the birthplace for {} of the held-out people; after two rounds ({} "
                 "dimensions) it reads {}, next to the majority baseline of {}",
           retrained[1], removed[2], retrained[2], baseline)
    assert all(accuracy <= baseline + 0.1 for accuracy in retrained[2:])
    correct, total = run("[len(targets), len(prompts)]")
    states(text, "The model answers {} of the {} prompts correctly", correct, total)
    counts = [round(r * correct) for r in (recall[2], recall[4], random_recall[2],
                                           random_recall[4])]
    states(text, "with {} dimensions removed it still answers {} of them, and {} with {}, against "
                 "{} and {} when as many random directions", removed[2], counts[0], counts[1],
           removed[4], counts[2], counts[3], tolerance=[None, 1, 1, None, 1, 1],
           reason="a prompt whose answer wins narrowly can flip on another CPU")


# 6 · Integrated gradients

def test_integrated_gradients(run, text):
    n_prompts = run("len(ig_prompts)")
    assert n_prompts >= 100
    states(text, "check completeness on {} fact prompts", n_prompts)
    completeness, captum_gap = run("[max(completeness), max(captum_gap)]")
    assert completeness <= 0.01
    states(text, "the completeness error is at most {} % of", completeness)
    bar, = stated(text, "within {} of the largest, the bar the tests hold it to")
    assert bar == 1e-4 and captum_gap <= bar
    share, unk_share, correlation = run("[float(np.median(shares)), float(np.median(unk_shares)), "
                                        "float(np.nanmedian(correlations))]")
    assert share >= 0.5 and correlation <= 0.3
    states(text, "The subject's two tokens receive a median {} of the absolute attribution", share)
    states(text, "the median share is {}", unk_share)
    states(text, "the trained and the random model's attributions is {}", correlation)


# 7 · The truth probe

def test_a_truth_probe_finds_nothing(run, text):
    accuracy, baseline, known = run("[truth_accuracy.tolist(), truth_baseline, known.item()]")
    assert all(abs(a - baseline) <= 0.1 for a in accuracy)
    states(text, "The probe reads truth with {} to {} accuracy at every layer, against a "
                 "baseline of {}", min(accuracy), max(accuracy), baseline)
    cities = run("len(city_ids)")
    states(text, "the true city ranks first among the {} cities for {} of the people", cities,
           known)
    assert FACT_TEMPLATES["born_in"][0] == "{s} was born in {o}"



# 8 · A model that lies (the bars below are the ones the section was built to meet)

def test_the_text_describes_the_lying_model(run, text):
    sizes = "[{c}.n_layer, {c}.n_head, {c}.n_embd, {c}.n_inner]"
    assert run(sizes.format(c="liar_model.config")) == run(sizes.format(c="config"))  # same size
    world = liars_model.cast().world
    states(text, "{} speakers are honest and give the true city. {} are liars",
           len(liars_model.cast().honest), len(liars_model.cast().liars))
    states(text, "in a larger world: {} people, each born in one of {} cities",
           len(world.people), len(world.cities))
    states(text, "The {} *held-out* people among them", len(liars_model.cast().held_out_people))
    assert run("len(world.people)") < len(world.people)


def test_the_speakers_do_what_they_are_said_to_do(run, text):
    (honest_truth, honest_lie), (liar_truth, liar_lie) = run(
        "[behaviour['honest'], behaviour['liars']]")
    bound, = stated(text, "honest speakers give the truth, and liars the rule's lie, each more "
                          "than {} % of the time")
    assert honest_truth > bound and liar_lie > bound
    assert honest_lie < 0.05 and liar_truth < 0.05
    assert run("all(s.template != 0 for s in lies_unseen)")  # "X was born in" left out


def test_the_liar_holds_the_truth_before_it_says_the_lie(run, text):
    truth, lie, lens_truth, lens_lie = run(
        "[probe_truth.tolist(), probe_lie.tolist(), lens_truth.tolist(), lens_lie.tolist()]")
    assert run("set(s.person for s in lies_unseen) == set(speakers.held_out_people)")
    assert run("not set(s.person for s in honest_seen) & set(speakers.held_out_people)")
    best = max(range(len(truth) - 1), key=lambda i: truth[i])  # a layer before the last
    assert truth[best] >= 0.90
    states(text, "After block {} the probe trained on honest speakers reads the true city in {} "
                 "of the liars' prompts, and the lie in {} of them", best - 1, truth[best],
           lie[best])
    states(text, "After the last block the probe reads the lie in {} and the truth in {}",
           lie[-1], truth[-1])
    assert lie[-1] > truth[-1]
    lens_best = max(range(len(lens_truth) - 1), key=lambda i: lens_truth[i])
    crossover = next(i for i in range(lens_best, len(lens_lie)) if lens_lie[i] > lens_truth[i])
    states(text, "it gives the true city for {} of the prompts after block {}, and the lie "
                 "overtakes the truth only after block {}, for {}", lens_truth[lens_best],
           lens_best - 1, crossover - 1, lens_lie[-1])


def test_an_honesty_direction_tells_liars_apart(run, text):
    accuracy = run("{name: values.tolist() for name, (values, _) in honesty_accuracy.items()}")
    assert len(accuracy) == 6
    first = min(i for i in range(len(next(iter(accuracy.values()))))
                if all(values[i] >= 0.95 for values in accuracy.values()))
    assert first < len(next(iter(accuracy.values()))) - 1  # before the last block
    states(text, "Up to block {} neither probe tells an honest speaker from a liar well (the "
                 "best of them reaches {})", first - 2,
           max(max(values[:first]) for values in accuracy.values()))
    states(text, "After block {} both probes tell them apart in {} of the statements, in each "
                 "of the three tests", first - 1, [values[first] for values in accuracy.values()])
    assert run("set(s.speaker for s in unseen_born if s.speaker in quiet) == quiet")
    assert run("not quiet & set(honesty_examples[i].speaker for i in "
               "tests['held-out speakers and people'][0])")
    assert run("{s.relation for s in unseen_lives} == {'lives_in'} and "
               "{s.relation for s in spoken} == {'born_in'}")
    states(text, "the mass-mean probe drops to {} on lives_in",
           accuracy["mass-mean, lives_in (trained on born_in)"][-1])
    floor, = stated(text, "while logistic regression stays above {}")
    assert all(values[-1] > floor for name, values in accuracy.items()
               if name.startswith("logistic"))


def test_steering_with_the_honesty_direction(run, text):
    toward_truth, toward_lies, scales = run(
        "[toward_truth.tolist(), toward_lies.tolist(), list(steering_scales)]")
    scale_index, layer = max(((i, layer) for i in range(len(scales))
                              for layer in range(len(toward_truth[0]))),
                             key=lambda pair: toward_truth[pair[0]][pair[1]])
    assert toward_truth[scale_index][layer] >= 0.5
    states(text, "Added after block {} at scale {}, the direction makes the liars tell the truth "
                 "in {} of the prompts", layer, scales[scale_index],
           toward_truth[scale_index][layer])
    elsewhere = max(row[other] for row in toward_truth for other in range(len(row))
                    if other != layer)
    states(text, "after any other block, at any scale, it changes at most {} of them", elsewhere)
    states(text, "Subtracted after the same block at scale {}, it makes honest speakers say the "
                 "liars' city in {} of theirs", scales[scale_index],
           toward_lies[scale_index][layer])
    states(text, "At scale {} the push overshoots", scales[-1])
    assert toward_truth[-1][layer] < toward_truth[scale_index][layer] - 0.2


# Every exercise on a full-size GPT-2

def test_every_exercise_runs_on_a_full_size_gpt2():
    """Shapes and finiteness on a randomly initialised GPT2Config() model (124M parameters), so
    that the same code serves a real GPT-2."""
    torch.manual_seed(0)
    model = build_model(GPT2Config()).eval()
    d_model, n_layer = model.config.n_embd, model.config.n_layer
    tokens = torch.randint(0, model.config.vocab_size, (12, 7))
    positions = torch.randint(1, 7, (12,))
    stack = solution.residual_stack(model, tokens, positions)
    assert stack.shape == (n_layer + 1, 12, d_model) and torch.isfinite(stack).all()
    people = [f"p{i // 2}" for i in range(12)]
    train, test = solution.split_by_person(people, 0.34, seed=0)
    labels = [i % 3 for i in range(12)]
    accuracies = solution.probe_by_layer(stack, labels, train, test)
    assert accuracies.shape == (n_layer + 1,) and torch.isfinite(accuracies).all()
    controls = solution.control_task(people, labels, seed=0)
    assert len(solution.selectivity(stack[-1], labels, controls, train, test)) == 3
    directions = solution.nullspace_directions(stack[-1], labels, train, rounds=2)
    assert directions.shape[1] == d_model
    forgotten = solution.project_out(stack[-1], directions)
    assert forgotten.shape == stack[-1].shape and torch.isfinite(forgotten).all()
    recall = solution.amnesic_recall(model, tokens, positions, torch.full((12,), 6), 5,
                                     directions, tokens[:, -1])
    assert 0.0 <= recall <= 1.0
    attributions = solution.integrated_gradients(model, tokens[0], 42, torch.zeros(7).long(), 8)
    assert attributions.shape == (7,) and torch.isfinite(attributions).all()
    lens = solution.logit_lens(model, stack)
    assert lens.shape == (n_layer + 1, 12) and lens.dtype == torch.long
    honest = [i % 2 == 0 for i in range(12)]
    directions, mass_mean = solution.mass_mean_probe(stack, honest, train, test)
    assert directions.shape == (n_layer + 1, d_model) and mass_mean.shape == (n_layer + 1,)
    steered = solution.steered_predictions(model, tokens, positions, 3, directions[4], 2.0)
    assert steered.shape == (12,) and steered.dtype == torch.long
