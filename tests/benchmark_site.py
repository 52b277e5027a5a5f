"""Build the site once and print how long it took and how big it is.

    python -m tests.benchmark_site

The build executes every chapter page, so its time is mostly the chapters' own run time (see
tests/benchmark.py); the size is mostly the math renderer's files.
"""

import tempfile
import time
from pathlib import Path

from reference_impl.course.chapters import REPO_ROOT
from reference_impl.course.site import MATHJAX
from tests.test_site import mkdocs_build


def megabytes(folder):
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file()) / 1e6


def main():
    with tempfile.TemporaryDirectory() as scratch:
        site = Path(scratch) / "site"
        start = time.perf_counter()
        result = mkdocs_build(REPO_ROOT / "mkdocs.yml", site)
        seconds = time.perf_counter() - start
        if result.returncode:
            raise SystemExit(result.stderr[-3000:])
        pages = sorted(p.parent.relative_to(site).as_posix() for p in site.rglob("index.html"))
        print(f"mkdocs build --strict: {seconds:.1f} s")
        print(f"site: {megabytes(site):.1f} MB in {sum(1 for f in site.rglob('*') if f.is_file())} "
              f"files; the math renderer {megabytes(site / MATHJAX):.1f} MB")
        for page in pages:
            folder = site / page
            figures = sorted((folder.parent / "figures").glob("*.png")) if page != "." else []
            print(f"  {page:<28} {(folder / 'index.html').stat().st_size / 1e3:7.0f} kB"
                  + (f", {len(figures)} figures {sum(f.stat().st_size for f in figures) / 1e3:.0f}"
                     f" kB" if figures else ""))


if __name__ == "__main__":
    main()
