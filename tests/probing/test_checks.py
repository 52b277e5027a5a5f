"""What the chapter 02 checks say, and how they treat bad probe data, hangs, noisy output, use of
the solution module, broken dependencies and right answers that differ from the reference's
choices. Reference, stub and mistakes: tests/test_every_check.py."""

import pytest

from reference_impl.course.grading import CheckFailed
from reference_impl.probing import checks
from tests import notebooks
from tests.probing import mistakes


def check_of(name):
    return getattr(checks, f"check_{name}")


@pytest.fixture(scope="module")
def solution_nb(probing):
    return notebooks.read(probing.solution_notebook)


def test_messages_say_what_to_fix():
    cases = [
        ("residual_stack", mistakes.stack_hidden_states, "before the final LayerNorm"),
        ("residual_stack", mistakes.stack_resid_post_only, "is missing the embeddings"),
        ("split_by_person", mistakes.split_by_example,
         "person '[^']+' has examples in both train and test \\(indices \\d+ and \\d+\\): hold "
         "out whole people"),
        ("split_by_person", mistakes.split_same_people_every_seed, "it ignores the seed"),
        ("majority_baseline", mistakes.majority_first_seen_wins_ties,
         "a tie goes to the label that sorts first"),
        ("control_task", mistakes.control_per_example,
         "the examples of person '[^']+' got different control labels"),
        ("project_out", mistakes.project_out_qr,
         "the directions may be dependent: keep only the singular vectors with non-zero "
         "singular values"),
        ("project_out", mistakes.project_out_in_place, "changed its input"),
        ("true_false_statements", mistakes.statements_false_from_all_objects,
         "the false statement '[^']+' is true"),
        ("selectivity", mistakes.raises_index_error,
         "raised IndexError at `return \\[\\]\\[0\\]`"),
    ]
    for name, mistake, fragment in cases:
        with pytest.raises(CheckFailed, match=fragment):
            check_of(name)(mistake)


def test_probe_by_layer_must_refuse_each_kind_of_bad_data():
    """Each bad input of the course has its own message, naming what was accepted."""
    cases = [
        (mistakes.probe_without_validation,
         "probe_by_layer accepted train and test indices that share examples: call "
         "validate_probe_data\\(activations, labels, train, test\\) first"),
        (mistakes.probe_own_checks_without_label_count,
         "probe_by_layer accepted \\d+ labels for \\d+ examples: call validate_probe_data"),
        (mistakes.probe_cleans_nan,
         "probe_by_layer accepted activations that contain NaN: call validate_probe_data"),
        (mistakes.probe_skips_layers_it_cannot_fit,
         "probe_by_layer accepted training labels of a single class: call validate_probe_data"),
        (mistakes.probe_checks_with_assert,
         "probe_by_layer should raise ValueError when given train and test indices that share "
         "examples, but it raised AssertionError"),
    ]
    for mistake, fragment in cases:
        with pytest.raises(CheckFailed, match=fragment):
            checks.check_probe_by_layer(mistake, seeds=(0,))


def test_integrated_gradients_messages_name_the_broken_property():
    cases = [
        (mistakes.ig_per_dimension, "expected shape \\(\\d+,\\), one attribution per token, "
                                    "got \\(\\d+, \\d+\\): sum"),
        (mistakes.ig_single_step, "it ignores the steps"),
        (mistakes.ig_gradient_times_input, "along the path"),
        (mistakes.ig_zero_baseline, "it ignores the baseline"),
        (mistakes.ig_without_difference, "breaks completeness"),
        (mistakes.ig_summed_gradients, "breaks completeness: the attributions sum to"),
        (mistakes.ig_left_riemann_sum, "midpoint rule"),
    ]
    for mistake, fragment in cases:
        with pytest.raises(CheckFailed, match=fragment):
            checks.check_integrated_gradients(mistake, seeds=(0,))


def test_a_hanging_answer_is_stopped(monkeypatch):
    monkeypatch.setenv("MECHINTERP_CHECK_TIMEOUT", "1")
    with pytest.raises(CheckFailed, match="did not finish within 1 s"):
        checks.check_project_out(mistakes.loops_forever)
    # also where the check expects an error: a hang is not taken for a refusal
    monkeypatch.setenv("MECHINTERP_CHECK_TIMEOUT", "8")
    with pytest.raises(CheckFailed, match="did not finish within 8 s"):
        checks.check_probe_by_layer(mistakes.probe_hangs_on_shared_examples, seeds=(0,))


