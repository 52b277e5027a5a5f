"""The course's website: every chapter page executed and rendered as Markdown for mkdocs.

mkdocs loads this module as a hook (``hooks:`` in mkdocs.yml). For each chapter it executes the
site page (``page.ipynb``, see build.site_page) and renders it as a Markdown page with its figures
as PNG files: the prose as written, code as highlighted blocks, each exercise as its statement
(signature and docstring) with the solution folded away beneath it, printed output as text and
progress bars as their final line. The math renderer (MathJax 2, from jupyter-server-mathjax) is
published with the site, so formulas render with nothing fetched from another host.
"""

import ast
import base64
import html
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from reference_impl.course.build import ALT, SITE_EXERCISE
from reference_impl.course.chapters import CHAPTERS
from reference_impl.course.execute import ANSI, CELL_TIMEOUT, read_notebook

PAGE = "page.md"  # each chapter's rendered page, beside its notebooks
FIGURES = "figures"  # the page's figures, in a folder beside it
MATHJAX = "assets/mathjax"  # where the math renderer is published
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


class SiteError(RuntimeError):
    """A chapter page cannot be published as it is; the message says which cell and why."""


@dataclass
class Page:
    markdown: str
    figures: dict = field(default_factory=dict)  # file name -> PNG bytes


def execute_page(chapter):
    """The chapter's site page with the outputs of every cell (any error stops the build)."""
    nb = read_notebook(chapter.site_page)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(chapter.directory)}})
    try:
        client.execute(stderr=subprocess.DEVNULL)
    except CellExecutionError as error:
        raise SiteError(f"{chapter.folder}/{chapter.site_page.name} failed to run:\n{error}")
    return nb


def fenced(text, language=""):
    """A fenced code block that no run of backticks inside ``text`` can close."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text.rstrip()}\n{fence}"


def indented(text, by=4):
    return "\n".join((" " * by + line) if line.strip() else "" for line in text.split("\n"))


def terminal_text(text):
    """What a terminal would show: colour codes dropped, each line as its last carriage return
    left it (progress bars redraw themselves with \\r)."""
    lines = ANSI.sub("", text).split("\n")
    return "\n".join(line.rstrip("\r").split("\r")[-1] for line in lines)


def statement(source, name):
    """The exercise as the learner meets it: the function's signature and docstring."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            return "\n".join(source.split("\n")[first - 1:node.body[0].end_lineno])
    raise SiteError(f"the answer cell of `{name}` does not define it")


def progress_bar(output, widgets):
    """A tqdm progress bar's final line, from the widget state the notebook stored."""
    model_id = output.data[WIDGET_VIEW]["model_id"]
    box = widgets.get(model_id, {}).get("state", {})
    parts = []
    for child in box.get("children", []):
        state = widgets.get(child.removeprefix("IPY_MODEL_"), {}).get("state", {})
        if "max" in state and "value" in state:  # the bar itself
            filled = round(10 * state["value"] / state["max"]) if state["max"] else 10
            parts.append("|" + "█" * filled + " " * (10 - filled) + "|")
        elif state.get("value"):
            parts.append(html.unescape(re.sub(r"<[^>]+>", "", state["value"])))
    return "".join(parts).strip()


def alt_texts(cell, n_figures, where):
    alt = cell.metadata.get(ALT, [])
    alt = [alt] if isinstance(alt, str) else list(alt)
    if len(alt) != n_figures:
        raise SiteError(f"{where} draws {n_figures} figure(s) but has {len(alt)} alt text(s): "
                        f"give the cell alt=\"...\" (one figure) or alt=[\"...\", ...] in chapter.md")
    return alt


