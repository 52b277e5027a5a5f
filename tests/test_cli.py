"""`mechinterp check`, run as a learner would run it."""

import subprocess
import sys

import nbformat
import pytest

from reference_impl.course.chapters import UnknownChapter, find_chapter
from tests import notebooks


def mechinterp(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "reference_impl.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("name", ["01_superposition", "01", "1", "superposition",
                                  "01_superposition/"])
def test_a_chapter_has_several_names(name):
    assert find_chapter(name).folder == "01_superposition"


def test_an_unknown_chapter_lists_the_chapters():
    with pytest.raises(UnknownChapter, match="the chapters are: 01_superposition"):
        find_chapter("attention")
    result = mechinterp("check", "attention")
    assert result.returncode == 2 and "the chapters are" in result.stderr


def test_the_untouched_learner_notebook_scores_zero():
    result = mechinterp("check", "superposition")
    assert result.returncode == 1, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[1].split() == ["exercise", "points", "result", "message"]
    rows = lines[2:-1]
    assert len(rows) == 8
    assert all(" FAIL " in row and "not implemented yet" in row for row in rows)
    assert rows[0].split()[:3] == ["reconstruct", "0/1", "FAIL"]
    assert lines[-1] == "score: 0/12"


def _copy_with_answers(tmp_path, superposition, answers):
    solution = notebooks.read(superposition.solution_notebook)
    nb = notebooks.read(superposition.learner_notebook)
    for name, source in answers.items():
        notebooks.cell(nb, name).source = source if source else notebooks.cell(solution,
                                                                               name).source
    path = tmp_path / "my copy.ipynb"
    nbformat.write(nb, path)
    return path


def test_a_path_grades_any_copy(tmp_path, superposition):
    path = _copy_with_answers(tmp_path, superposition, {"reconstruct": None, "generate_batch": None,
                                                        "classify_phase": None})
    result = mechinterp("check", str(path))
    assert result.returncode == 1, result.stderr
    assert "score: 4/12" in result.stdout
    assert "reconstruct                  1/1  pass" in result.stdout


def test_a_cell_that_kills_the_kernel_costs_only_its_exercise(tmp_path, superposition):
    """The killing cell is skipped and the notebook run again: the exercises before and after
    it keep their points."""
    solution = notebooks.read(superposition.solution_notebook)
    killer = notebooks.cell(solution, "generate_batch").source.replace(
        '    """\n', '    """\n    import os\n    os._exit(3)\n', 1)
    path = _copy_with_answers(tmp_path, superposition, {"reconstruct": None,
                                                        "generate_batch": killer,
                                                        "classify_phase": None})
    result = mechinterp("check", str(path))
    assert result.returncode == 1
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[2:-2]}
    assert "1/1  pass" in rows["reconstruct"] and "1/1  pass" in rows["classify_phase"]
    assert "`generate_batch` stopped the Python kernel (os._exit, a crash in compiled code or " \
           "running out of memory) when it was checked, so it was not graded" in rows[
               "generate_batch"]
    assert "score: 2/12" in result.stdout
    assert "; it was skipped and the notebook run again." in result.stdout.splitlines()[-1]


def test_a_missing_notebook_is_a_clear_error(tmp_path):
    result = mechinterp("check", str(tmp_path / "nope.ipynb"))
    assert result.returncode != 0 and "no notebook at" in result.stderr


def _short_copy(path, superposition, answers, last_cell, drop=(), edit=None):
    """The learner notebook up to the cell ``last_cell``, with ``answers`` (grade_id -> source,
    None for the solution's) filled in, the cells ``drop`` deleted and ``edit`` (grade_id ->
    source) written over; the rest of the chapter is left out to keep the run short."""
    solution = notebooks.read(superposition.solution_notebook)
    nb = notebooks.read(superposition.learner_notebook)
    for name, source in answers.items():
        notebooks.cell(nb, name).source = source or notebooks.cell(solution, name).source
    for grade_id, source in (edit or {}).items():
        notebooks.cell(nb, grade_id).source = source
    end = nb.cells.index(notebooks.cell(nb, last_cell)) + 1
    nb.cells = [c for c in nb.cells[:end]
                if c.metadata.get("nbgrader", {}).get("grade_id") not in drop]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_check_cells_are_graded_as_released_and_every_exercise_counts(tmp_path, superposition):
    """An edited check cell is run with its original source, a deleted one is put back, an
    exercise missing from the notebook scores zero, and an answer cell that never ran (a syntax
    error) is named as such, not as a NameError."""
    path = _short_copy(tmp_path / "copy.ipynb", superposition,
                       {"reconstruct": None, "generate_batch": None,
                        "importance_weighted_loss": "def importance_weighted_loss(x, x_hat, i):\n"
                                                    "    return (x - x_hat) ** 2 *\n"},
                       last_cell="check_importance_weighted_loss",
                       drop=("check_generate_batch",),
                       edit={"check_reconstruct": "print('all good')"})
    result = mechinterp("check", str(path))
    assert result.returncode == 1, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[2:-1]}
    assert len(rows) == 8
    assert "1/1  pass    (its check cell was edited: graded with the original)" in rows["reconstruct"]
    assert "2/2  pass    (its check cell was missing: graded with the original)" in rows[
        "generate_batch"]
    assert "`importance_weighted_loss` is not defined: its answer cell did not run to the end" \
        in rows["importance_weighted_loss"]
    assert "0/2  FAIL" in rows["feature_dimensionality"]
    assert result.stdout.strip().endswith("score: 3/12")


def test_a_broken_notebook_file_says_where(tmp_path):
    path = tmp_path / "exercises.ipynb"
    path.write_text('{"cells": [{"cell_type": "code",\n "source": "x",, }]}')
    result = mechinterp("check", str(path))
    assert result.returncode != 0
    assert "exercises.ipynb is not a valid notebook: it is not valid JSON (Expecting property " \
           "name enclosed in double quotes: line 2 column 16" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_chapter_is_taken_from_the_clone_the_command_runs_in(tmp_path, superposition):
    clone = tmp_path / "second clone"
    (clone / "reference_impl").mkdir(parents=True)
    _short_copy(clone / "chapters" / superposition.folder / "exercises.ipynb", superposition,
                {"reconstruct": None}, last_cell="check_reconstruct")
    result = mechinterp("check", "superposition", cwd=clone / "chapters")
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith(f"running {superposition.folder}/exercises.ipynb ...")
    assert "reconstruct                  1/1  pass" in result.stdout
    assert "score: 1/12" in result.stdout
