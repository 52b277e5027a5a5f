"""The chapters of the course and where each of their files lives."""

from dataclasses import dataclass, field
from pathlib import Path

import reference_impl
from reference_impl.errors import CourseError

# The course is used from a clone: the package sits at the top of the repository.
REPO_ROOT = Path(reference_impl.__file__).resolve().parent.parent


def repository_root(start):
    """The clone of the course that ``start`` lies in, or the installed package's clone."""
    for folder in (start.resolve(), *start.resolve().parents):
        if (folder / "chapters").is_dir() and (folder / "reference_impl").is_dir():
            return folder
    return REPO_ROOT


@dataclass(frozen=True)
class Chapter:
    number: str  # two digits, e.g. "01"
    topic: str  # the name of the chapter's package in reference_impl, e.g. "superposition"
    title: str
    root: Path = field(default=REPO_ROOT, compare=False)  # the repository the files live in

    @property
    def folder(self):
        return f"{self.number}_{self.topic}"

    @property
    def directory(self):
        return self.root / "chapters" / self.folder

    @property
    def source(self):
        """Prose and notebook layout, in jupytext Markdown; exercise code comes from the module."""
        return self.directory / "chapter.md"

    @property
    def learner_notebook(self):
        return self.directory / "exercises.ipynb"

    @property
    def site_page(self):
        return self.directory / "page.ipynb"

    @property
    def solution_notebook(self):
        return self.root / "solutions" / f"{self.folder}.ipynb"

    @property
    def package(self):
        """The chapter's package: ``solutions``, ``checks`` and ``plots``."""
        return f"reference_impl.{self.topic}"

    @property
    def solution_module(self):
        return f"{self.package}.solutions"

    @property
    def checks_module(self):
        return f"{self.package}.checks"


CHAPTERS = [
    Chapter("01", "superposition", "Toy models of superposition"),
    Chapter("02", "probing", "Probing"),
    Chapter("03", "induction_heads", "Induction heads"),
    Chapter("04", "ioi_circuit", "The IOI circuit"),
    Chapter("05", "sae", "Sparse autoencoders"),
    Chapter("06", "rome", "Locating and editing facts"),
]


class UnknownChapter(CourseError, LookupError):
    pass


def find_chapter(name):
    """A chapter named by its folder (``01_superposition``), number (``01`` or ``1``) or topic."""
    wanted = str(name).strip().lower().rstrip("/")
    for chapter in CHAPTERS:
        if wanted in (chapter.folder, chapter.number, chapter.number.lstrip("0"), chapter.topic):
            return chapter
    known = ", ".join(f"{c.folder}" for c in CHAPTERS)
    raise UnknownChapter(f"no chapter called {name!r}; the chapters are: {known}")
