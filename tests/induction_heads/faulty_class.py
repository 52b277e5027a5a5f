"""The course's class of faulty chapter 03 submissions: thirteen students, each handing in what
real students hand in (nothing, the untouched release, half a notebook, a syntax error, a NaN, a
wrong shape, an answer that wrecks the model, one that kills the kernel, one that never returns,
a file that is not a notebook, the chapter's own solutions, an edited check cell, noisy but right
code). The chapter's nbgrader round trip grades it, and so does grading at scale, on Dask's
workers and into PostgreSQL (tests/test_grading_at_scale.py)."""

from tests.nbgrader_class import answers_of, body_prefixed, with_answers

ASSIGNMENT = "03_induction_heads"
# nbgrader interrupts a cell after 30 s, the grading checks give up on an answer after 20 s:
# far above any cell of the solution (5 s), even with five notebooks graded at once on 2 cores.
CELL_TIMEOUT = 30
CHECK_TIMEOUT = "20"

HALF = ["detector_scores", "copy_losses", "logit_lens", "ablation_patches", "ov_circuit",
        "positional_qk_circuit"]  # carol's done exercises
RAISES = "direct_logit_attribution"  # carol's one other answer raises
# mallory's head_weights fills the model it is given with NaN. The notebook's experiments call it
# on the notebook's own model, and a later cell's torch.linalg.eigvals then crashes the kernel.
WRECKS = "head_weights"
KILLER = "detector_scores"  # grace's answer kills the kernel when it is checked
LOOPS = "phase_change_step"  # heidi's answer never returns

# For the students who handed in a whole notebook with faults: {exercise: what its check says}.
# Every exercise not named scores full marks.
FAULTS = {
    "dave": {"k_composition_scores": "is not defined: its answer cell did not run to the end"},
    "erin": {"copy_losses": "is nan: look for a division by zero or a log of zero"},
    "frank": {"head_scores": "expected shape (2, 4), got (4, 2)"},
    "grace": {KILLER: f"`{KILLER}` stopped the Python kernel"},
    "heidi": {LOOPS: f"did not finish within {CHECK_TIMEOUT} s"},
    "mallory": {WRECKS: "in place (now put back)"},
    "oscar": {"ov_circuit": "uses the chapter's solution module"},
    "peggy": {},  # edited a check cell: graded with the original one, full marks
    "alice": {},  # right, but prints, warns and shows a progress bar
}
INVALID = {"judy": '{"cells": [{"cell_type": "code",\n "source": "x",, }]}'}
ABSENT = ["ivan"]  # handed in nothing, and still gets a row


def submissions(solution, release):
    answer = answers_of(solution)
    return {
        "alice": with_answers(solution, {"detector_scores": body_prefixed(answer[KILLER], [
            "import sys, warnings",
            "from tqdm.auto import tqdm",
            "print('checking my shapes', pattern.shape, file=sys.stderr)",
            "warnings.warn('this is only a warning')",
            "for _ in tqdm(range(3)): pass"])}),
        "bob": release,
        # Half the exercises done, one of the others raising, the rest left as stubs.
        "carol": with_answers(release, {**{name: answer[name] for name in HALF},
                                        RAISES: body_prefixed(answer[RAISES],
                                                              ['raise ValueError("I gave up")'])}),
        "dave": with_answers(solution, {"k_composition_scores": answer["k_composition_scores"]
                                        .replace("reader=1):", "reader=1)", 1)}),
        "erin": with_answers(solution, {"copy_losses": body_prefixed(answer["copy_losses"], [
            "return float('nan'), float('nan')"])}),
        "frank": with_answers(solution, {"head_scores": answer["head_scores"].replace(
            "return previous, induction.mean(dim=(1, 3))",
            "return previous.T, induction.mean(dim=(1, 3)).T")}),  # (heads, layers)
        "grace": with_answers(solution, {KILLER: body_prefixed(answer[KILLER],
                                                               ["import os", "os._exit(1)"])}),
        "heidi": with_answers(solution, {LOOPS: body_prefixed(answer[LOOPS],
                                                              ["while True:", "    pass"])}),
        "mallory": with_answers(solution, {WRECKS: body_prefixed(answer[WRECKS], [
            "with torch.no_grad():",
            "    for parameter in model.parameters():",
            "        parameter.fill_(float('nan'))"])}),
        "oscar": with_answers(solution, {
            "ov_circuit": "from reference_impl.induction_heads.solutions import ov_circuit"}),
        "peggy": with_answers(solution, {"check_logit_lens": "print('looks fine to me')"}),
    }
