import pytest
import torch
from threadpoolctl import threadpool_limits

from reference_impl.course.chapters import find_chapter
from tests.notebooks import LiveNotebook

# The files whose fixtures run whole notebooks, longest first (pytest --durations): each is one
# unit of work for a worker (--dist loadfile, without xdist's reordering by number of tests), and
# starting the long ones first keeps both workers busy to the end instead of leaving one of them
# a class of notebooks to grade alone after the other has finished.
# The zoo's retrains come first as well: under `-m slow --dist load` they are handed out in
# collection order, two to a worker, and each must share a worker with a short test.
LONGEST_FIRST = ("test_zoo_models.py", "rome/test_nbgrader.py", "sae/test_nbgrader.py",
                 "rome/test_chapter.py", "sae/test_chapter.py", "ioi_circuit/test_chapter.py",
                 "probing/test_chapter.py", "ioi_circuit/test_nbgrader.py", "test_facts_model.py",
                 "probing/test_nbgrader.py", "superposition/test_nbgrader.py",
                 "superposition/test_chapter.py", "induction_heads/test_chapter.py")


def pytest_collection_modifyitems(items):
    def rank(item):
        path = item.path.as_posix()
        return next((i for i, name in enumerate(LONGEST_FIRST) if path.endswith(f"tests/{name}")),
                    len(LONGEST_FIRST))

    items.sort(key=rank)  # stable: the rest keep their order


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


@pytest.fixture(scope="session")
def ioi_circuit():
    return find_chapter("ioi_circuit")


@pytest.fixture(scope="session")
def ioi_circuit_run(ioi_circuit):
    """The chapter 04 solution notebook, executed once per test session."""
    live = LiveNotebook(ioi_circuit.solution_notebook)
    yield live
    live.close()


@pytest.fixture(scope="session")
def sae():
    return find_chapter("sae")


@pytest.fixture(scope="session")
def sae_run(sae):
    """The chapter 05 solution notebook, executed once per test session."""
    live = LiveNotebook(sae.solution_notebook)
    yield live
    live.close()


@pytest.fixture(scope="session")
def rome():
    return find_chapter("rome")


@pytest.fixture(scope="session")
def rome_run(rome):
    """The chapter 06 solution notebook, executed once per test session."""
    live = LiveNotebook(rome.solution_notebook)
    yield live
    live.close()


@pytest.fixture(scope="session")
def induction_heads_class(tmp_path_factory, induction_heads):
    """Chapter 03's class of faulty submissions, graded by `mechinterp autograde` three ways at
    once: one student at a time into SQLite (the reference); on a local Dask cluster of 2
    workers (--workers 2) into a real PostgreSQL server; and through --scheduler on a real Dask
    scheduler with 2 worker processes, one of them killed in the middle of the class.

    Returns {"serial" | "postgres" | "killed": GradedRun} and the task the killed worker ran."""
    from tests.grading_services import DaskCluster, kill_worker_mid_class, postgres_server
    from tests.induction_heads import faulty_class
    from tests.nbgrader_class import (GRADEBOOK_VARIABLE, GradedRun, export, hand_in,
                                      outcomes_printed, start_autograde,
                                      submissions_per_student, wait_for)

    folder = tmp_path_factory.mktemp("class")
    settings = {"MECHINTERP_CHECK_TIMEOUT": faulty_class.CHECK_TIMEOUT}
    (folder / "dask").mkdir()
    with postgres_server() as database, \
            DaskCluster(folder / "dask", n_workers=2) as cluster:
        ways = {"serial": ([], {}),
                "postgres": (["--workers", "2"], {GRADEBOOK_VARIABLE: database}),
                "killed": (["--scheduler", cluster.address], {})}
        courses = {way: hand_in(folder / way, induction_heads, faulty_class.submissions,
                                faulty_class.CELL_TIMEOUT, faulty_class.ABSENT,
                                faulty_class.INVALID, env=env)
                   for way, (_, env) in ways.items()}
        processes = {way: start_autograde(courses[way], faulty_class.ASSIGNMENT, *options,
                                          env={**settings, **env})
                     for way, (options, env) in ways.items()}
        interrupted = kill_worker_mid_class(cluster, index=1, after=3)
        seconds = wait_for(processes, timeout=3600)
        runs = {way: GradedRun(courses[way], outcomes_printed(courses[way], processes[way]),
                               *export(courses[way], env=env), seconds[way],
                               submissions_per_student(courses[way], env))
                for way, (_, env) in ways.items()}
    return runs, interrupted
