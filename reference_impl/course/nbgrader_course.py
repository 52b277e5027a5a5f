"""An nbgrader course directory for the course, and class autograding that never stops.

``write_course`` lays out ``nbgrader_config.py`` and ``source/<chapter>/exercises.ipynb`` (the
solution notebook of each chapter) so that the usual nbgrader commands work on it.

``autograde`` runs nbgrader's own autograder for every student: one at a time in this process, or
in parallel on Dask's distributed scheduler (a local cluster, or an existing one). A submission
with a cell that kills the kernel is graded again with that cell defused, so it costs only its own
exercise. When nbgrader cannot grade a submission at all (it is not a valid notebook, its kernel
dies at every attempt, it hangs outside any cell nbgrader can interrupt, or grading it stops every
worker that tries), the student still gets a row: every check is recorded as zero in the
gradebook, with the reason as the comment on each check. A worker that dies mid-student (killed,
out of memory, machine lost) costs nothing: Dask hands the student to another worker.
"""

import contextlib
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import nbformat

from reference_impl.course.execute import CELL_TIMEOUT
from reference_impl.errors import CourseError

NOTEBOOK = "exercises"  # every assignment holds one notebook, named like the learner's copy
KERNEL_DIED = "the notebook killed its Python kernel (for example with os._exit or a crash)"
# The gradebook's database URL, when it is not gradebook.db (SQLite) in the course directory.
GRADEBOOK_VARIABLE = "MECHINTERP_GRADEBOOK"
DEFUSED = "defused"  # a scratch submitted-directory: a submission with its killing cells defused

CONFIG = '''\
import os

c = get_config()  # noqa: F821 (provided by nbgrader)

c.CourseDirectory.course_id = "mechinterp"
# Above the slowest cell of any solution notebook, so only a hanging cell is interrupted.
c.Execute.timeout = {timeout}
# A kernel that died is not retried: the submission would only kill it again.
c.Execute.execute_retries = 0
# The gradebook is gradebook.db (SQLite) in this folder, unless {variable} names another
# database: a class graded by many workers at once shares a PostgreSQL one, for example
# {variable}=postgresql://grader@db.example.org/mechinterp
if os.environ.get("{variable}"):
    c.CourseDirectory.db_url = os.environ["{variable}"]
'''


def write_course(directory, chapters, cell_timeout=CELL_TIMEOUT):
    """Write (or refresh) an nbgrader course directory with one assignment per chapter."""
    root = Path(directory).resolve()
    root.mkdir(parents=True, exist_ok=True)
    (root / "nbgrader_config.py").write_text(CONFIG.format(timeout=cell_timeout,
                                                           variable=GRADEBOOK_VARIABLE))
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


