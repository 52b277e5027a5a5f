"""Every check of every chapter passes its reference on visible and hidden seeds, and rejects the
unfilled stub and each mistake of the chapter's catalogue (``tests/<topic>/mistakes.py``) for the
reason the mistake was written for: the one-sentence message contains the fragment the catalogue
gives (``MISTAKES = {exercise: {mistake: fragment}}``), so that a mistake rejected by accident (a
missing name, a shape error where the values were meant to be wrong) fails here.
What else each chapter's messages say is tested in ``tests/<topic>/test_checks.py``."""

import functools
import importlib

import pytest

from reference_impl.course.build import exercises, hidden_seeds
from reference_impl.course.chapters import CHAPTERS
from reference_impl.course.grading import CheckFailed
from tests import notebooks

MIN_MISTAKES = 4  # per exercise


def catalogue(chapter):
    return importlib.import_module(f"tests.{chapter.topic}.mistakes").MISTAKES


def check_of(chapter, name):
    return getattr(importlib.import_module(chapter.checks_module), f"check_{name}")


@functools.cache
def notebook(path):
    return notebooks.read(path)


EXERCISES = [pytest.param(chapter, name, id=f"{chapter.number}-{name}")
             for chapter in CHAPTERS for name in catalogue(chapter)]
MISTAKES = [pytest.param(chapter, name, mistake, fragment,
                         id=f"{chapter.number}-{name}-{mistake.__name__}")
            for chapter in CHAPTERS for name, mistakes in catalogue(chapter).items()
            for mistake, fragment in mistakes.items()]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.folder)
def test_every_exercise_has_a_check_and_a_catalogue_of_mistakes(chapter):
    names = [e.name for e in exercises(chapter)]
    assert names == list(catalogue(chapter))
    for name in names:
        assert callable(check_of(chapter, name))
        assert len(catalogue(chapter)[name]) >= MIN_MISTAKES, name
        for mistake, fragment in catalogue(chapter)[name].items():
            assert callable(mistake) and isinstance(fragment, str) and fragment.strip(), \
                (name, mistake, fragment)


@pytest.mark.parametrize("chapter,name", EXERCISES)
def test_reference_passes_visible_and_hidden_seeds(chapter, name, capfd):
    fn = notebooks.function_from(notebook(chapter.solution_notebook), name)
    check_of(chapter, name)(fn)
    check_of(chapter, name)(fn, seeds=hidden_seeds(chapter, name))
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("chapter,name", EXERCISES)
def test_unfilled_stub_fails(chapter, name):
    stub = notebooks.function_from(notebook(chapter.learner_notebook), name)
    with pytest.raises(CheckFailed, match="not implemented yet"):
        check_of(chapter, name)(stub)


@pytest.mark.parametrize("chapter,name,mistake,fragment", MISTAKES)
def test_mistake_fails_for_its_reason(chapter, name, mistake, fragment):
    try:
        check_of(chapter, name)(mistake)
    except CheckFailed as failure:
        message = str(failure)
    else:
        pytest.fail(f"check_{name} accepted {mistake.__name__}")
    assert fragment in message, f"expected {fragment!r} in the message: {message}"
    assert message.count("\n") == 0 and len(message) < 400, message
