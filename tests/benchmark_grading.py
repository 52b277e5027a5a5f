"""Grade the course's class of faulty chapter 03 submissions (tests/induction_heads/faulty_class.py)
with `mechinterp autograde`, one student at a time and then on a local Dask cluster, one run after
the other, and print each wall time, their ratio and the seconds per notebook.

    python -m tests.benchmark_grading              # serial, then --workers 2
    python -m tests.benchmark_grading --workers 4  # serial, then --workers 4

Run it on an otherwise idle machine: the workers share its cores with nothing else.
"""

import argparse
import tempfile
from pathlib import Path

from reference_impl.course.chapters import find_chapter
from tests.induction_heads import faulty_class
from tests.nbgrader_class import hand_in, outcomes_printed, start_autograde, wait_for


def grade(folder, name, options):
    """Hand the class in afresh and grade it; (seconds, notebooks graded)."""
    course = hand_in(Path(folder) / name, find_chapter("induction_heads"),
                     faulty_class.submissions, faulty_class.CELL_TIMEOUT, faulty_class.ABSENT,
                     faulty_class.INVALID)
    process = start_autograde(course, faulty_class.ASSIGNMENT, *options,
                              env={"MECHINTERP_CHECK_TIMEOUT": faulty_class.CHECK_TIMEOUT})
    seconds = wait_for({name: process}, timeout=3600)[name]
    return seconds, len(outcomes_printed(course, process))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    workers = parser.parse_args().workers
    with tempfile.TemporaryDirectory() as folder:
        serial, notebooks = grade(folder, "serial", [])
        print(f"one student at a time: {serial:6.1f} s for {notebooks} notebooks, "
              f"{serial / notebooks:.1f} s a notebook", flush=True)
        parallel, _ = grade(folder, "parallel", ["--workers", str(workers)])
        print(f"--workers {workers}:          {parallel:6.1f} s, "
              f"{parallel / notebooks:.1f} s a notebook of the class")
        print(f"ratio: {parallel / serial:.2f} of the serial wall time")


if __name__ == "__main__":
    main()