def _api(root, gradebook=None):
    """nbgrader's API on the course in ``root``, with its gradebook at ``gradebook`` (a database
    URL) if given, else where the course's nbgrader_config.py puts it."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    config = Config()
    config.merge(PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config())
    if gradebook:
        config.CourseDirectory.db_url = gradebook
    return NbGraderAPI(coursedir=CourseDirectory(config=config, root=str(root)), config=config)


def gradebook_url(directory, gradebook=None):
    """The database URL of the course's gradebook: ``gradebook`` if given, else the one its
    nbgrader_config.py sets (from $MECHINTERP_GRADEBOOK), else its gradebook.db."""
    return gradebook or _api(Path(directory).resolve()).coursedir.db_url


def _record_zero(api, assignment, student, reason):
    """Give every check of the submission zero points in the gradebook, with the reason."""
    from nbgrader.api import Gradebook

    with Gradebook(api.coursedir.db_url, api.coursedir.course_id) as gradebook:
        try:
            submission = gradebook.find_submission(assignment, student)
        except Exception:  # nbgrader did not get as far as recording the submission
            gradebook.update_or_create_student(student)  # nor, perhaps, the student
            submission = gradebook.add_submission(assignment, student)
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                grade.auto_score = 0
                grade.manual_score = None
            for comment in notebook.comments:
                comment.manual_comment = f"Not graded: {reason}."
        gradebook.db.commit()


def submitted_students(directory, assignment):
    submitted = Path(directory).resolve() / "submitted"
    students = sorted(p.name for p in submitted.glob("*") if (p / assignment).is_dir())
    if not students:
        raise CourseError(f"no student has handed in {assignment}: nothing in "
                          f"{submitted}/<student>/{assignment}/")
    return students


def autograde(directory, assignment, students=None, gradebook=None, workers=None,
              scheduler=None, progress=True):
    """Autograde every submission of ``assignment`` (or those of ``students``) into the
    gradebook (a database URL; default: the course's own); return one Outcome per student, in
    the order of ``students``.

    With neither ``workers`` nor ``scheduler`` the students are graded one at a time in this
    process. ``workers=N`` grades N at a time on a local Dask cluster; ``scheduler`` (an address
    such as tcp://10.0.0.5:8786) sends the work to an existing Dask cluster, whose workers must
    see the course directory at the same path and, on other machines, share a PostgreSQL
    gradebook."""
    if workers is not None and scheduler is not None:
        raise CourseError("give either --workers (a cluster on this machine) or --scheduler (an "
                          "existing cluster), not both")
    if workers is not None and workers < 1:
        raise CourseError(f"--workers must be at least 1, not {workers}")
    root = Path(directory).resolve()
    if not (root / "nbgrader_config.py").is_file():
        raise CourseError(f"{root} is not an nbgrader course directory (it has no "
                          f"nbgrader_config.py; write one with `mechinterp nbgrader-course`)")
    if students is None:
        students = submitted_students(root, assignment)
    url = gradebook_url(root, gradebook)
    if workers is None and scheduler is None:
        graded = (grade_student(root, assignment, student, url) for student in students)
        return list(_with_progress(graded, len(students), assignment, progress))
    from reference_impl.course import distributed

    return distributed.autograde(root, assignment, students, url, workers, scheduler,
                                 lambda outcomes: _with_progress(outcomes, len(students),
                                                                 assignment, progress))


def _with_progress(outcomes, total, assignment, shown):
    """Pass ``outcomes`` through, showing a bar of students graded, scored zero and left."""
    from tqdm.auto import tqdm

    zero = 0
    with tqdm(total=total, desc=f"grading {assignment}", unit="student", disable=not shown,
              bar_format="{desc}: {bar} {n_fmt}/{total_fmt} students done{postfix} "
                         "[{elapsed}<{remaining}]") as bar:
        for outcome in outcomes:
            zero += not outcome.success
            bar.set_postfix_str(f"{zero} scored zero, {total - bar.n - 1} left", refresh=False)
            bar.update()
            yield outcome


def grade_student(root, assignment, student, gradebook, environment=None):
    """Grade one student's submission with nbgrader into ``gradebook``; the unit of work a Dask
    worker runs. ``environment`` holds the MECHINTERP_ settings of the process that hands out
    the work (the check timeout, say), so that every worker grades as it would."""
    root = Path(root)
    if not (root / "nbgrader_config.py").is_file():
        raise CourseError(f"the worker on {socket.gethostname()} cannot see the course directory "
                          f"{root}: every worker needs it at the same path (a shared filesystem)")
    os.environ.update(environment or {})
    api = _api(root, gradebook)
    result = api.autograde(assignment, student, force=True, create=True)
    folder = root / "submitted" / student / assignment
    # nbgrader only says "see the above traceback" of a file that is not a notebook.
    invalid = _invalid_notebook(folder)
    reason = invalid or _failure(result)
    if reason == KERNEL_DIED:
        reason = _grade_past_kernel_deaths(api, assignment, student, folder)
    return grade_zero_unless_graded(api, assignment, student, reason)


def grade_zero_unless_graded(api, assignment, student, reason):
    """The student's Outcome; when nbgrader could not grade the submission (``reason`` says
    why), zero for every check in the gradebook."""
    if reason:
        _record_zero(api, assignment, student, reason)
        return Outcome(student, False, reason)
    return Outcome(student, True)


def _failure(result):
    """Why nbgrader could not grade a submission, or "" when it did."""
    log = result.get("log") or ""
    # nbgrader reports a submission it gave up on in its log (interrupted cells are logged as
    # errors too, but those submissions were graded).
    if result["success"] and "Removing failed assignment" not in log:
        return ""
    return _reason((result.get("error") or "") + "\n" + log)


def _grade_past_kernel_deaths(api, assignment, student, folder):
    """Grade again with the cells that kill the kernel defused (see execute.defuse), so that
    such a cell costs only its own exercise; returns why it still could not be graded, or "".
    The defused copy is graded from a scratch folder: the student's files are never changed,
    even when the worker grading them dies."""
    from reference_impl.course.execute import execute

    timeout = api.config.Execute.get("timeout", CELL_TIMEOUT)
    execution = execute(folder / f"{NOTEBOOK}.ipynb", cell_timeout=timeout)
    if execution.kernel_died or not execution.skipped:
        return KERNEL_DIED
    scratch = Path(api.coursedir.root) / DEFUSED / student / assignment
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(folder, scratch)
    nbformat.write(execution.source, scratch / f"{NOTEBOOK}.ipynb")
    submitted = api.coursedir.submitted_directory
    api.coursedir.submitted_directory = DEFUSED
    try:
        return _failure(api.autograde(assignment, student, force=True, create=True))
    finally:
        api.coursedir.submitted_directory = submitted
        shutil.rmtree(scratch.parent, ignore_errors=True)
        with contextlib.suppress(OSError):  # not empty: another worker is grading from it
            scratch.parent.parent.rmdir()


def _invalid_notebook(folder):
    """Why a submitted notebook cannot be read, or "" when every notebook can."""
    from reference_impl.course.execute import InvalidNotebook, read_notebook

    for path in sorted(Path(folder).glob("*.ipynb")):
        try:
            read_notebook(path)
        except InvalidNotebook as error:
            return str(error)
    return ""
