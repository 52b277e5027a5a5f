"""Grade a class of submissions of one chapter with real nbgrader, for the round-trip tests."""

import csv
import io
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook

from reference_impl.course.nbgrader_course import (GRADEBOOK_VARIABLE, Outcome, autograde,
                                                   gradebook_url, write_course)
from tests import notebooks


def run_nbgrader(course, *args, env=None):
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course,
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, **(env or {})})
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


# The time nbgrader's collect step would have written beside each submission: the same in every
# copy of a class, so that exports of the same class can be compared row for row.
HANDED_IN = "2026-12-01 09:00:00.000000 UTC"


def hand_in(directory, chapter, submissions, cell_timeout, absent=(), files=None, env=None):
    """Release ``chapter``, hand in ``submissions(solution, release) -> {student: notebook}``
    and ``files`` ({student: the text of their exercises.ipynb}, for files that are not
    notebooks), and add the ``absent`` students who handed in nothing. ``env`` is the
    environment nbgrader runs in (MECHINTERP_GRADEBOOK, say). Returns the course directory."""
    assignment = chapter.folder
    course = write_course(directory, [chapter], cell_timeout=cell_timeout)
    run_nbgrader(course, "generate_assignment", assignment, env=env)
    release = notebooks.read(course / "release" / assignment / "exercises.ipynb")
    solution = notebooks.read(course / "source" / assignment / "exercises.ipynb")
    texts = {student: nbformat.writes(nb) for student, nb in
             submissions(solution, release).items()}
    for student, text in {**texts, **(files or {})}.items():
        folder = course / "submitted" / student / assignment
        folder.mkdir(parents=True)
        (folder / "exercises.ipynb").write_text(text)
        (folder / "timestamp.txt").write_text(HANDED_IN)
    with Gradebook(gradebook_url_in(course, env)) as gradebook:
        for student in absent:
            gradebook.add_student(student)
    return course


def gradebook_url_in(course, env):
    """The course's gradebook URL as nbgrader sees it in the environment ``env``."""
    return (env or {}).get(GRADEBOOK_VARIABLE) or gradebook_url(course)


def submissions_per_student(course, env=None):
    """{student: how many submissions of the course's assignment the gradebook holds}."""
    with Gradebook(gradebook_url_in(course, env)) as gradebook:
        counts = {student.id: 0 for student in gradebook.students}
        for assignment in gradebook.assignments:
            for submission in assignment.submissions:
                counts[submission.student.id] += 1
    return counts


def export(course, env=None):
    """`nbgrader export`: the text of grades.csv and {student: score}."""
    run_nbgrader(course, "export", env=env)
    text = (course / "grades.csv").read_text()
    return text, {row["student_id"]: float(row["score"])
                  for row in csv.DictReader(io.StringIO(text))}


def grade_class(directory, chapter, submissions, cell_timeout, absent=(), files=None):
    """Hand in a class (see hand_in), autograde it one student at a time and export.

    Returns (course directory, {student: autograde outcome}, {student: exported score})."""
    course = hand_in(directory, chapter, submissions, cell_timeout, absent, files)
    outcomes = {o.student: o for o in autograde(course, chapter.folder, progress=False)}
    return course, outcomes, export(course)[1]


def check_output(course, assignment, student, exercise):
    """Everything the check cell of ``exercise`` printed or raised in a graded submission."""
    nb = notebooks.read(course / "autograded" / student / assignment / "exercises.ipynb")
    cell = notebooks.cell(nb, f"check_{exercise}")
    return "".join(str(o.get("evalue", "")) + o.get("text", "") for o in cell.outputs)


def start_autograde(course, assignment, *options, env=None):
    """`mechinterp autograde COURSE ASSIGNMENT [options]`, started in the background; what it
    prints goes to two files beside the course."""
    out, err = (open(_printed(course, kind), "w") for kind in ("out", "err"))
    return subprocess.Popen([sys.executable, "-m", "reference_impl.cli", "autograde", str(course),
                             assignment, *options], cwd=course, stdout=out, stderr=err, text=True,
                            env={**os.environ, **(env or {})})


def _printed(course, kind):
    return course.parent / f"{course.name}-autograde.{kind}"


def wait_for(processes, timeout):
    """Wait for every process of {name: process}; {name: seconds from now until it ended}."""
    started, ended = time.monotonic(), {}
    while len(ended) < len(processes):
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"still running after {timeout} s: {set(processes) - set(ended)}")
        for name, process in processes.items():
            if name not in ended and process.poll() is not None:
                ended[name] = time.monotonic() - started
        time.sleep(0.2)
    return ended


def outcomes_printed(course, process):
    """{student: Outcome} from what a finished `mechinterp autograde` process printed."""
    stdout, stderr = (_printed(course, kind).read_text() for kind in ("out", "err"))
    assert process.returncode == 0, stdout + stderr
    # A student's kernel may write to the terminal too (MKL's errors on a NaN model, say).
    lines = re.finditer(r"^(\S+): (?:graded|0 points: (.*))$", stdout, re.MULTILINE)
    return {line[1]: Outcome(line[1], line[2] is None, line[2] or "") for line in lines}


@dataclass
class GradedRun:
    """A class graded by `mechinterp autograde`: its course directory, {student: Outcome}, the
    text of `nbgrader export`'s grades.csv, {student: score}, the seconds the grading took (all
    of a test's runs started together), and {student: their submissions in the gradebook}."""
    course: Path
    outcomes: dict
    export: str
    scores: dict
    seconds: float
    submissions: dict
