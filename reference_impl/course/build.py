"""Generate every notebook of a chapter from its two sources.

The sources are the chapter's prose and layout (``chapters/NN_topic/chapter.md``, jupytext
Markdown) and its solution module (``reference_impl/<topic>/solutions.py``). In ``chapter.md``:

- Markdown is prose; a plain ``python`` code block is a code cell that every form of the
  notebook shows (imports, experiments, figures).
- ```` ```python exercise="name" points=2 ```` (empty) becomes the exercise: a solution cell with
  the function ``name`` from the solution module (its body is the answer region), followed by a
  graded check cell.
- ```` ```python given="Name Other" ```` (empty) becomes a code cell with the source of those
  module-level definitions, for code the learner is handed rather than asked to write.
- ```` ```python alt="..." ```` on a code block that draws a figure describes the figure for
  readers who cannot see it (the site's alt text); ``alt=["...", "..."]`` for several figures.

From these come three generated files: the solution notebook (nbgrader's source format), the
learner notebook (exactly nbgrader's release format) and the site page (solution code and
figures, without nbgrader markers or checks).
"""

import ast
import copy
import hashlib
import importlib
import zlib
from dataclasses import dataclass, field

import jupytext
import nbformat
from nbgrader import utils as nbgrader_utils
from nbgrader.preprocessors import (CheckCellMetadata, ClearHiddenTests, ClearMarkScheme,
                                    ClearOutput, ClearSolutions, ComputeChecksums,
                                    IncludeHeaderFooter, InstantiateTests, LockCells)

from reference_impl.course.chapters import REPO_ROOT

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
GIVEN_TAG = "given"  # marks code cells handed to the learner from the solution module
ALT = "alt"  # a code cell's alt text: one string per figure it draws (a string for one figure)
SITE_EXERCISE = "exercise"  # on the site page: the exercise (name, points) an answer cell solves
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


class SourceError(ValueError):
    """The chapter source refers to something the solution module does not define."""


@dataclass
class ExerciseSpec:
    name: str
    points: int
    hidden_seeds: tuple = field(default=())


def _definitions(module):
    """Map each module-level name to its (statement node, source lines)."""
    text = importlib.import_module(module).__loader__.get_source(module)
    tree = ast.parse(text)
    found = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names = [node.name]
        elif isinstance(node, ast.Assign):
            names = [n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)]
        else:
            continue
        for name in names:
            found[name] = node
    return found, text.splitlines()


def _statement_lines(node, lines):
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return lines[first - 1:node.end_lineno]


def given_source(module, names):
    definitions, lines = _definitions(module)
    blocks = []
    for name in names:
        if name not in definitions:
            raise SourceError(f"{module} defines no `{name}`")
        blocks.append("\n".join(_statement_lines(definitions[name], lines)))
    return "\n\n\n".join(blocks)


def solution_source(module, name):
    """The function ``name`` with its body (everything after the docstring) marked as the
    solution region."""
    definitions, lines = _definitions(module)
    node = definitions.get(name)
    if not isinstance(node, ast.FunctionDef):
        raise SourceError(f"{module} defines no function `{name}`")
    body = node.body
    if not (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)) or len(body) < 2:
        raise SourceError(f"`{module}.{name}` needs a docstring and a body")
    source = _statement_lines(node, lines)
    split = body[0].end_lineno - min([node.lineno] + [d.lineno for d in node.decorator_list]) + 1
    indent = " " * body[1].col_offset
    return "\n".join(source[:split] + [indent + BEGIN_SOLUTION] + source[split:]
                     + [indent + END_SOLUTION])


