import pytest
import torch
from threadpoolctl import threadpool_limits

from reference_impl.course.chapters import find_chapter
from tests.notebooks import LiveNotebook

# The course's models are tiny; one thread is fastest and keeps two test processes from fighting.
torch.set_num_threads(1)
threadpool_limits(1)  # numpy's BLAS too: scikit-learn's probes are many times slower on shared cores


@pytest.fixture(scope="session")
def superposition():
    return find_chapter("superposition")


@pytest.fixture(scope="session")
def superposition_run(superposition):
    """The chapter 01 solution notebook, executed once per test session."""
    live = LiveNotebook(superposition.solution_notebook)
    yield live
    live.close()


@pytest.fixture(scope="session")
def probing():
    return find_chapter("probing")


@pytest.fixture(scope="session")
def probing_run(probing):
    """The chapter 02 solution notebook, executed once per test session."""
    live = LiveNotebook(probing.solution_notebook)
    yield live
    live.close()


@pytest.fixture(scope="session")
def induction_heads():
    return find_chapter("induction_heads")


@pytest.fixture(scope="session")
def induction_heads_run(induction_heads):
    """The chapter 03 solution notebook, executed once per test session."""
    live = LiveNotebook(induction_heads.solution_notebook)
    yield live
    live.close()
