"""What the chapter 04 checks say, and how they treat hangs, noisy output, use of the solution
module, broken dependencies and hooks left on a model. Reference, stub and mistakes:
tests/test_every_check.py."""

import pytest
import torch

from reference_impl.course.grading import CheckFailed
from reference_impl.ioi_circuit import checks
from tests import notebooks
from tests.ioi_circuit import mistakes


def check_of(name):
    return getattr(checks, f"check_{name}")


@pytest.fixture(scope="module")
def solution_nb(ioi_circuit):
    return notebooks.read(ioi_circuit.solution_notebook)


def hooks_on(model):
    """How many hooks the modules of ``model`` hold."""
    return sum(len(getattr(module, table))
               for module in model.modules()
               for table in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
                             "_backward_pre_hooks"))


def test_messages_say_what_to_fix():
    cases = [
        ("logit_diff", mistakes.logit_diff_detached,
         "cut the result off the computation graph .*index the logits tensor instead"),
        ("ioi_metrics", mistakes.ioi_metrics_tensors,
         "ioi_metrics\\(\\)\\['logit_diff'\\] is a tensor: return Python floats"),
        ("ioi_metrics", mistakes.ioi_metrics_accuracy_against_s_only, "over the whole vocabulary"),
        ("accumulated_logit_diff", mistakes.accumulated_without_embeddings,
         "expected shape \\(6, 4\\), got \\(5, 4\\): \\(n_layer \\+ 1, batch\\)"),
        ("head_patching", mistakes.head_patching_always_z,
         "head_patching\\(activation='k', by_position=False\\) on world-5l"),
        ("path_patching", mistakes.path_receivers_from_corrupted_run,
         "run 3 patches only the receivers' inputs from run 2"),
        ("attribution_patching", mistakes.attribution_with_backward,
         "torch.autograd.grad\\(metric, activations\\) instead of .backward\\(\\)"),
        ("mean_ablation_patches", mistakes.mean_ablation_zero,
         "averaged over the reference prompts at that position"),
        ("ioi_attention", mistakes.raises_index_error,
         "raised IndexError at `return \\[\\]\\[0\\]`"),
    ]
    for name, mistake, fragment in cases:
        with pytest.raises(CheckFailed, match=fragment):
            check_of(name)(mistake)


def test_a_hanging_answer_is_stopped(monkeypatch):
    monkeypatch.setenv("MECHINTERP_CHECK_TIMEOUT", "1")
    with pytest.raises(CheckFailed, match="did not finish within 1 s"):
        checks.check_logit_diff(mistakes.loops_forever)


def test_correct_but_noisy_code_passes_quietly(capfd):
    checks.check_ioi_attention(mistakes.ioi_attention_noisy_but_right)
    # the patches print and warn while the check runs the model with them, not in the answer
    checks.check_mean_ablation_patches(mistakes.mean_ablation_noisy_but_right, seeds=(1,))
    captured = capfd.readouterr()
    assert captured.err == ""
    assert captured.out.strip().splitlines() == [
        "✔ ioi_attention: passed 3 randomised tests.",
        "✔ mean_ablation_patches: passed 1 randomised test."]


def test_calling_the_solution_module_earns_nothing(solution_nb):
    from reference_impl.ioi_circuit import solutions as solution

    with pytest.raises(CheckFailed, match="uses the chapter's solution module"):
        checks.check_logit_diff(solution.logit_diff)
    with pytest.raises(CheckFailed, match="uses the chapter's solution module"):
        checks.check_path_patching(solution.path_patching)
    wrapped = notebooks.function_from(solution_nb, "mean_ablation_patches", source=(
        "def mean_ablation_patches(model, reference_tokens, keep):\n"
        "    from reference_impl.ioi_circuit.solutions import mean_ablation_patches as answer\n"
        "    return answer(model, reference_tokens, keep)\n"))
    with pytest.raises(CheckFailed, match="imports `reference_impl.ioi_circuit.solutions`"):
        checks.check_mean_ablation_patches(wrapped)


def test_each_exercise_is_graded_alone(solution_nb):
    """ioi_metrics is graded with the reference logit_diff, and every answer with the reference
    versions of the helpers the notebook gives, even when the learner's copies are broken."""
    ioi_metrics = notebooks.function_from(solution_nb, "ioi_metrics")
    ioi_metrics.__globals__["logit_diff"] = mistakes.logit_diff_s_minus_io
    checks.check_ioi_metrics(ioi_metrics)
    accumulated = notebooks.function_from(solution_nb, "accumulated_logit_diff")
    accumulated.__globals__["final_layer_norm"] = lambda model, x, scale: x
    accumulated.__globals__["logit_diff_directions"] = lambda model, io, s: 0
    checks.check_accumulated_logit_diff(accumulated)


def test_a_raw_hook_is_removed_even_when_the_answer_raises(solution_nb):
    """A hook registered with register_forward_hook and never taken off (the answer raised
    first) would zero block 0 in every later run of the shipped model; the check removes it."""
    shipped, _ = checks._shipped()
    tokens = checks._shipped_batch(0).tokens
    with torch.no_grad():
        before = shipped(tokens).logits
    with pytest.raises(CheckFailed, match="`accumulated_logit_diff` raised RuntimeError"):
        checks.check_accumulated_logit_diff(mistakes.accumulated_hook_then_raises)
    assert hooks_on(shipped) == 0
    with torch.no_grad():
        assert torch.equal(shipped(tokens).logits, before)
    checks.check_accumulated_logit_diff(notebooks.function_from(solution_nb,
                                                                "accumulated_logit_diff"))


def test_an_answer_that_leaves_a_hook_fails(solution_nb):
    shipped, _ = checks._shipped()
    with pytest.raises(CheckFailed, match="left 1 hook on the model \\(now removed\\): register "
                                          "hooks through `patched` or `run_with_cache`"):
        checks.check_accumulated_logit_diff(mistakes.accumulated_hook_left_behind)
    assert hooks_on(shipped) == 0
    # also on the notebook's own model, which the answer reaches as a global
    on_notebook_model = notebooks.function_from(solution_nb, "accumulated_logit_diff", source=(
        "def accumulated_logit_diff(model_, tokens, io, s):\n"
        "    model.transformer.h[0].register_forward_hook(lambda *args: None)\n"
        "    return accumulated_logit_diff_reference(model_, tokens, io, s)\n"))
    namespace = on_notebook_model.__globals__
    namespace["accumulated_logit_diff_reference"] = notebooks.function_from(
        solution_nb, "accumulated_logit_diff")
    with pytest.raises(CheckFailed, match="left 1 hook on the model"):
        checks.check_accumulated_logit_diff(on_notebook_model)
    assert hooks_on(namespace["model"]) == 0