def test_correct_but_noisy_code_passes_quietly(capfd):
    checks.check_control_task(mistakes.control_task_noisy_but_right)
    checks.check_probe_by_layer(mistakes.probe_by_layer_noisy_but_right, seeds=(0,))
    captured = capfd.readouterr()
    assert captured.err == ""
    assert captured.out.strip().splitlines() == ["✔ control_task: passed 3 randomised tests.",
                                                 "✔ probe_by_layer: passed 1 randomised test."]


def test_calling_the_solution_module_earns_nothing(solution_nb):
    from reference_impl.probing import solutions as solution

    with pytest.raises(CheckFailed, match="uses the chapter's solution module"):
        checks.check_project_out(solution.project_out)
    with pytest.raises(CheckFailed, match="uses the chapter's solution module"):
        checks.check_split_by_person(solution.split_by_person)
    wrapped = notebooks.function_from(solution_nb, "majority_baseline", source=(
        "def majority_baseline(labels, train, test):\n"
        "    from reference_impl.probing.solutions import majority_baseline as answer\n"
        "    return answer(labels, train, test)\n"))
    with pytest.raises(CheckFailed, match="imports `reference_impl.probing.solutions`"):
        checks.check_majority_baseline(wrapped)
    # through a module imported under another name
    sneaky = notebooks.function_from(solution_nb, "majority_baseline", source=(
        "from reference_impl.probing import solutions as sol\n\n"
        "def majority_baseline(labels, train, test):\n"
        "    return sol.majority_baseline(labels, train, test)\n"))
    with pytest.raises(CheckFailed, match="uses the chapter's solution module"):
        checks.check_majority_baseline(sneaky)


def test_each_exercise_is_graded_alone(solution_nb):
    """probe_properties and selectivity are graded with the reference functions they build on,
    even when the learner's are broken."""
    probe_properties = notebooks.function_from(solution_nb, "probe_properties")
    probe_properties.__globals__["residual_stack"] = mistakes.stack_batch_first
    probe_properties.__globals__["probe_by_layer"] = mistakes.probe_percentages
    probe_properties.__globals__["majority_baseline"] = mistakes.majority_count
    checks.check_probe_properties(probe_properties, seeds=(0,))
    selectivity = notebooks.function_from(solution_nb, "selectivity")
    selectivity.__globals__["probe_by_layer"] = mistakes.probe_scored_on_train
    checks.check_selectivity(selectivity, seeds=(0,))
    amnesic_recall = notebooks.function_from(solution_nb, "amnesic_recall")
    amnesic_recall.__globals__["project_out"] = mistakes.project_out_unnormalised
    checks.check_amnesic_recall(amnesic_recall, seeds=(0,))


def test_right_answers_that_choose_differently_pass(solution_nb):
    """Where the exercise leaves a choice open, the check accepts any right answer: a split by
    person drawn with numpy, a validation written by hand, the probes fitted to float64 copies."""
    split = notebooks.function_from(solution_nb, "split_by_person", source=(
        "import numpy as np\n"
        "import torch\n\n"
        "def split_by_person(people, test_fraction, seed):\n"
        "    distinct = np.array(sorted(set(people)))\n"
        "    n_test = max(1, int(round(test_fraction * len(distinct))))\n"
        "    held_out = set(np.random.default_rng(seed).permutation(distinct)[:n_test])\n"
        "    test = torch.tensor([i for i, p in enumerate(people) if p in held_out])\n"
        "    train = torch.tensor([i for i, p in enumerate(people) if p not in held_out])\n"
        "    return train.long(), test.long()\n"))
    checks.check_split_by_person(split, seeds=(0, 1, 2, 3, 4))
    by_hand = notebooks.function_from(solution_nb, "probe_by_layer", source=(
        "import numpy as np\n"
        "import torch\n\n"
        "def probe_by_layer(activations, labels, train, test, make_probe=linear_probe):\n"
        "    labels = np.asarray(labels)\n"
        "    if torch.isnan(activations).any():\n"
        "        raise ValueError('NaN in the activations')\n"
        "    if len(labels) != activations.shape[1]:\n"
        "        raise ValueError('one label per example')\n"
        "    if np.intersect1d(train.numpy(), test.numpy()).size:\n"
        "        raise ValueError('train and test overlap')\n"
        "    if len(np.unique(labels[train.numpy()])) < 2:\n"
        "        raise ValueError('one class')\n"
        "    accuracies = []\n"
        "    for layer in activations.double().numpy():\n"
        "        probe = make_probe().fit(layer[train.numpy()], labels[train.numpy()])\n"
        "        accuracies.append(np.mean(probe.predict(layer[test.numpy()])\n"
        "                                  == labels[test.numpy()]))\n"
        "    return torch.tensor(accuracies, dtype=torch.float32)\n"))
    checks.check_probe_by_layer(by_hand)
