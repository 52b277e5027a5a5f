"""Run a chapter notebook headless and score its graded check cells, as nbgrader would.

A notebook that raises, hangs or kills its kernel still gets a score: the cells that ran keep
their results and every check that never ran scores zero with the reason.
"""

import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError
from nbgrader import utils as nbgrader_utils

# Per-cell limit: above the slowest cell of any solution notebook on a slow laptop, so that only
# a cell that really hangs is interrupted (the grading checks have a shorter limit of their own).
CELL_TIMEOUT = 120

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class ExerciseResult:
    exercise: str
    points: float
    max_points: float
    message: str = ""

    @property
    def passed(self):
        return self.points == self.max_points


@dataclass
class Execution:
    notebook: nbformat.NotebookNode  # with the outputs of every cell that ran
    seconds: float
    kernel_died: str = ""  # why execution stopped early, if it did
    died_at: int = -1  # the index of the cell that was running when the kernel died


def execute(path, cell_timeout=CELL_TIMEOUT):
    """Execute a notebook in its own folder, leaving the file untouched."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=cell_timeout, kernel_name="python3", allow_errors=True,
                            interrupt_on_timeout=True,
                            resources={"metadata": {"path": str(path.parent.resolve())}})
    running = {}
    client.on_cell_execute = lambda cell, cell_index: running.update(index=cell_index)
    start = time.perf_counter()
    try:
        # The kernel process's own stderr carries only its start-up chatter; what the notebook
        # writes to stderr reaches the cell outputs through the kernel protocol.
        client.execute(stderr=subprocess.DEVNULL)
    except DeadKernelError:
        index = running.get("index", 0)
        return Execution(nb, time.perf_counter() - start,
                         f"the kernel died while running cell {index + 1}", index)
    return Execution(nb, time.perf_counter() - start)


def _failure_message(cell):
    for output in cell.outputs:
        if output.output_type == "error":
            # A check's own verdict needs no exception name; anything else keeps it.
            prefix = "" if output.ename == "CheckFailed" else f"{output.ename}: "
            text = ANSI.sub("", prefix + output.evalue)
            return text.strip().splitlines()[0] if text.strip() else output.ename
    for output in cell.outputs:
        if output.output_type == "stream" and output.name == "stderr":
            return "the cell wrote to stderr: " + ANSI.sub("", output.text).strip().splitlines()[0]
    return "no points"


def score(execution):
    """One result per graded cell, scored with nbgrader's own rule."""
    results = []
    for index, cell in enumerate(execution.notebook.cells):
        if not nbgrader_utils.is_grade(cell):
            continue
        grade_id = cell.metadata.nbgrader["grade_id"]
        exercise = grade_id.removeprefix("check_")
        max_points = float(cell.metadata.nbgrader["points"])
        never_finished = 0 <= execution.died_at <= index
        if never_finished or (cell.get("execution_count") is None and not cell.get("outputs")):
            reason = execution.kernel_died or "the check cell did not run"
            results.append(ExerciseResult(exercise, 0.0, max_points, reason))
            continue
        points, _ = nbgrader_utils.determine_grade(cell)
        points = float(points or 0)
        results.append(ExerciseResult(exercise, points, max_points,
                                      "" if points == max_points else _failure_message(cell)))
    return results


def format_table(results):
    width = max([len("exercise")] + [len(r.exercise) for r in results])
    lines = [f"{'exercise':<{width}}  points  result  message"]
    for r in results:
        points = f"{r.points:g}/{r.max_points:g}"
        lines.append(f"{r.exercise:<{width}}  {points:>6}  {'pass' if r.passed else 'FAIL':<6}"
                     f"  {r.message}".rstrip())
    total = sum(r.points for r in results)
    possible = sum(r.max_points for r in results)
    lines.append(f"score: {total:g}/{possible:g}")
    return "\n".join(lines)
