"""What the chapter 03 checks say, and how they treat hangs, noisy output, use of the
solution module and broken dependencies. Reference, stub and mistakes: tests/test_every_check.py."""

import pytest

from reference_impl.induction_heads import checks
from reference_impl.course.grading import CheckFailed
from tests import notebooks
from tests.induction_heads import mistakes


def check_of(name):
    return getattr(checks, f"check_{name}")


@pytest.fixture(scope="module")
def solution_nb(induction_heads):
    return notebooks.read(induction_heads.solution_notebook)


def test_messages_say_what_to_fix():
    cases = [
        ("detector_scores", mistakes.detector_scores_transposed, "expected shape"),
        ("copy_losses", mistakes.copy_losses_tensors, "should be a number"),
        ("copy_losses", mistakes.copy_losses_ignores_patches, "pass `patches` to run_with_cache"),
        ("head_scores", mistakes.head_scores_two_layers, "3-layer model"),
        ("logit_lens", mistakes.logit_lens_without_ln_f, "ln_f"),
        ("direct_logit_attribution", mistakes.dla_scale_per_component, "frozen scale"),
        ("ablation_patches", mistakes.ablation_always_zero, "when mean-ablating"),
        ("head_weights", mistakes.head_weights_in_place, "changed its input"),
        ("head_weights", mistakes.raises_index_error,
         "raised IndexError at `return \\[\\]\\[0\\]`"),
        ("phase_change_step", mistakes.phase_change_minus_one_when_never, "should return None"),
    ]
    for name, mistake, fragment in cases:
        with pytest.raises(CheckFailed, match=fragment):
            check_of(name)(mistake)


def test_a_hanging_answer_is_stopped(monkeypatch):
    monkeypatch.setenv("MECHINTERP_CHECK_TIMEOUT", "1")
    with pytest.raises(CheckFailed, match="did not finish within 1 s"):
        checks.check_copying_score(mistakes.loops_forever)


def test_correct_but_noisy_code_passes_quietly(capfd):
    checks.check_head_weights(mistakes.head_weights_noisy_but_right)
    captured = capfd.readouterr()
    assert captured.err == ""
    assert captured.out.strip() == "✔ head_weights: passed 3 randomised tests."


def test_calling_the_solution_module_earns_nothing(solution_nb):
    from reference_impl.induction_heads import solutions as solution
    from reference_impl.zoo import induction as zoo_induction

    with pytest.raises(CheckFailed, match="uses the chapter's solution module"):
        checks.check_head_scores(solution.head_scores)
    # The zoo re-exports the same functions: they are still the solution module's.
    with pytest.raises(CheckFailed, match="uses the chapter's solution module"):
        checks.check_copy_losses(zoo_induction.copy_losses)
    wrapped = notebooks.function_from(solution_nb, "copying_score", source=(
        "def copying_score(circuit):\n"
        "    from reference_impl.induction_heads.solutions import copying_score as answer\n"
        "    return answer(circuit)\n"))
    with pytest.raises(CheckFailed, match="imports `reference_impl.induction_heads.solutions`"):
        checks.check_copying_score(wrapped)


def test_each_exercise_is_graded_alone(solution_nb):
    """ov_circuit is graded with the reference head_weights, even when the learner's is broken."""
    ov_circuit = notebooks.function_from(solution_nb, "ov_circuit")
    ov_circuit.__globals__["head_weights"] = mistakes.head_weights_k_for_q
    checks.check_ov_circuit(ov_circuit)
