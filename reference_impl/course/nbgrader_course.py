"""An nbgrader course directory for the course, and class autograding that never stops.

``write_course`` lays out ``nbgrader_config.py`` and ``source/<chapter>/exercises.ipynb`` (the
solution notebook of each chapter) so that the usual nbgrader commands work on it.

``autograde`` runs nbgrader's own autograder one student at a time. A submission with a cell that
kills the kernel is graded again with that cell defused, so it costs only its own exercise. When
nbgrader cannot grade a submission at all (it is not a valid notebook, its kernel dies at every
attempt, or it hangs outside any cell nbgrader can interrupt), the student still gets a row: every
check is recorded as zero in the gradebook, with the reason as the comment on each check.
"""

import shutil
from dataclasses import dataclass
from pathlib import Path

import nbformat

from reference_impl.course.execute import CELL_TIMEOUT

NOTEBOOK = "exercises"  # every assignment holds one notebook, named like the learner's copy
KERNEL_DIED = "the notebook killed its Python kernel (for example with os._exit or a crash)"

CONFIG = '''\
c = get_config()  # noqa: F821 (provided by nbgrader)

c.CourseDirectory.course_id = "mechinterp"
# Above the slowest cell of any solution notebook, so only a hanging cell is interrupted.
c.Execute.timeout = {timeout}
# A kernel that died is not retried: the submission would only kill it again.
c.Execute.execute_retries = 0
'''


def write_course(directory, chapters, cell_timeout=CELL_TIMEOUT):
    """Write (or refresh) an nbgrader course directory with one assignment per chapter."""
    root = Path(directory).resolve()
    root.mkdir(parents=True, exist_ok=True)
    (root / "nbgrader_config.py").write_text(CONFIG.format(timeout=cell_timeout))
    for chapter in chapters:
        target = root / "source" / chapter.folder / f"{NOTEBOOK}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(chapter.solution_notebook, target)
    return root


@dataclass
class Outcome:
    student: str
    success: bool
    reason: str = ""


def _reason(log):
    """The sentence of nbgrader's log that says why a submission could not be graded."""
    text = log or ""
    if "DeadKernelError" in text or "Kernel died" in text or "kernel died" in text:
        return KERNEL_DIED
    if "UnresponsiveKernelError" in text or "Timeout" in text:
        return "the notebook's kernel stopped responding"
    lines = [line for line in text.splitlines() if "[ERROR]" in line]
    return lines[-1].split("[ERROR]", 1)[1].strip() if lines else "nbgrader could not grade it"


def _record_zero(root, assignment, student, reason):
    """Give every check of the submission zero points in the gradebook, with the reason."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        try:
            submission = gradebook.find_submission(assignment, student)
        except Exception:  # nbgrader did not get as far as recording the submission
            submission = gradebook.add_submission(assignment, student)
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                grade.auto_score = 0
                grade.manual_score = None
            for comment in notebook.comments:
                comment.manual_comment = f"Not graded: {reason}."
        gradebook.db.commit()


def autograde(directory, assignment, students=None):
    """Autograde every submission of ``assignment``; return one Outcome per student."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    root = Path(directory).resolve()
    config = Config()
    config.merge(_load_config(root))
    api = NbGraderAPI(coursedir=CourseDirectory(config=config, root=str(root)), config=config)
    if students is None:
        submitted = root / "submitted"
        students = sorted(p.name for p in submitted.iterdir() if (p / assignment).is_dir())
    timeout = config.Execute.get("timeout", CELL_TIMEOUT)
    outcomes = []
    for student in students:
        result = api.autograde(assignment, student, force=True, create=True)
        folder = root / "submitted" / student / assignment
        # nbgrader only says "see the above traceback" of a file that is not a notebook.
        invalid = _invalid_notebook(folder)
        reason = invalid or _failure(result)
        if reason == KERNEL_DIED:
            result, reason = _grade_past_kernel_deaths(api, assignment, student, folder, timeout)
        if reason:
            _record_zero(root, assignment, student, reason)
            outcomes.append(Outcome(student, False, reason))
        else:
            outcomes.append(Outcome(student, True))
    return outcomes


def _failure(result):
    """Why nbgrader could not grade a submission, or "" when it did."""
    log = result.get("log") or ""
    # nbgrader reports a submission it gave up on in its log (interrupted cells are logged as
    # errors too, but those submissions were graded).
    if result["success"] and "Removing failed assignment" not in log:
        return ""
    return _reason((result.get("error") or "") + "\n" + log)


def _grade_past_kernel_deaths(api, assignment, student, folder, timeout):
    """Grade again with the cells that kill the kernel defused (see execute.defuse), so that
    such a cell costs only its own exercise; the student's files are left as they were."""
    from reference_impl.course.execute import execute

    path = folder / f"{NOTEBOOK}.ipynb"
    execution = execute(path, cell_timeout=timeout)
    if execution.kernel_died or not execution.skipped:
        return None, KERNEL_DIED
    original = path.read_bytes()
    try:
        nbformat.write(execution.source, path)
        result = api.autograde(assignment, student, force=True, create=True)
    finally:
        path.write_bytes(original)
    return result, _failure(result)


def _invalid_notebook(folder):
    """Why a submitted notebook cannot be read, or "" when every notebook can."""
    from reference_impl.course.execute import InvalidNotebook, read_notebook

    for path in sorted(Path(folder).glob("*.ipynb")):
        try:
            read_notebook(path)
        except InvalidNotebook as error:
            return str(error)
    return ""


def _load_config(root):
    from traitlets.config.loader import PyFileConfigLoader

    return PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
