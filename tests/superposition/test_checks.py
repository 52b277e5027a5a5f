"""What the chapter 01 checks say, and how they treat hangs, noisy output, use of the
solution module and broken dependencies. Reference, stub and mistakes: tests/test_every_check.py."""

import pytest
import torch

from reference_impl.superposition import checks
from reference_impl.course.grading import CheckFailed
from tests import notebooks
from tests.superposition import mistakes


def check_of(name):
    return getattr(checks, f"check_{name}")


@pytest.fixture(scope="module")
def solution_nb(superposition):
    return notebooks.read(superposition.solution_notebook)


def test_messages_say_what_to_fix():
    cases = [
        ("generate_batch", mistakes.generate_batch_transposed, "expected shape (4000, 3, 6)"),
        ("generate_batch", mistakes.generate_batch_sparsity_for_density, "not 1 - density"),
        ("generate_batch", mistakes.generate_batch_float64, "dtype"),
        ("reconstruct", mistakes.reconstruct_in_place, "in place"),
        ("reconstruct", mistakes.reconstruct_relu_before_bias, "ReLU last"),
        ("reconstruct", mistakes.raises_index_error, "raised IndexError at `return W[99]`"),
        ("interference", mistakes.interference_nan_for_zero_column, "NaN"),
        ("dimensions_per_feature", mistakes.returns_list, "should be a torch.Tensor"),
        ("importance_weighted_loss", mistakes.loss_summed_to_scalar, "expected shape"),
        ("classify_phase", mistakes.classify_float_result, "dtype torch.int64"),
    ]
    for name, mistake, fragment in cases:
        with pytest.raises(CheckFailed, match=fragment.replace("(", r"\(").replace(")", r"\)")
                           .replace("[", r"\[").replace("]", r"\]")):
            check_of(name)(mistake)


@pytest.mark.parametrize("hang", [mistakes.loops_forever, mistakes.swallows_interrupts])
def test_a_hanging_answer_is_stopped(hang, monkeypatch):
    monkeypatch.setenv("MECHINTERP_CHECK_TIMEOUT", "1")
    with pytest.raises(CheckFailed, match="did not finish within 1 s"):
        checks.check_dimensions_per_feature(hang)


def test_correct_but_noisy_code_passes_quietly(capfd):
    checks.check_train(mistakes.train_noisy_but_right)
    captured = capfd.readouterr()
    assert captured.err == ""
    assert captured.out.strip() == "✔ train: passed 3 randomised tests."


def test_calling_the_solution_module_earns_nothing(solution_nb):
    from reference_impl.superposition import solutions as solution

    with pytest.raises(CheckFailed, match="uses the chapter's solution module"):
        checks.check_reconstruct(solution.reconstruct)
    wrapped = notebooks.function_from(solution_nb, "interference", source=(
        "def interference(W):\n"
        "    from reference_impl.superposition.solutions import interference as answer\n"
        "    return answer(W)\n"))
    with pytest.raises(CheckFailed, match="imports `reference_impl.superposition.solutions`"):
        checks.check_interference(wrapped)
    via_module = notebooks.function_from(solution_nb, "interference", source=(
        "import reference_impl.superposition.solutions as sp\n"
        "def helper(W):\n"
        "    return sp.interference(W)\n"
        "def interference(W):\n"
        "    return helper(W)\n"))
    with pytest.raises(CheckFailed, match="via your helper `helper`"):
        checks.check_interference(via_module)


def test_each_exercise_is_graded_alone(solution_nb):
    """train is graded with the reference generate_batch, loss and model, even when the
    learner's versions of those are broken."""
    namespace_train = notebooks.function_from(solution_nb, "train")
    namespace_train.__globals__["generate_batch"] = mistakes.generate_batch_ones
    namespace_train.__globals__["importance_weighted_loss"] = mistakes.loss_not_squared
    checks.check_train(namespace_train)


def test_not_a_function():
    with pytest.raises(CheckFailed, match="should be a function"):
        checks.check_reconstruct(3)


def test_the_generate_batch_check_leaves_the_global_random_state_as_it_found_it(solution_nb):
    """It runs the learner's function under different global seeds, to tell whether the batch
    comes from `generator` alone."""
    torch.manual_seed(12345)
    state = torch.random.get_rng_state()
    checks.check_generate_batch(notebooks.function_from(solution_nb, "generate_batch"))
    with pytest.raises(CheckFailed, match="seeded alike"):
        checks.check_generate_batch(mistakes.generate_batch_global_rng)
    assert torch.equal(torch.random.get_rng_state(), state)
