"""The services a large class is graded with, started for real for the tests: a PostgreSQL server
(Debian's `postgresql` package) and a Dask scheduler with workers, each as its own processes on
127.0.0.1, in a temporary folder, and stopped afterwards."""

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_binary(name):
    """A PostgreSQL server program: on PATH, else where Debian installs it (not on PATH)."""
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                                                   reverse=True)), None)
    if found is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (Debian: apt-get install "
                           f"postgresql)")
    return found


@contextlib.contextmanager
def postgres_server():
    """A new PostgreSQL server on a free port of 127.0.0.1, its data in a temporary folder
    removed afterwards; yields the URL of an empty database on it."""
    with tempfile.TemporaryDirectory(prefix="mechinterp-postgres-") as folder:
        with _postgres_in(Path(folder)) as url:
            yield url


@contextlib.contextmanager
def _postgres_in(folder):
    data, sockets = folder / "data", folder / "sockets"
    sockets.mkdir()
    # PostgreSQL refuses to run as root: root runs it as the package's `postgres` user, which
    # needs a folder of its own (tempfile's is under /tmp, which every user can pass through).
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(folder, "postgres")
        shutil.chown(sockets, "postgres")

    def run(*command):
        subprocess.run([*as_user, *command], check=True, capture_output=True, timeout=120)

    port = free_port()
    run(postgres_binary("initdb"), "-D", str(data), "-U", "grader", "--auth=trust", "-E", "UTF8")
    run(postgres_binary("pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-w",
        "-o", f"-p {port} -c listen_addresses=127.0.0.1 -k {sockets}", "start")
    try:
        run(postgres_binary("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "grader",
            "mechinterp")
        yield f"postgresql://grader@127.0.0.1:{port}/mechinterp"
    finally:
        run(postgres_binary("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")


class DaskCluster:
    """`dask scheduler` and ``n_workers`` `dask worker` processes (one thread each), each in its
    own process group so that a worker can be killed with everything it started."""

    def __init__(self, folder, n_workers, env=None):
        self.folder = Path(folder)
        self.env = {**os.environ, **(env or {})}
        self.address = f"tcp://127.0.0.1:{free_port()}"
        port = self.address.rsplit(":", 1)[1]
        # As the README advises: a worker takes a student only when it is free.
        self.scheduler = self._start("scheduler", ["--host", "127.0.0.1", "--port", port,
                                                   "--no-dashboard"],
                                     env={"DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "1.0"})
        self.workers = [self._start("worker", [self.address, "--name", f"worker-{i}",
                                               "--nthreads", "1", "--no-dashboard",
                                               "--memory-limit", "0"], log=f"worker-{i}")
                        for i in range(n_workers)]
        self.wait_for_workers(n_workers)

    def _start(self, kind, arguments, log=None, env=None):
        log = open(self.folder / f"{log or kind}.log", "w")
        return subprocess.Popen([sys.executable, "-m", f"distributed.cli.dask_{kind}", *arguments],
                                stdout=log, stderr=subprocess.STDOUT,
                                env={**self.env, **(env or {})}, start_new_session=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def client(self):
        from distributed import Client

        return Client(self.address, timeout=60)

    def wait_for_workers(self, n, timeout=120):
        with self.client() as client:
            client.wait_for_workers(n, timeout=timeout)

    def kill_worker(self, index):
        """Kill worker ``index`` and every process it started (SIGKILL), as when a machine is
        lost."""
        os.killpg(self.workers[index].pid, signal.SIGKILL)
        self.workers[index].wait()

    def close(self):
        for process in [*self.workers, self.scheduler]:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for process in [*self.workers, self.scheduler]:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def kill_worker_mid_class(cluster, index, after, timeout=1800):
    """Once ``after`` students are graded, kill worker ``index`` in the middle of grading the
    next one; return the key of the task it was running."""
    deadline = time.monotonic() + timeout
    with cluster.client() as client:
        name = f"worker-{index}"
        address = next(a for a, w in client.scheduler_info()["workers"].items()
                       if w["name"] == name)
        while time.monotonic() < deadline:
            done = sum(len(keys) for keys in client.has_what().values())
            running = client.processing().get(address, [])
            if done >= after and running:
                cluster.kill_worker(index)
                return running[0]
            time.sleep(0.2)
    raise TimeoutError(f"{name} never got a student to grade after {after} were done")
