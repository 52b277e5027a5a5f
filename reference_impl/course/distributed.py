"""Grading a class on Dask's distributed scheduler: one task per student, each running nbgrader's
autograder on a worker (see nbgrader_course.grade_student), on a local cluster of this machine's
cores or on an existing cluster. When a worker dies mid-student the scheduler hands the student
to another worker; a student that stops every worker that tries is given zero, with the reason."""

import contextlib
import logging
import os
import uuid

from reference_impl.course.nbgrader_course import _api, grade_student, grade_zero_unless_graded
from reference_impl.errors import CourseError

# A student is handed to at most this many workers in a local cluster: a submission that stops
# three of them (out of memory, say) would only stop the next. An existing scheduler keeps its
# own setting (Dask's distributed.scheduler.allowed-failures, plus one).
ATTEMPTS = 3
WORKERS_DIED = ("grading it stopped every worker that tried (out of memory, a crash, or the "
                "worker was killed)")


def autograde(root, assignment, students, gradebook, workers, scheduler, progress):
    """One Outcome per student, in order; ``progress`` wraps the outcomes as they arrive."""
    from distributed import as_completed

    # The worker's kernels read the course's own settings (the check timeout, say) from the
    # environment: they travel with the work, so that every worker grades as this machine would.
    environment = {k: v for k, v in os.environ.items() if k.startswith("MECHINTERP_")}
    run = uuid.uuid4().hex[:8]
    with _client(workers, scheduler) as client:
        futures = {client.submit(grade_student, str(root), assignment, student, gradebook,
                                 environment, key=f"grade-{assignment}-{student}-{run}",
                                 pure=False): student
                   for student in students}
        api = _api(root, gradebook)
        outcomes = {}
        for outcome in progress(_outcomes(as_completed(futures), futures, api, assignment)):
            outcomes[outcome.student] = outcome
    return [outcomes[student] for student in students]


def _outcomes(completed, futures, api, assignment):
    from distributed import KilledWorker

    for future in completed:
        student = futures[future]
        try:
            yield future.result()
        except CourseError:
            raise  # the cluster cannot grade at all (a worker without the course, say)
        except KilledWorker:
            yield grade_zero_unless_graded(api, assignment, student, WORKERS_DIED)
        except Exception as error:  # noqa: BLE001 (one student's failure must not stop the class)
            yield grade_zero_unless_graded(api, assignment, student,
                                           f"grading failed ({type(error).__name__}: {error})")


@contextlib.contextmanager
def _client(workers, scheduler):
    """A Dask client of the scheduler at ``scheduler``, or of a new local cluster of ``workers``
    processes (closed afterwards)."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=10)
        except (OSError, ValueError) as error:
            raise CourseError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None
        with client:
            yield client
        return
    # A worker takes a student only when it is free (Dask's default hands each worker one more
    # to queue behind the one it grades): a student who takes minutes must not hold back the next
    # one while another worker sits idle.
    with dask.config.set({"distributed.scheduler.allowed-failures": ATTEMPTS - 1,
                          "distributed.scheduler.worker-saturation": 1.0}):
        # One thread a worker: a worker grades one student at a time, in its own kernel.
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=None, silence_logs=logging.ERROR) as cluster:
            with Client(cluster) as client:
                yield client
