"""The site: built with `mkdocs build --strict` (every chapter page executed), then read in a real
browser, page by page, at a desktop and a phone width.

A step of its own (`pytest -m site`, run by CI after the default suite): the build executes every
chapter again, which the default suite's time budget has no room for."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from reference_impl.course.build import ALT, exercises
from reference_impl.course.chapters import CHAPTERS, REPO_ROOT
from tests.browser import PageVisit, chromium, serve

# `mkdocs build` writes to site/ beside mkdocs.yml; the screenshots go in it for people to look at.
SITE = REPO_ROOT / "site"
SCREENSHOTS = SITE / "screenshots"
DESKTOP, PHONE = (1280, 900), (390, 844)


def mkdocs_build(config, site_dir, cwd=REPO_ROOT):
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config),
                           "-d", str(site_dir)], cwd=cwd, capture_output=True, text=True,
                          timeout=1200, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


def nav_pages():
    """(name, URL path) of every page in the navigation, in order."""
    config = yaml.safe_load((REPO_ROOT / "mkdocs.yml").read_text())
    pages = []
    for entry in config["nav"]:
        (title, source), = entry.items()
        path = "" if source == "index.md" else source.removesuffix(".md").removesuffix("index") + "/"
        pages.append((source.split("/")[0].removesuffix(".md"), path))
    return pages


pytestmark = pytest.mark.site

PAGES = nav_pages()
CHAPTER_OF = {f"{chapter.folder}/page/": chapter for chapter in CHAPTERS}


@pytest.fixture(scope="module")
def site():
    result = mkdocs_build(REPO_ROOT / "mkdocs.yml", SITE)
    assert result.returncode == 0, result.stderr[-3000:]
    SCREENSHOTS.mkdir()
    return SITE


def test_home_page_lists_every_chapter(site):
    home = (site / "index.html").read_text()
    assert "How to start" in home
    for chapter in CHAPTERS:
        assert f'href="{chapter.folder}/page/"' in home
        assert chapter.title in home


def test_every_chapter_is_in_the_navigation():
    assert [path for _, path in PAGES if path in CHAPTER_OF] == list(CHAPTER_OF)


# A piece of each chapter's math, as the page's source carries it.
MATH = {"01_superposition": r"\mathrm{ReLU}", "02_probing": r"\mathrm{IG}_i(x)",
        "03_induction_heads": r"\sum_i \lambda_i", "04_ioi_circuit": r"m_\text{clean}",
        "05_sae": r"\lambda \sum_i f_i",
        "06_rome": r"(C^{-1} k_*)^\top k_*"}


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.folder)
def test_chapter_page_has_prose_math_code_and_figures(site, chapter):
    html = (site / chapter.folder / "page" / "index.html").read_text()
    first_exercise = exercises(chapter)[0].name
    assert chapter.title in html
    figures = re.findall(r'<img alt="([^"]+)" src="\.\./figures/(\d+\.png)"', html)
    # Every figure the page's cells draw (the build checks that each has its alt text).
    alts = [cell.metadata[ALT] for cell in nbformat.read(chapter.site_page, as_version=4).cells
            if ALT in cell.metadata]
    assert len(figures) == sum(1 if isinstance(alt, str) else len(alt) for alt in alts) >= 5
    assert all((site / chapter.folder / "figures" / name).stat().st_size > 0
               for _, name in figures)
    assert 'class="arithmatex"' in html and MATH[chapter.folder] in html
    assert f"def {first_exercise}(" in re.sub(r"<[^>]+>", "", html)  # code is highlighted
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS", f"check_{first_exercise}",
                   "raise NotImplementedError()", "Traceback", "cdn.", "googleapis"):
        assert marker not in html, marker
    # The learner notebook is published beside the page, for download, and the page notebook
    # (replaced by the page itself) is not.
    assert (site / chapter.folder / "exercises.ipynb").read_bytes() == \
        chapter.learner_notebook.read_bytes()
    assert not (site / chapter.folder / "page.ipynb").exists()


def test_a_broken_link_fails_the_build(tmp_path):
    config = yaml.safe_load((REPO_ROOT / "mkdocs.yml").read_text())
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\nSee [chapter 9](09_missing/page.md).\n")
    config.update(docs_dir=str(docs), nav=[{"Home": "index.md"}], plugins=["search"], hooks=[],
                  extra_javascript=[], extra_css=[])
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    result = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site", cwd=tmp_path)
    assert result.returncode != 0
    assert "09_missing/page.md" in result.stderr


# --- In a real browser ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    try:
        manager = chromium()
        browser = manager.__enter__()
    except RuntimeError as error:
        # On a learner's machine a missing browser skips these tests; CI must have one.
        (pytest.fail if os.environ.get("CI") else pytest.skip)(str(error))
    yield browser
    manager.__exit__(None, None, None)


@pytest.fixture(scope="module")
def served(site):
    with serve(site) as base:
        yield base


@pytest.fixture
def visit(browser, served):
    visits = []

    def open_page(path, size, **options):
        visits.append(PageVisit(browser, served + path, *size, **options))
        return visits[-1]

    yield open_page
    for page_visit in visits:
        page_visit.close()


def assert_loaded_cleanly(visit, base):
    elsewhere = [url for url in visit.requests if not url.startswith((base, "data:", "blob:"))]
    assert not elsewhere, f"requests to other hosts: {elsewhere}"
    assert not visit.failures, f"failed requests: {visit.failures}"
    assert not visit.errors, f"console errors: {visit.errors}"


# The page's text outside code and rendered math; TeX left in it was never typeset.
VISIBLE_TEXT = """() => {
    const article = document.querySelector("article").cloneNode(true);
    article.querySelectorAll("pre, code, script, .MathJax, .MathJax_Display, .MathJax_Preview, "
                             + ".MJX_Assistive_MathML").forEach(element => element.remove());
    return article.textContent;
}"""
RAW_TEX = re.compile(r"\$[^$\n]+\$|\\\(|\\\[|\\[a-zA-Z]+\{")

OVERFLOWING_CODE = """() => Array.from(document.querySelectorAll("pre > code"))
    .filter(code => code.checkVisibility() && code.scrollWidth > code.clientWidth + 1)
    .map(code => code.textContent.split("\\n").find(line => line.length > 60) || "")"""

SOLUTION = """name => {
    const summary = Array.from(document.querySelectorAll('details > summary'))
        .find(s => s.textContent.trim() === 'Solution: ' + name);
    const statement = Array.from(document.querySelectorAll('pre > code'))
        .find(code => code.textContent.replace(/^(@[^\\n]*\\n)+/, '')  // decorators first
                            .startsWith('def ' + name + '('));
    return {folded: !!summary && !summary.parentElement.open
                    && !summary.parentElement.querySelector('pre').checkVisibility(),
            statement: !!statement && statement.checkVisibility()};
}"""


def assert_fits(page):
    overflowing = page.evaluate(OVERFLOWING_CODE)
    assert not overflowing, f"code runs past the edge of its block: {overflowing}"
    assert page.evaluate("() => document.scrollingElement.scrollWidth <= window.innerWidth"), \
        "the page scrolls sideways"


def check_desktop_page(page_visit, base, path):
    """Everything a reader should get from a page at 1280 px; an AssertionError says what not."""
    page = page_visit.page
    assert_loaded_cleanly(page_visit, base)

    # Math: every formula typeset by the renderer, no TeX left as text.
    formulas = page.evaluate("() => Array.from(document.querySelectorAll('.arithmatex'))"
                             ".map(math => !!math.querySelector('.MathJax, .MathJax_Display'))")
    assert all(formulas), f"{formulas.count(False)} of {len(formulas)} formulas not typeset"
    raw = RAW_TEX.findall(page.evaluate(VISIBLE_TEXT))
    assert not raw, f"TeX shown as text: {raw[:5]}"

    # Figures: loaded, each with a description of what it shows.
    images = page.evaluate("() => Array.from(document.querySelectorAll('article img'))"
                           ".map(img => [img.complete && img.naturalWidth, img.alt])")
    assert all(width > 0 for width, _ in images), f"figures that did not load: {images}"
    assert all(len(alt) >= 60 and "No description" not in alt for _, alt in images), \
        f"figures without a real alt text: {images}"

    assert_fits(page)

    # Previous and next pages in the footer (the first page has no previous one).
    footer = page.evaluate("() => [!!document.querySelector('.md-footer__link--prev'), "
                           "!!document.querySelector('.md-footer__link--next')]")
    assert footer == [path != PAGES[0][1], path != PAGES[-1][1]], f"footer links: {footer}"

    chapter = CHAPTER_OF.get(path)
    if chapter is None:
        return
    assert formulas and len(images) >= 5, "a chapter page without math or figures"
    # Every exercise: its statement in view, its solution folded away.
    for exercise in exercises(chapter):
        state = page.evaluate(SOLUTION, exercise.name)
        assert state == {"folded": True, "statement": True}, \
            f"exercise {exercise.name}: {state} (the solution must be folded under the statement)"
    # The learner notebook downloads from the link under the title.
    link = page.locator("a[download]")
    assert link.count() == 1, "no download link"
    response = page.request.get(link.evaluate("a => a.href"))
    assert response.status == 200 and response.body() == chapter.learner_notebook.read_bytes(), \
        f"the download link answers {response.status}, not the learner notebook"


@pytest.mark.parametrize("name,path", PAGES, ids=[name for name, _ in PAGES])
def test_page_in_a_desktop_browser(visit, served, name, path):
    page_visit = visit(path, DESKTOP)
    check_desktop_page(page_visit, served, path)
    page_visit.page.screenshot(path=SCREENSHOTS / f"{name}-desktop.png", full_page=True)


@pytest.mark.parametrize("name,path", PAGES, ids=[name for name, _ in PAGES])
def test_page_on_a_phone(visit, served, name, path):
    page_visit = visit(path, PHONE)
    page = page_visit.page
    assert_loaded_cleanly(page_visit, served)
    assert_fits(page)
    page.screenshot(path=SCREENSHOTS / f"{name}-phone.png", full_page=True)


def test_dark_mode_and_offline_search(visit, served):
    page_visit = visit("", DESKTOP)
    page = page_visit.page
    assert page.evaluate("() => document.body.dataset.mdColorScheme") == "default"
    page.locator("form[data-md-component=palette] label:visible").click()
    assert page.evaluate("() => document.body.dataset.mdColorScheme") == "slate"
    page.screenshot(path=SCREENSHOTS / "index-dark.png")

    # Search runs in the browser on the site's own index: a word of chapter 01 finds it.
    page.locator("input.md-search__input").click()
    page.keyboard.type("antipodal")
    results = page.locator(".md-search-result__item a")
    results.first.wait_for(timeout=10_000)
    assert "01_superposition/page/" in results.first.get_attribute("href")
    assert_loaded_cleanly(page_visit, served)


# Each fault is made in a copy of the built site, on chapter 03's page; the browser checks must
# catch it, for the reason given.
FAULTS = {
    "renderer missing": (lambda html: html.replace('<script src="../../assets/mathjax/MathJax.js">',
                                                   '<script>'), "formulas not typeset"),
    "math never marked": (lambda html: html.replace('class="arithmatex"', 'class="prose"'),
                          "TeX shown as text"),
    "web font": (lambda html: html.replace("</head>", '<link rel="stylesheet" href="https://'
                                           'fonts.googleapis.com/css?family=Roboto"></head>'),
                 "requests to other hosts"),
    "missing figure": (lambda html: html.replace("../figures/01.png", "../figures/99.png"),
                       "failed requests"),
    "no alt text": (lambda html: re.sub(r'<img alt="[^"]*"', '<img alt="No description has '
                                        'been provided for this image"', html, count=1),
                    "without a real alt text"),
    "code does not wrap": (lambda html: html.replace("</head>", "<style>.md-typeset pre > code "
                                                     "{white-space: pre !important}</style></head>"),
                           "code runs past the edge"),
    "solution in view": (lambda html: html.replace("<details class=\"success\">",
                                                   "<details class=\"success\" open>", 1),
                         "must be folded"),
    "no download link": (lambda html: html.replace(" download=", " data-download="),
                         "no download link"),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_the_browser_checks_catch_a_broken_page(site, browser, tmp_path, fault):
    broken = tmp_path / "site"
    shutil.copytree(site, broken, ignore=shutil.ignore_patterns("screenshots"))
    page_file = broken / "03_induction_heads" / "page" / "index.html"
    break_page, reason = FAULTS[fault]
    html = page_file.read_text()
    assert break_page(html) != html, "the fault changed nothing"
    page_file.write_text(break_page(html))
    with serve(broken) as base:
        page_visit = PageVisit(browser, base + "03_induction_heads/page/", *DESKTOP)
        try:
            with pytest.raises(AssertionError, match=reason):
                check_desktop_page(page_visit, base, "03_induction_heads/page/")
        finally:
            page_visit.close()
