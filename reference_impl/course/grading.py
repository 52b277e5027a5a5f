"""The machinery every grading check shares.

A check runs the learner's function on randomised inputs and compares the result with the
reference solution. Whatever goes wrong ends in one ``CheckFailed`` with one actionable sentence:
an exception in the learner's code, a hang, NaNs, a wrong type, shape or dtype, wrong values,
inputs changed in place, or a call into the chapter's solution module. The learner's warnings,
prints and progress bars are captured, so correct but noisy code still earns full marks (nbgrader
scores a test cell with any stderr output as zero).
"""

import contextlib
import functools
import importlib
import inspect
import io
import math
import os
import signal
import sys
import sysconfig
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
    globals it reads (following the learner's own helper functions). Routes this cannot see
    (``importlib``, ``functools.partial``, ``getattr`` on a module) are caught while the function
    runs, by ``SolutionCallWatch``."""
    seen = set() if _seen is None else _seen
    if id(fn) in seen:
        return None
    seen.add(id(fn))
    if isinstance(fn, functools.partial):
        return solution_module_use(fn.func, module_name, seen)
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
    package, _, leaf = module_name.rpartition(".")
    for name in names:
        if name == module_name or name.startswith(module_name + ".") or (
                name == package and leaf in names):
            return f"it imports `{module_name}`"
    for name in names:
        value = getattr(fn, "__globals__", {}).get(name)
        if isinstance(value, types.ModuleType):
            if value.__name__ == module_name or (value.__name__ == package and leaf in names):
                return f"it uses `{module_name}` through the name `{name}`"
        elif isinstance(value, functools.partial):
            found = solution_module_use(value, module_name, seen)
            if found:
                return f"{found} (through the name `{name}`)"
        elif getattr(value, "__module__", None) == module_name:
            return f"it calls `{module_name}.{name}`"
        elif isinstance(value, types.FunctionType) and value.__module__ in ("__main__", None):
            found = solution_module_use(value, module_name, seen)
            if found:
                return f"{found} (via your helper `{name}`)"
    return None


def _library_paths():
    """Folders whose code is not the learner's: the course's package, the standard library and
    installed packages."""
    paths = {os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            paths.add(os.path.abspath(path))
    return tuple(sorted(paths))


_LIBRARY_PATHS = _library_paths()


def _is_learner_code(filename):
    return not (filename.startswith("<frozen") or os.path.abspath(filename).startswith(_LIBRARY_PATHS))


class SolutionCallWatch:
    """While active, notice any call that learner code makes straight into a function of the
    chapter's solution module, however it got hold of it. Calls the course makes (a reference
    model's forward pass calling a reference function) and the reference ``dependencies`` the
    check hands over are allowed."""

    def __init__(self, module_name, allowed=()):
        self.module_name = module_name
        module = importlib.import_module(module_name)
        allowed_codes = {getattr(inspect.unwrap(f), "__code__", None) for f in allowed}
        # A decorated function (@contextmanager, @torch.no_grad()) is watched by the code of the
        # function inside the decorator: the wrapper's code is the decorator's, shared by every
        # function it decorates, the course's and the learner's.
        self.watched = {inspect.unwrap(value).__code__: name
                        for name, value in vars(module).items()
                        if isinstance(value, types.FunctionType) and value.__module__ == module_name
                        and inspect.unwrap(value).__code__ not in allowed_codes}
        self.found = None

    def _profile(self, frame, event, arg):
        if event == "call" and self.found is None and frame.f_code in self.watched:
            caller = frame.f_back
            if caller is not None and _is_learner_code(caller.f_code.co_filename):
                self.found = self.watched[frame.f_code]

    @contextlib.contextmanager
    def watching(self):
        previous = sys.getprofile()
        sys.setprofile(self._profile)
        try:
            yield self
        finally:
            sys.setprofile(previous)


def with_reference_dependencies(fn, dependencies):
    """A copy of the learner's function that sees the reference versions of the functions it
    builds on, so that each exercise is graded alone."""
    if not isinstance(fn, types.FunctionType) or not dependencies:
        return fn
    inner = getattr(fn, "__wrapped__", None)
    if isinstance(inner, types.FunctionType) and fn.__closure__:
        # A decorated answer (@torch.no_grad()): the decorator's wrapper holds the learner's
        # function in its closure, so rebind that one and put it in a copy of the closure.
        rebound_inner = with_reference_dependencies(inner, dependencies)

        def swapped(cell):
            try:
                return types.CellType(rebound_inner) if cell.cell_contents is inner else cell
            except ValueError:  # an empty cell
                return cell

        wrapper = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__,
                                     tuple(swapped(cell) for cell in fn.__closure__))
        wrapper.__kwdefaults__ = fn.__kwdefaults__
        return functools.update_wrapper(wrapper, rebound_inner)
    rebound = types.FunctionType(fn.__code__, {**fn.__globals__, **dependencies}, fn.__name__,
                                 fn.__defaults__, fn.__closure__)
    rebound.__kwdefaults__ = fn.__kwdefaults__
    return rebound


def _same(a, b):
    """Equal shapes, dtypes and values, NaN counting as equal to NaN."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if torch.equal(a, b):
        return True
    return a.is_floating_point() and bool(((a == b) | (a.isnan() & b.isnan())).all())


# A module's tables of hooks, and the tables of flags about them (keyed by the same hook ids).
_HOOK_TABLES = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
_HOOK_FLAGS = ("_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs",
               "_forward_hooks_always_called")


def _is_learner_hook(hook):
    """Whether a hook's function was written by the learner (and not by a library such as
    ``transformers``, which keeps hooks of its own on a model)."""
    function = getattr(hook, "func", hook)  # a functools.partial
    code = getattr(function, "__code__", None) or getattr(getattr(function, "__call__", None),
                                                          "__code__", None)
    return code is None or _is_learner_code(code.co_filename)


class _Snapshot:
    """Copies of everything a check hands the learner's function (and the models in the
    learner's notebook), to notice a change made in place and undo it, so that a mutating answer
    loses its own exercise and nothing else."""

    def __init__(self):
        self.tensors = []  # (what, tensor, copy)
        self.modules = []  # (what, module, {name: tensor object}, {name: copy})
        self.hooks = []  # (submodule, hook table name, the keys it held)

    def add(self, value, what):
        """``what`` names the value, with ``{}`` where the path to a part of it goes."""
        if isinstance(value, torch.Tensor):
            self.tensors.append((what, value, value.detach().clone()))
        elif isinstance(value, torch.nn.Module):
            if any(module is value for _, module, _, _ in self.modules):
                return
            state = value.state_dict(keep_vars=True)
            for module in value.modules():
                for table in _HOOK_TABLES:
                    self.hooks.append((module, table, set(getattr(module, table, {}))))
            self.modules.append((what, value, dict(state),
                                 {name: t.detach().clone() for name, t in state.items()}))
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                self.add(item, what.format(f"[{i}]{{}}"))
        elif isinstance(value, dict):
            for key, item in value.items():
                self.add(item, what.format(f"[{key!r}]{{}}"))

    def changed(self):
        """What was changed in place, or None."""
        for what, tensor, before in self.tensors:
            if not _same(tensor.detach(), before):
                return what.format("")
        for what, module, objects, before in self.modules:
            now = module.state_dict(keep_vars=True)
            if now.keys() != objects.keys():
                return what.format("")
            for name, tensor in now.items():
                if tensor is not objects[name] or not _same(tensor.detach(), before[name]):
                    return what.format(f".{name}")
        return None

    def remove_new_hooks(self):
        """Take off every hook the learner's code added to a model since the snapshot (hooks that
        libraries add for themselves stay); return how many there were."""
        removed = 0
        for module, table, before in self.hooks:
            hooks = getattr(module, table, {})
            for key in [key for key in hooks if key not in before]:
                if _is_learner_hook(hooks[key]):
                    del hooks[key]
                    for flags in _HOOK_FLAGS:
                        getattr(module, flags, {}).pop(key, None)
                    removed += 1
        return removed

    def restore(self):
        """Put every value back, in the same objects (a replaced parameter is put back too)."""
        with torch.no_grad():
            for _, tensor, before in self.tensors:
                if tensor.shape == before.shape:
                    tensor.copy_(before)
            for _, module, objects, before in self.modules:
                for name, tensor in objects.items():
                    owner_name, _, leaf = name.rpartition(".")
                    try:
                        owner = module.get_submodule(owner_name)
                    except AttributeError:
                        continue
                    table = owner._parameters if leaf in owner._parameters else owner._buffers
                    table[leaf] = tensor
                    tensor.copy_(before[name])


def _learner_line(exc, fn):
    """'line N of your function' for the deepest frame of the traceback in the learner's code."""
    code = getattr(inspect.unwrap(fn), "__code__", None)
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
        if fn is None:
            raise CheckFailed(f"`{name}` is not defined: its answer cell did not run to the end "
                              f"(a syntax error, an exception or the cell's time limit stopped "
                              f"it), so fix that cell and run it again.")
        if not callable(fn):
            raise CheckFailed(f"`{name}` should be a function, but it is a {type(fn).__name__}: "
                              f"run the cell that defines it and pass the function itself.")
        used = solution_module_use(fn, solution_module)
        if used:
            raise self._solution_used(used)
        dependencies = dependencies or {}
        self.watch = SolutionCallWatch(solution_module, allowed=dependencies.values())
        # The models in the learner's notebook, which the function could change through a global.
        self.notebook_models = {key: value for key, value in getattr(fn, "__globals__", {}).items()
                                if isinstance(value, torch.nn.Module)}
        self.fn = with_reference_dependencies(fn, dependencies)
        self.deadline = time.monotonic() + time_limit_seconds()

    def _solution_used(self, how):
        return CheckFailed(f"`{self.name}` uses the chapter's solution module ({how}), so it "
                           f"earns no points: write the function yourself.")

    def __call__(self, *args, mutable=(), **kwargs):
        """Call the learner's function quietly and within the time limit.

        Raises CheckFailed if it raises, hangs, calls into the solution module or changes an
        argument or a model of the notebook in place (except the positional arguments whose
        indices are listed in ``mutable``) or leaves a hook on a model; anything changed in place
        is restored first, and left hooks are removed."""
        return self.run(self.fn, *args, mutable=mutable, **kwargs)

    def run(self, fn, *args, mutable=(), **kwargs):
        """Call ``fn`` under the same guards as the learner's function: for course code that runs
        what the learner's function returned (a model under the learner's patches, say)."""
        snapshot = _Snapshot()
        for i, arg in enumerate(args):
            if i not in mutable:
                snapshot.add(arg, f"argument {i + 1}{{}}")
        for key, arg in kwargs.items():
            snapshot.add(arg, f"`{key}{{}}`")
        for key, model in self.notebook_models.items():
            snapshot.add(model, f"your notebook's `{key}{{}}`")
        remaining = self.deadline - time.monotonic()
        failure = result = None
        try:
            if remaining <= 0:
                raise _TimeLimitReached()
            with captured_output(), time_limit(remaining), self.watch.watching():
                result = fn(*args, **kwargs)
        except _TimeLimitReached:
            failure = CheckFailed(f"`{self.name}` did not finish within "
                                  f"{time_limit_seconds():.0f} s: look for a loop that never ends.")
        except NotImplementedError:
            failure = CheckFailed(f"`{self.name}` is not implemented yet: replace "
                                  f"`raise NotImplementedError()` with your code.")
        except CheckFailed as exc:
            failure = exc
        except Exception as exc:
            text = str(exc).strip()
            failure = CheckFailed(f"`{self.name}` raised {type(exc).__name__}"
                                  f"{_learner_line(exc, self.fn)}: "
                                  f"{text.splitlines()[0] if text else '(no message)'}")
        # Whatever happened, nothing the learner changed in place survives the call, and no hook
        # it left on a model runs in a later check.
        left_hooks = snapshot.remove_new_hooks()
        changed = snapshot.changed()
        if changed:
            snapshot.restore()
        if self.watch.found:
            raise self._solution_used(f"it calls `{self.watch.module_name}.{self.watch.found}`")
        if changed:
            what = changed if changed.startswith("your notebook") else f"its input ({changed})"
            raise CheckFailed(f"`{self.name}` changed {what} in place (now put back): work on a "
                              f"copy, or use out-of-place operations (x = x + 1, not x += 1).")
        if failure is not None:
            raise failure from None
        if left_hooks:
            raise CheckFailed(f"`{self.name}` left {left_hooks} hook{'s' if left_hooks > 1 else ''} "
                              f"on the model (now removed): register hooks through `patched` or "
                              f"`run_with_cache`, which take them off again even when an "
                              f"exception is raised.")
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


def expect_number(got, expected, what, hint="", tol=1e-4):
    """A Python number (or a one-element tensor) close to the expected one."""
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    if isinstance(got, bool) or not isinstance(got, (int, float)):
        raise CheckFailed(f"{what} should be a number, got {type(got).__name__}.")
    if not math.isfinite(got):
        raise CheckFailed(f"{what} is {got}: look for a division by zero or a log of zero.")
    if abs(got - expected) > tol * max(1.0, abs(expected)):
        raise CheckFailed(f"{what}: expected {expected:.4g}, got {got:.4g}"
                          + (f": {hint}" if hint else "."))


def passed(name, n_cases):
    print(f"✔ {name}: passed {n_cases} randomised test{'s' if n_cases != 1 else ''}.")
