"""Grade a class of submissions of one chapter with real nbgrader, for the round-trip tests."""

import csv
import subprocess
import sys

import nbformat
from nbgrader.api import Gradebook

from reference_impl.course.nbgrader_course import autograde, write_course
from tests import notebooks


def run_nbgrader(course, *args):
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def with_answers(nb, answers):
    """A copy of ``nb`` whose answer cells ``answers`` (grade_id -> source) are replaced."""
    nb = nbformat.from_dict(nb)
    for grade_id, source in answers.items():
        notebooks.cell(nb, grade_id).source = source
    return nb


def body_prefixed(source, lines):
    """The function in ``source`` with ``lines`` run first thing in its body."""
    head, _, rest = source.partition('"""')
    docstring, _, body = rest.partition('"""')
    return head + '"""' + docstring + '"""\n' + "".join(f"    {line}\n" for line in lines) + body


def answers_of(nb):
    """grade_id -> source of every answer cell."""
    return {c.metadata.nbgrader["grade_id"]: c.source for c in notebooks.answer_cells(nb)}


def core_submissions(solution, release):
    """The submission every chapter's round trip grades: bob hands in the untouched release. (No
    student hands in the solution itself: its full marks are checked on the solution notebook's
    own run, in each chapter's test_chapter.py.)"""
    return {"bob": release}


def grade_class(directory, chapter, submissions, cell_timeout, absent=(), files=None):
    """Release ``chapter``, hand in ``submissions(solution, release) -> {student: notebook}``
    and ``files`` ({student: the text of their exercises.ipynb}, for files that are not
    notebooks), add the ``absent`` students who handed in nothing, autograde and export.

    Returns (course directory, {student: autograde outcome}, {student: exported score})."""
    assignment = chapter.folder
    course = write_course(directory, [chapter], cell_timeout=cell_timeout)
    run_nbgrader(course, "generate_assignment", assignment)
    release = notebooks.read(course / "release" / assignment / "exercises.ipynb")
    solution = notebooks.read(course / "source" / assignment / "exercises.ipynb")
    for student, nb in submissions(solution, release).items():
        target = course / "submitted" / student / assignment / "exercises.ipynb"
        target.parent.mkdir(parents=True)
        nbformat.write(nb, target)
    for student, text in (files or {}).items():
        target = course / "submitted" / student / assignment / "exercises.ipynb"
        target.parent.mkdir(parents=True)
        target.write_text(text)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for student in absent:
            gradebook.add_student(student)
    outcomes = {o.student: o for o in autograde(course, assignment)}
    run_nbgrader(course, "export")
    with open(course / "grades.csv") as f:
        scores = {row["student_id"]: float(row["score"]) for row in csv.DictReader(f)}
    return course, outcomes, scores


def check_output(course, assignment, student, exercise):
    """Everything the check cell of ``exercise`` printed or raised in a graded submission."""
    nb = notebooks.read(course / "autograded" / student / assignment / "exercises.ipynb")
    cell = notebooks.cell(nb, f"check_{exercise}")
    return "".join(str(o.get("evalue", "")) + o.get("text", "") for o in cell.outputs)
