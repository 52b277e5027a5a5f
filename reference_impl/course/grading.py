"""The machinery every grading check shares.

A check runs the learner's function on randomised inputs and compares the result with the
reference solution. Whatever goes wrong ends in one ``CheckFailed`` with one actionable sentence:
an exception in the learner's code, a hang, NaNs, a wrong type, shape or dtype, wrong values,
inputs changed in place, or a call into the chapter's solution module. The learner's warnings,
prints and progress bars are captured, so correct but noisy code still earns full marks (nbgrader
scores a test cell with any stderr output as zero).
"""

import contextlib
import io
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
import types
import warnings

import torch

# Seconds a whole check may take before the learner's code is interrupted. Generous, because a
# learner's laptop may be slow; override with MECHINTERP_CHECK_TIMEOUT.
DEFAULT_TIME_LIMIT = 60.0


class CheckFailed(AssertionError):
    """A grading check rejected the learner's answer; the message says what to fix."""

    def _render_traceback_(self):
        # IPython shows this instead of a traceback through the grading library.
        return [f"\x1b[0;31mCheckFailed\x1b[0m: {self}"]


class _TimeLimitReached(BaseException):
    """Raised inside the learner's code when the time limit is reached (not an Exception, so a
    bare ``except Exception`` in the learner's code cannot swallow it)."""


def time_limit_seconds():
    return float(os.environ.get("MECHINTERP_CHECK_TIMEOUT", DEFAULT_TIME_LIMIT))


@contextlib.contextmanager
def time_limit(seconds):
    """Interrupt the block after ``seconds`` with ``_TimeLimitReached`` (POSIX main thread only;
    elsewhere the block runs unbounded and nbgrader's cell timeout is the backstop)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def on_alarm(signum, frame):
        raise _TimeLimitReached()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def captured_output():
    """Swallow everything the block prints or warns, at the Python and the file-descriptor level
    (C extensions write to fd 2 directly)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved_fds = {}
    with tempfile.TemporaryFile() as sink:
        for fd in (1, 2):
            try:
                saved_fds[fd] = os.dup(fd)
                os.dup2(sink.fileno(), fd)
            except OSError:
                pass
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                    contextlib.redirect_stderr(io.StringIO()):
                warnings.simplefilter("ignore")
                yield
        finally:
            for fd, saved in saved_fds.items():
                os.dup2(saved, fd)
                os.close(saved)


def solution_module_use(fn, module_name, _seen=None):
    """Return a description of how ``fn`` reaches ``module_name``, or None if it does not.

    Looks at where the function was defined, at modules it imports inside its body, and at the
    globals it reads (following the learner's own helper functions)."""
    seen = set() if _seen is None else _seen
    if id(fn) in seen:
        return None
    seen.add(id(fn))
    if getattr(fn, "__module__", None) == module_name:
        return f"it is `{module_name}.{getattr(fn, '__name__', '?')}`"
    fn = getattr(fn, "__func__", fn)
    code = getattr(fn, "__code__", None)
    if code is None:
        return None
    names = set()
    stack = [code]
    while stack:
        current = stack.pop()
        names.update(current.co_names)
        stack.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    for name in names:
        if name == module_name or name.startswith(module_name + "."):
            return f"it imports `{module_name}`"
    package, _, leaf = module_name.rpartition(".")
    for name in names:
        value = getattr(fn, "__globals__", {}).get(name)
        if isinstance(value, types.ModuleType):
            if value.__name__ == module_name or (value.__name__ == package and leaf in names):
                return f"it uses `{module_name}` through the name `{name}`"
        elif getattr(value, "__module__", None) == module_name:
            return f"it calls `{module_name}.{name}`"
        elif isinstance(value, types.FunctionType) and value.__module__ in ("__main__", None):
            found = solution_module_use(value, module_name, seen)
            if found:
                return f"{found} (via your helper `{name}`)"
    return None


def with_reference_dependencies(fn, dependencies):
    """A copy of the learner's function that sees the reference versions of the functions it
    builds on, so that each exercise is graded alone."""
    if not isinstance(fn, types.FunctionType) or not dependencies:
        return fn
    rebound = types.FunctionType(fn.__code__, {**fn.__globals__, **dependencies}, fn.__name__,
                                 fn.__defaults__, fn.__closure__)
    rebound.__kwdefaults__ = fn.__kwdefaults__
    return rebound