def render_outputs(cell, widgets, page, where):
    """The Markdown of a code cell's outputs; figures are added to ``page``."""
    blocks, text = [], []

    def flush():
        if "".join(text).strip():
            blocks.append(fenced(terminal_text("".join(text)), "text"))
        text.clear()

    images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
    alts = iter(alt_texts(cell, len(images), where))
    for output in cell.outputs:
        data = output.get("data", {})
        if output.output_type == "stream":
            text.append(output.text)
        elif "image/png" in data:
            flush()
            name = f"{len(page.figures) + 1:02d}.png"
            page.figures[name] = base64.b64decode(data["image/png"])
            alt = re.sub(r"([\[\]])", r"\\\1", next(alts))  # brackets would end the alt text
            blocks.append(f"![{alt}]({FIGURES}/{name})")
        elif WIDGET_VIEW in data:
            bar = progress_bar(output, widgets)
            if bar:
                text.append(bar + "\n")
        elif "text/plain" in data:
            text.append(data["text/plain"] + "\n")
    flush()
    return blocks


def render_exercise(cell):
    exercise = cell.metadata[SITE_EXERCISE]
    name, points = exercise["name"], exercise["points"]
    plural = "" if points == 1 else "s"
    return [f"**Exercise `{name}`** ({points:g} point{plural})",
            fenced(statement(cell.source, name), "python"),
            f'??? success "Solution: `{name}`"\n\n' + indented(fenced(cell.source, "python"))]


def render_page(chapter, nb):
    """The chapter's executed site page as Markdown, with a download link for its learner
    notebook under the title."""
    widgets = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    page = Page("")
    blocks = []
    for index, cell in enumerate(nb.cells):
        where = f"{chapter.folder}/{chapter.site_page.name}, cell {index + 1},"
        if cell.cell_type == "markdown":
            blocks.append(cell.source)
            if index == 0:
                notebook = chapter.learner_notebook.name
                blocks.append(f"[Download the exercises ({notebook})]({notebook})"
                              f"{{ .md-button download=\"{chapter.folder}-{notebook}\" }}")
            continue
        if any(output.output_type == "error" for output in cell.outputs):
            raise SiteError(f"{where} raised an error")
        if SITE_EXERCISE in cell.metadata:
            blocks.extend(render_exercise(cell))
        elif cell.source.strip():
            blocks.append(fenced(cell.source, "python"))
        blocks.extend(render_outputs(cell, widgets, page, where))
    page.markdown = "\n\n".join(blocks) + "\n"
    return page


def mathjax_files():
    """The math renderer's files, as {path under MATHJAX: file}: MathJax 2 with its TeX input,
    HTML-CSS output and STIX web fonts (translations and the unused SVG output are left out)."""
    import jupyter_server_mathjax

    root = Path(jupyter_server_mathjax.__file__).parent / "static"
    unused = ("localization/", "jax/output/SVG/")
    return {path.relative_to(root).as_posix(): path for path in sorted(root.rglob("*"))
            if path.is_file() and not path.relative_to(root).as_posix().startswith(unused)}


# --- mkdocs hooks -----------------------------------------------------------------------------

def on_files(files, config):
    """Replace every chapter's page notebook by its rendered page and figures, and publish the
    math renderer."""
    from mkdocs.structure.files import File

    # One kernel per chapter, as many at once as there are cores (each kernel uses one thread).
    with ThreadPoolExecutor(max_workers=min(len(CHAPTERS), os.cpu_count() or 1)) as pool:
        executed = list(pool.map(execute_page, CHAPTERS))
    for chapter, nb in zip(CHAPTERS, executed):
        notebook = files.get_file_from_path(f"{chapter.folder}/{chapter.site_page.name}")
        if notebook is not None:
            files.remove(notebook)
        page = render_page(chapter, nb)
        files.append(File.generated(config, f"{chapter.folder}/{PAGE}", content=page.markdown))
        for name, png in page.figures.items():
            files.append(File.generated(config, f"{chapter.folder}/{FIGURES}/{name}", content=png))
    for path, source in mathjax_files().items():
        files.append(File.generated(config, f"{MATHJAX}/{path}", abs_src_path=str(source)))
    return files
