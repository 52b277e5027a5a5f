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


def test_a_killed_kernel_still_gives_a_score(tmp_path, superposition):
    solution = notebooks.read(superposition.solution_notebook)
    killer = notebooks.cell(solution, "generate_batch").source.replace(
        '    """\n', '    """\n    import os\n    os._exit(3)\n', 1)
    path = _copy_with_answers(tmp_path, superposition, {"reconstruct": None,
                                                        "generate_batch": killer})
    result = mechinterp("check", str(path))
    assert result.returncode == 1
    assert "reconstruct                  1/1  pass" in result.stdout
    assert "the kernel died while running cell" in result.stdout
    assert "score: 1/12" in result.stdout


def test_a_missing_notebook_is_a_clear_error(tmp_path):
    result = mechinterp("check", str(tmp_path / "nope.ipynb"))
    assert result.returncode != 0 and "no notebook at" in result.stderr
