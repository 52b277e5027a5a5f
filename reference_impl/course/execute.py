"""Run a chapter notebook headless and score its graded check cells, as nbgrader would.

A notebook that raises, hangs or kills its kernel still gets a score: a cell that kills the kernel
is defused and the notebook run again, the cells that ran keep their results, and every check
that never ran scores zero with the reason.
"""

import copy
import re
import subprocess
import time
from dataclasses import dataclass, field
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
    repairs: dict = field(default_factory=dict)  # exercise -> "changed" or "missing" check cell
    skipped: list = field(default_factory=list)  # indices of cells that killed the kernel
    source: nbformat.NotebookNode = None  # the notebook as run, with those cells defused


class InvalidNotebook(ValueError):
    """The file is not a notebook that can be graded; the message says where it breaks."""


def read_notebook(path):
    """Read a notebook, or raise InvalidNotebook saying what is wrong with the file and where."""
    path = Path(path)
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except UnicodeDecodeError as error:
        raise InvalidNotebook(f"{path.name} is not a valid notebook: it is not UTF-8 text "
                              f"(byte {error.start})") from None
    except nbformat.reader.NotJSONError as error:
        cause = error.__cause__ or error.__context__
        where = f" ({cause})" if cause else ""
        raise InvalidNotebook(f"{path.name} is not a valid notebook: it is not valid JSON{where}; "
                              f"open it in a text editor at that place, or start again from a "
                              f"fresh copy and paste your answers in") from None
    except (nbformat.ValidationError, TypeError, KeyError, AttributeError) as error:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InvalidNotebook(f"{path.name} is not a valid notebook: its JSON does not have the "
                              f"structure of a Jupyter notebook ({detail})") from None
    return nb


def chapter_of(nb):
    """The chapter whose exercises this notebook holds, or None."""
    from reference_impl.course.build import exercises
    from reference_impl.course.chapters import CHAPTERS

    ids = {c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells}
    shared = {chapter: ids & {e.name for e in exercises(chapter)} for chapter in CHAPTERS}
    best = max(CHAPTERS, key=lambda chapter: len(shared[chapter]))
    return best if shared[best] else None


def restore_check_cells(nb, chapter):
    """Give every exercise of ``chapter`` its check cell with the locked source, as nbgrader's
    autograder does; a missing one is put back after the exercise's answer cell. Returns
    {exercise: "changed" or "missing"} for the cells that had to be restored."""
    from reference_impl.course.build import learner_notebook, solution_notebook
    from reference_impl.course.chapters import find_chapter

    # The check cells as this installed package releases them (it is their checks that run).
    released = learner_notebook(solution_notebook(find_chapter(chapter.topic)))
    locked = {c.metadata.nbgrader["grade_id"]: c for c in released.cells
              if nbgrader_utils.is_grade(c)}
    repairs = {}
    for grade_id, reference in locked.items():
        exercise = grade_id.removeprefix("check_")
        ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
        if grade_id in ids:
            cell = nb.cells[ids.index(grade_id)]
            if cell.source != reference.source or not nbgrader_utils.is_grade(cell):
                cell.source = reference.source
                cell.metadata["nbgrader"] = dict(reference.metadata.nbgrader)
                repairs[exercise] = "changed"
            continue
        place = ids.index(exercise) + 1 if exercise in ids else len(nb.cells)
        nb.cells.insert(place, nbformat.from_dict(reference))
        repairs[exercise] = "missing"
    return repairs


# How many cells that kill the kernel one grading run steps over before it gives up on the rest.
MAX_KERNEL_DEATHS = 3

KILLED = "stopped the Python kernel (os._exit, a crash in compiled code or running out of memory)"


def defuse(nb, index):
    """Change the cell that killed the kernel so that a rerun gets past it: an experiment cell
    is replaced by an error; for a check cell, the learner's function it checks is."""
    cell = nb.cells[index]
    meta = cell.metadata.get("nbgrader", {})
    exercise = meta.get("grade_id", "").removeprefix("check_") if meta.get("grade") else None
    answers = [c for c in nb.cells if exercise and nbgrader_utils.is_solution(c)
               and c.metadata.nbgrader.get("grade_id") == exercise]
    if answers:
        answers[0].source = (f"def {exercise}(*args, **kwargs):\n"
                             f"    raise RuntimeError(\"`{exercise}` {KILLED} when it was checked, "
                             f"so it was not graded\")\n")
    else:
        cell.source = (f"raise RuntimeError(\"this cell {KILLED} while the notebook was graded, "
                       f"so it was skipped\")\n")


def _run(nb, folder, cell_timeout):
    """Execute ``nb`` in place; the index of the cell that killed the kernel, or -1."""
    client = NotebookClient(nb, timeout=cell_timeout, kernel_name="python3", allow_errors=True,
                            interrupt_on_timeout=True, resources={"metadata": {"path": folder}})
    running = {}
    client.on_cell_execute = lambda cell, cell_index: running.update(index=cell_index)
    try:
        # The kernel process's own stderr carries only its start-up chatter; what the notebook
        # writes to stderr reaches the cell outputs through the kernel protocol.
        client.execute(stderr=subprocess.DEVNULL)
    except DeadKernelError:
        return running.get("index", 0)
    return -1


def execute(path, cell_timeout=CELL_TIMEOUT, chapter=None):
    """Execute a notebook in its own folder, leaving the file untouched. With ``chapter``, every
    check cell of that chapter is run with its locked source first (see restore_check_cells).

    A cell that kills the kernel is defused and the notebook run again from the start, so that
    it costs only its own exercise (up to MAX_KERNEL_DEATHS times)."""
    path = Path(path)
    source = read_notebook(path)
    repairs = restore_check_cells(source, chapter) if chapter else {}
    skipped = []
    start = time.perf_counter()
    while True:
        nb = copy.deepcopy(source)
        died_at = _run(nb, str(path.parent.resolve()), cell_timeout)
        if died_at < 0 or len(skipped) == MAX_KERNEL_DEATHS:
            break
        skipped.append(died_at)
        defuse(source, died_at)
    seconds = time.perf_counter() - start
    if died_at >= 0:
        return Execution(nb, seconds, f"the kernel died while running cell {died_at + 1}", died_at,
                         repairs, skipped, source)
    return Execution(nb, seconds, repairs=repairs, skipped=skipped, source=source)


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
        message = "" if points == max_points else _failure_message(cell)
        repair = execution.repairs.get(exercise)
        if repair:
            note = f"(its check cell was {'edited' if repair == 'changed' else 'missing'}: " \
                   f"graded with the original)"
            message = f"{note} {message}".strip()
        results.append(ExerciseResult(exercise, points, max_points, message))
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
