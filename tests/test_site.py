"""The site builds with `mkdocs build --strict`, executing every chapter page."""

import os
import re
import subprocess
import sys

import pytest
import yaml

from reference_impl.course.build import exercises
from reference_impl.course.chapters import CHAPTERS, REPO_ROOT


def mkdocs_build(config, site_dir, cwd=REPO_ROOT):
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config),
                           "-d", str(site_dir)], cwd=cwd, capture_output=True, text=True,
                          timeout=1200, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    site_dir = tmp_path_factory.mktemp("site")
    result = mkdocs_build(REPO_ROOT / "mkdocs.yml", site_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return site_dir


def test_home_page_lists_every_chapter(site):
    home = (site / "index.html").read_text()
    assert "How to start" in home
    for chapter in CHAPTERS:
        assert f'href="{chapter.folder}/page/"' in home
        assert chapter.title in home


# A piece of each chapter's math, as the page's source carries it.
MATH = {"01_superposition": r"\mathrm{ReLU}", "03_induction_heads": r"\sum_i \lambda_i"}


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.folder)
def test_chapter_page_has_prose_math_code_and_figures(site, chapter):
    html = (site / chapter.folder / "page" / "index.html").read_text()
    first_exercise = exercises(chapter)[0].name
    assert chapter.title in html
    assert len(re.findall(r"data:image/png;base64", html)) >= 5
    assert "MathJax" in html and MATH[chapter.folder] in html
    assert f"def {first_exercise}" in html
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS", f"check_{first_exercise}",
                   "raise NotImplementedError()", "Traceback"):
        assert marker not in html, marker
    # The learner notebook is published beside the page, for download.
    assert (site / chapter.folder / "exercises.ipynb").exists()


def test_a_broken_link_fails_the_build(tmp_path):
    config = yaml.safe_load((REPO_ROOT / "mkdocs.yml").read_text().replace("!!python", ""))
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\nSee [chapter 9](09_missing/page.ipynb).\n")
    config.update(docs_dir=str(docs), nav=[{"Home": "index.md"}], plugins=["search"])
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    result = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site", cwd=tmp_path)
    assert result.returncode != 0
    assert "09_missing/page.ipynb" in result.stderr
