"""Generated notebooks come from their sources, stay in sync, and never eat a learner's work."""

import dataclasses
import shutil

import nbformat
import pytest

from reference_impl import cli
from reference_impl.course import build as course_build
from reference_impl.course import chapters as course_chapters
from reference_impl.course.build import (BEGIN_HIDDEN, BEGIN_SOLUTION, SourceError, build,
                                         generated_files)
from tests import notebooks


@pytest.fixture
def scratch_chapter(tmp_path, superposition, monkeypatch):
    """Chapter 01 with its source copied into a scratch repository, built there."""
    chapter = dataclasses.replace(superposition, root=tmp_path)
    chapter.directory.mkdir(parents=True)
    shutil.copyfile(superposition.source, chapter.source)
    build([chapter])
    monkeypatch.setattr(course_chapters, "CHAPTERS", [chapter])
    return chapter


def test_committed_files_are_up_to_date(capsys):
    assert cli.main(["build", "--check"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_rebuilding_changes_nothing(superposition):
    assert generated_files(superposition) == generated_files(superposition)


def test_committed_notebooks_have_no_outputs_and_stable_ids(superposition):
    for path in generated_files(superposition):
        nb = notebooks.read(path)
        ids = [c.id for c in nb.cells]
        assert len(set(ids)) == len(ids)
        for c in nb.cells:
            if c.cell_type == "code":
                assert c.outputs == [] and c.execution_count is None


def test_the_three_forms(superposition):
    solution = notebooks.read(superposition.solution_notebook)
    learner = notebooks.read(superposition.learner_notebook)
    page = notebooks.read(superposition.site_page)
    answers = notebooks.answer_cells(solution)
    assert len(answers) == 8 and all(BEGIN_SOLUTION in c.source for c in answers)
    assert all(BEGIN_HIDDEN in notebooks.cell(solution, "check_" + c.metadata.nbgrader.grade_id)
               .source for c in answers)
    for stub in notebooks.answer_cells(learner):
        assert "raise NotImplementedError()" in stub.source and BEGIN_SOLUTION not in stub.source
    assert not any(BEGIN_HIDDEN in c.source for c in learner.cells)
    page_text = "\n".join(c.source for c in page.cells)
    for marker in (BEGIN_SOLUTION, "END SOLUTION", "HIDDEN TESTS", "check_", "nbgrader"):
        assert marker not in page_text and marker not in str([c.metadata for c in page.cells])
    # The page shows the solution code itself.
    assert "def reconstruct(W, b, x, relu=True):" in page_text
    assert 'hidden = torch.einsum("ihf,bif->bih", W, x)' in page_text


def test_check_names_every_out_of_date_file(scratch_chapter, capsys):
    with open(scratch_chapter.source, "a") as f:
        f.write("\nA new closing paragraph.\n")
    assert cli.main(["build", "--check"]) == 1
    out = capsys.readouterr().out
    for path in (scratch_chapter.solution_notebook, scratch_chapter.learner_notebook,
                 scratch_chapter.site_page):
        assert f"out of date: {path}" in out
    assert cli.main(["build"]) == 0
    assert cli.main(["build", "--check"]) == 0


def test_build_refuses_to_overwrite_edited_answers(scratch_chapter, capsys):
    learner = scratch_chapter.learner_notebook
    nb = notebooks.read(learner)
    notebooks.cell(nb, "reconstruct").source += "\n# my work in progress"
    nbformat.write(nb, learner)
    edited = learner.read_text()
    with open(scratch_chapter.source, "a") as f:
        f.write("\nA new closing paragraph.\n")
    assert cli.main(["build"]) == 1
    assert "refused to overwrite" in capsys.readouterr().out
    assert learner.read_text() == edited
    assert "A new closing paragraph." in scratch_chapter.solution_notebook.read_text()
    assert cli.main(["build", "--force"]) == 0
    assert "my work in progress" not in learner.read_text()


def test_an_exercise_must_exist_in_the_solution_module(scratch_chapter):
    with open(scratch_chapter.source, "a") as f:
        f.write('\n```python exercise="no_such_function"\n```\n')
    with pytest.raises(SourceError, match="no function `no_such_function`"):
        build([scratch_chapter])


def test_hidden_seeds_differ_from_the_visible_ones(superposition):
    from reference_impl.superposition.checks import VISIBLE_SEEDS

    for exercise in course_build.exercises(superposition):
        assert not set(exercise.hidden_seeds) & set(VISIBLE_SEEDS)