def hidden_seeds(chapter, exercise):
    """Two seeds per exercise that the learner's notebook never runs (stable across builds)."""
    base = zlib.crc32(f"{chapter.folder}/{exercise}".encode())
    return (base % 10_000 + 1000, (base // 10_000) % 10_000 + 1000)


def check_source(chapter, exercise):
    """A check cell. It looks the function up with ``globals().get`` so that, when the answer
    cell never ran to the end, the check says so rather than raising a NameError."""
    check = f"check_{exercise}"
    seeds = hidden_seeds(chapter, exercise)
    answer = f'globals().get("{exercise}")'
    return (f"from {chapter.checks_module} import {check}\n\n"
            f"{check}({answer})\n"
            f"{BEGIN_HIDDEN}\n{check}({answer}, seeds={seeds})\n{END_HIDDEN}")


def released_check_source(chapter, exercise):
    """The check cell as the learner's notebook has it (nbgrader removes the hidden tests)."""
    return check_source(chapter, exercise).split(BEGIN_HIDDEN)[0].rstrip("\n")


def _nbgrader_metadata(grade_id, *, grade, solution, locked, points=None):
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
            "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def _new_notebook(cells):
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.nbformat, nb.nbformat_minor = 4, 5
    nb.metadata = {"kernelspec": dict(KERNELSPEC),
                   "language_info": {"name": "python"}}
    return nb


def _stable_ids(nb):
    """Give every cell an id derived from its role or content, so rebuilding changes nothing."""
    taken = set()
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        base = grade_id or f"{cell.cell_type[:2]}-" + hashlib.sha1(
            cell.source.encode()).hexdigest()[:8]
        cell_id, n = base, 1
        while cell_id in taken:
            n += 1
            cell_id = f"{base}-{n}"
        taken.add(cell_id)
        cell.id = cell_id
    return nb


def exercises(chapter):
    """The exercises of a chapter, in notebook order, with their points."""
    return [ExerciseSpec(c.metadata["exercise"], int(c.metadata.get("points", 1)),
                         hidden_seeds(chapter, c.metadata["exercise"]))
            for c in _source_cells(chapter) if "exercise" in c.metadata]


def _source_cells(chapter):
    return jupytext.read(chapter.source, fmt="md").cells


def solution_notebook(chapter):
    """The solution notebook, in nbgrader's source format."""
    cells = []
    for cell in _source_cells(chapter):
        meta = cell.metadata
        if cell.cell_type == "markdown":
            cells.append(nbformat.v4.new_markdown_cell(cell.source))
        elif "exercise" in meta:
            name, points = meta["exercise"], int(meta.get("points", 1))
            cells.append(nbformat.v4.new_code_cell(
                solution_source(chapter.solution_module, name),
                metadata=_nbgrader_metadata(name, grade=False, solution=True, locked=False)))
            cells.append(nbformat.v4.new_code_cell(
                check_source(chapter, name),
                metadata=_nbgrader_metadata(f"check_{name}", grade=True, solution=False,
                                            locked=True, points=points)))
        elif "given" in meta:
            cells.append(nbformat.v4.new_code_cell(
                given_source(chapter.solution_module, meta["given"].split()),
                metadata={"tags": [GIVEN_TAG]}))
        else:
            # The alt text of the figures a cell draws travels with it to the site page.
            alt = {ALT: meta[ALT]} if ALT in meta else {}
            cells.append(nbformat.v4.new_code_cell(cell.source, metadata=alt))
    return _stable_ids(_new_notebook(cells))


# What nbgrader's generate_assignment runs, less SaveCells (which writes to its database).
RELEASE_PREPROCESSORS = [IncludeHeaderFooter, InstantiateTests, LockCells, ClearSolutions,
                         ClearOutput, CheckCellMetadata, ComputeChecksums, ClearHiddenTests,
                         ClearMarkScheme, ComputeChecksums, CheckCellMetadata]


def learner_notebook(solution_nb):
    """What nbgrader's generate_assignment makes of the solution notebook."""
    nb = copy.deepcopy(solution_nb)
    resources = {}
    for preprocessor in RELEASE_PREPROCESSORS:
        nb, resources = preprocessor().preprocess(nb, resources)
    return nb


def site_page(solution_nb):
    """Solution code and prose for the site, without nbgrader metadata, markers or checks.

    An answer cell keeps its exercise's name and points (the site folds its solution away), and
    a cell that draws figures keeps their alt text."""
    points = {c.metadata.nbgrader["grade_id"].removeprefix("check_"): c.metadata.nbgrader["points"]
              for c in solution_nb.cells if nbgrader_utils.is_grade(c)}
    cells = []
    for cell in solution_nb.cells:
        nbgrader = cell.metadata.get("nbgrader", {})
        if nbgrader.get("grade"):
            continue
        source = "\n".join(line for line in cell.source.split("\n")
                           if line.strip() not in (BEGIN_SOLUTION, END_SOLUTION))
        if cell.cell_type == "markdown":
            cells.append(nbformat.v4.new_markdown_cell(source))
            continue
        metadata = {key: cell.metadata[key] for key in (ALT, "tags") if key in cell.metadata}
        if nbgrader.get("solution"):
            name = nbgrader["grade_id"]
            metadata[SITE_EXERCISE] = {"name": name, "points": points[name]}
        cells.append(nbformat.v4.new_code_cell(source, metadata=metadata))
    return _stable_ids(_new_notebook(cells))


def notebook_text(nb):
    return nbformat.writes(nb) + "\n"


def generated_files(chapter):
    """Every generated file of a chapter, as {path: text}."""
    solutions = solution_notebook(chapter)
    return {chapter.solution_notebook: notebook_text(solutions),
            chapter.learner_notebook: notebook_text(learner_notebook(solutions)),
            chapter.site_page: notebook_text(site_page(solutions))}


def edited_answer_cells(path):
    """The answer cells of a learner notebook whose code differs from the released stub."""
    nb = nbformat.read(path, as_version=4)
    return [cell.metadata.nbgrader.get("grade_id", "?") for cell in nb.cells
            if nbgrader_utils.is_solution(cell) and "checksum" in cell.metadata.nbgrader
            and cell.metadata.nbgrader["checksum"] != nbgrader_utils.compute_checksum(cell)]


@dataclass
class BuildReport:
    written: list = field(default_factory=list)
    unchanged: list = field(default_factory=list)
    out_of_date: list = field(default_factory=list)
    refused: dict = field(default_factory=dict)  # path -> edited answer cells


def build(chapters, check=False, force=False):
    """Regenerate (or, with ``check``, only compare) every generated file of ``chapters``.

    A learner notebook whose answers were edited is never overwritten unless ``force``."""
    report = BuildReport()
    for chapter in chapters:
        learner = chapter.learner_notebook
        for path, text in generated_files(chapter).items():
            if path.exists() and path.read_text() == text:
                report.unchanged.append(path)
            elif check:
                report.out_of_date.append(path)
            elif path == learner and path.exists() and not force and edited_answer_cells(path):
                report.refused[path] = edited_answer_cells(path)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
                report.written.append(path)
    return report


def relative(path):
    try:
        return path.relative_to(REPO_ROOT)
    except ValueError:
        return path
