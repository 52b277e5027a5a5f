"""The chapter 03 round trip through real nbgrader, with a small class: generate_assignment,
autograde a full, an empty, a half-done and a crashing submission, export grades, check scores."""

import csv
import subprocess
import sys

import nbformat
import pytest

from reference_impl.course.build import exercises
from reference_impl.course.nbgrader_course import autograde, write_course
from tests import notebooks

ASSIGNMENT = "03_induction_heads"
HALF = ["detector_scores", "copy_losses", "logit_lens", "ablation_patches", "ov_circuit",
        "positional_qk_circuit"]
RAISES = "direct_logit_attribution"


def _nbgrader(course, *args):
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _with_answers(nb, answers):
    nb = nbformat.from_dict(nb)
    for grade_id, source in answers.items():
        notebooks.cell(nb, grade_id).source = source
    return nb


def _body_prefixed(source, lines):
    head, _, rest = source.partition('"""')
    docstring, _, body = rest.partition('"""')
    return head + '"""' + docstring + '"""\n' + "".join(f"    {line}\n" for line in lines) + body


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory, induction_heads):
    course = write_course(tmp_path_factory.mktemp("course"), [induction_heads], cell_timeout=60)
    _nbgrader(course, "generate_assignment", ASSIGNMENT)
    release = notebooks.read(course / "release" / ASSIGNMENT / "exercises.ipynb")
    solution = notebooks.read(course / "source" / ASSIGNMENT / "exercises.ipynb")
    answer = {c.metadata.nbgrader["grade_id"]: c.source for c in notebooks.answer_cells(solution)}
    submissions = {
        "alice": solution,
        "bob": release,
        "carol": _with_answers(release, {name: answer[name] for name in HALF}),
        "dave": _with_answers(solution, {RAISES: _body_prefixed(
            answer[RAISES], ['raise ValueError("I gave up")'])}),
    }
    for student, nb in submissions.items():
        target = course / "submitted" / student / ASSIGNMENT / "exercises.ipynb"
        target.parent.mkdir(parents=True)
        nbformat.write(nb, target)
    outcomes = {o.student: o for o in autograde(course, ASSIGNMENT)}
    _nbgrader(course, "export")
    with open(course / "grades.csv") as f:
        scores = {row["student_id"]: float(row["score"]) for row in csv.DictReader(f)}
    return course, outcomes, scores


@pytest.fixture(scope="module")
def points(induction_heads):
    return {e.name: e.points for e in exercises(induction_heads)}


def test_release_is_the_learner_notebook(graded_class, induction_heads):
    course, _, _ = graded_class
    released = (course / "release" / ASSIGNMENT / "exercises.ipynb").read_text()
    assert released == induction_heads.learner_notebook.read_text()


def test_scores(graded_class, points):
    course, outcomes, scores = graded_class
    total = sum(points.values())
    assert all(o.success for o in outcomes.values())
    assert scores["alice"] == total
    assert scores["bob"] == 0
    # Half the exercises done, the others left as stubs: the later cells that use the missing
    # functions fail, and each exercise is still graded on its own.
    assert scores["carol"] == sum(points[name] for name in HALF)
    assert scores["dave"] == total - points[RAISES]
    nb = notebooks.read(course / "autograded" / "dave" / ASSIGNMENT / "exercises.ipynb")
    output = "".join(str(o.get("evalue", "")) for o in
                     notebooks.cell(nb, f"check_{RAISES}").outputs)
    assert "raised ValueError" in output