def _tensors_in(value, path):
    """Yield (path, tensor) for every tensor reachable in arguments we hand to the learner."""
    if isinstance(value, torch.Tensor):
        yield path, value
    elif isinstance(value, torch.nn.Module):
        for name, tensor in value.state_dict(keep_vars=True).items():
            yield f"{path}.{name}", tensor
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _tensors_in(item, f"{path}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _tensors_in(item, f"{path}[{key!r}]")


def _learner_line(exc, fn):
    """'line N of your function' for the deepest frame of the traceback in the learner's code."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return ""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == code.co_filename]
    if not frames:
        return ""
    frame = frames[-1]
    return f" at `{(frame.line or '').strip()}`" if frame.line else f" at line {frame.lineno}"


class Exercise:
    """The learner's function for one exercise, prepared for grading.

    ``name``: the function's name in the notebook; ``solution_module``: the chapter's solution
    module, which the learner must not call; ``dependencies``: reference versions of the functions
    this exercise builds on.
    """

    def __init__(self, fn, name, solution_module, dependencies=None):
        self.name = name
        if not callable(fn):
            raise CheckFailed(f"`{name}` should be a function, but it is a {type(fn).__name__}: "
                              f"run the cell that defines it and pass the function itself.")
        used = solution_module_use(fn, solution_module)
        if used:
            raise CheckFailed(f"`{name}` uses the chapter's solution module ({used}), so it earns "
                              f"no points: write the function yourself.")
        self.fn = with_reference_dependencies(fn, dependencies)
        self.deadline = time.monotonic() + time_limit_seconds()

    def __call__(self, *args, mutable=(), **kwargs):
        """Call the learner's function quietly and within the time limit.

        Raises CheckFailed if it raises, hangs or changes an argument in place (except the
        positional arguments whose indices are listed in ``mutable``)."""
        frozen = [(path, tensor, tensor.detach().clone())
                  for i, arg in enumerate(args) if i not in mutable
                  for path, tensor in _tensors_in(arg, f"argument {i + 1}")]
        frozen += [(path, tensor, tensor.detach().clone())
                   for key, arg in kwargs.items() for path, tensor in _tensors_in(arg, f"`{key}`")]
        remaining = self.deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise _TimeLimitReached()
            with captured_output(), time_limit(remaining):
                result = self.fn(*args, **kwargs)
        except _TimeLimitReached:
            raise CheckFailed(f"`{self.name}` did not finish within {time_limit_seconds():.0f} s: "
                              f"look for a loop that never ends.") from None
        except NotImplementedError:
            raise CheckFailed(f"`{self.name}` is not implemented yet: replace "
                              f"`raise NotImplementedError()` with your code.") from None
        except CheckFailed:
            raise
        except Exception as exc:
            raise CheckFailed(f"`{self.name}` raised {type(exc).__name__}{_learner_line(exc, self.fn)}: "
                              f"{str(exc).strip().splitlines()[0] if str(exc).strip() else '(no message)'}"
                              ) from None
        for path, tensor, before in frozen:
            if tensor.shape != before.shape or not torch.equal(tensor.detach(), before):
                raise CheckFailed(f"`{self.name}` changed its input ({path}) in place: work on a "
                                  f"copy, or use out-of-place operations (x = x + 1, not x += 1).")
        return result


def expect_tensor(got, expected, what, hint="", atol=1e-5, rtol=1e-4):
    """Compare a learner's tensor with the reference: type, shape, dtype, finiteness, values."""
    if not isinstance(got, torch.Tensor):
        raise CheckFailed(f"{what} should be a torch.Tensor, got {type(got).__name__}.")
    if got.shape != expected.shape:
        raise CheckFailed(f"{what}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}"
                          + (f": {hint}" if hint else "."))
    if got.dtype != expected.dtype:
        raise CheckFailed(f"{what}: expected dtype {expected.dtype}, got {got.dtype}.")
    if expected.is_floating_point() and not torch.isfinite(got).all():
        raise CheckFailed(f"{what} contains NaN or infinite values: look for a division by zero "
                          f"or a log of zero.")
    if not torch.allclose(got.detach().float(), expected.float(), atol=atol, rtol=rtol):
        error = (got.detach().float() - expected.float()).abs()
        index = tuple(int(i) for i in torch.unravel_index(error.argmax(), error.shape))
        raise CheckFailed(f"{what} has wrong values (at index {index}: expected "
                          f"{expected[index].item():.4g}, got {got[index].item():.4g})"
                          + (f": {hint}" if hint else "."))


def passed(name, n_cases):
    print(f"✔ {name}: passed {n_cases} randomised test{'s' if n_cases != 1 else ''}.")
