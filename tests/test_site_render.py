"""How the site renders a chapter page, on small notebooks (nothing is executed or built; the
built site is tested in test_site.py)."""

import nbformat
import pytest

from reference_impl.course.build import ALT, SITE_EXERCISE
from reference_impl.course.site import (SiteError, fenced, progress_bar, render_page, statement,
                                        terminal_text)


def _page(*cells, widgets=None):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# A chapter"), *cells])
    if widgets:
        nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": widgets}}
    return nb


def _figure_cell(alt=None, n=1):
    outputs = [nbformat.v4.new_output("display_data", {"image/png": "iVBORw0KGgo=",
                                                       "text/plain": "<Figure>"})] * n
    return nbformat.v4.new_code_cell("plot();", outputs=outputs,
                                     metadata={} if alt is None else {ALT: alt})


def test_a_figure_needs_alt_text_for_each_image(superposition):
    with pytest.raises(SiteError, match="draws 1 figure.* 0 alt text"):
        render_page(superposition, _page(_figure_cell()))
    with pytest.raises(SiteError, match="draws 2 figure.* 1 alt text"):
        render_page(superposition, _page(_figure_cell("one", n=2)))
    page = render_page(superposition, _page(_figure_cell(["a [BOS] token", "the second"], n=2)))
    assert r"![a \[BOS\] token](figures/01.png)" in page.markdown
    assert "![the second](figures/02.png)" in page.markdown
    assert set(page.figures) == {"01.png", "02.png"}


def test_a_cell_that_raised_stops_the_build(superposition):
    cell = nbformat.v4.new_code_cell("1 / 0", outputs=[nbformat.v4.new_output(
        "error", ename="ZeroDivisionError", evalue="division by zero", traceback=[])])
    with pytest.raises(SiteError, match="page.ipynb, cell 2, raised"):
        render_page(superposition, _page(cell))


def test_an_exercise_shows_its_statement_and_folds_its_solution(superposition):
    source = 'def double(x):\n    """Twice ``x``."""\n    y = x + x\n    return y'
    cell = nbformat.v4.new_code_cell(source, metadata={SITE_EXERCISE: {"name": "double",
                                                                       "points": 2}})
    markdown = render_page(superposition, _page(cell)).markdown
    shown, folded = markdown.split('??? success "Solution: `double`"')
    assert "**Exercise `double`** (2 points)" in shown
    assert 'def double(x):\n    """Twice ``x``."""\n```' in shown and "return y" not in shown
    assert "\n    def double(x):" in folded and "\n        return y" in folded
    assert statement(source, "double") == 'def double(x):\n    """Twice ``x``."""'


def test_the_download_link_is_under_the_title(superposition):
    markdown = render_page(superposition, _page()).markdown
    assert markdown.startswith("# A chapter\n\n[Download the exercises (exercises.ipynb)]"
                               "(exercises.ipynb){ .md-button download=")


def test_printed_text_is_shown_as_a_terminal_would_show_it():
    assert terminal_text("\x1b[31mred\x1b[0m\n 10%|#\r100%|##\n") == "red\n100%|##\n"
    assert fenced("a ``` b", "text") == "````text\na ``` b\n````"


def test_a_progress_bar_is_shown_as_its_final_line(superposition):
    widgets = {"box": {"state": {"children": ["IPY_MODEL_l", "IPY_MODEL_bar", "IPY_MODEL_r"]}},
               "l": {"state": {"value": "training:\u2007100%"}},
               "bar": {"state": {"value": 300.0, "max": 300.0}},
               "r": {"state": {"value": "\u2007300/300\u2007[00:02&lt;00:00]"}}}
    output = nbformat.v4.new_output("display_data", {
        "application/vnd.jupyter.widget-view+json": {"model_id": "box"},
        "text/plain": "training:   0%|          | 0/300"})
    assert progress_bar(output, widgets) == "training:\u2007100%|██████████|\u2007300/300\u2007" \
                                            "[00:02<00:00]"
    markdown = render_page(superposition, _page(nbformat.v4.new_code_cell(
        "train()", outputs=[output]), widgets=widgets)).markdown
    assert "300/300" in markdown and "0/300" not in markdown.replace("300/300", "")
