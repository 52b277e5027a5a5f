"""Time each chapter's solution notebook, plainly and through `mechinterp check`.

    python tests/benchmark.py [CHAPTER ...]

Prints, per chapter: the plain nbclient execution time, the slowest cell, and the wall time of
`mechinterp check CHAPTER --solutions` with its overhead over plain execution; then the seconds
each of its numbered sections ("## 3 · ...") took in the plain run.
"""

import subprocess
import sys
import time
from datetime import datetime

import nbformat
from nbclient import NotebookClient

from reference_impl.course.chapters import CHAPTERS, find_chapter


def cell_seconds(cell):
    timing = cell.metadata.get("execution", {})
    if "iopub.execute_input" not in timing:
        return 0.0
    start, end = (datetime.fromisoformat(timing[k].replace("Z", "+00:00"))
                  for k in ("iopub.execute_input", "shell.execute_reply"))
    return (end - start).total_seconds()


def plain_run(path):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute(stderr=subprocess.DEVNULL)
    total = time.perf_counter() - start
    slowest = max(range(len(nb.cells)), key=lambda i: cell_seconds(nb.cells[i]))
    return total, cell_seconds(nb.cells[slowest]), slowest, section_seconds(nb)


def section_seconds(nb):
    """{section heading: seconds of its code cells}, for the markdown cells that open a "## "
    section (cells before the first heading count as "setup")."""
    sections, current = {}, "setup"
    for cell in nb.cells:
        heading = [line for line in cell.source.splitlines() if line.startswith("## ")]
        if cell.cell_type == "markdown" and heading:
            current = heading[0][3:]
        sections[current] = sections.get(current, 0.0) + cell_seconds(cell)
    return sections


def main(names):
    chapters = [find_chapter(n) for n in names] if names else CHAPTERS
    print(f"{'chapter':<20} {'plain run':>10} {'slowest cell':>14} {'check':>8} {'overhead':>9}")
    for chapter in chapters:
        total, slowest, index, sections = plain_run(chapter.solution_notebook)
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "reference_impl.cli", "check",
                                 chapter.folder, "--solutions"], capture_output=True, text=True)
        checked = time.perf_counter() - start
        score = result.stdout.strip().splitlines()[-1]
        print(f"{chapter.folder:<20} {total:>9.1f}s {slowest:>7.1f}s (#{index:<3}) "
              f"{checked:>7.1f}s {100 * (checked / total - 1):>8.0f}%   {score}")
        for heading, seconds in sections.items():
            print(f"    {seconds:6.1f}s  {heading}")


if __name__ == "__main__":
    main(sys.argv[1:])
