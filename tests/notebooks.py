"""Helpers for tests that work with the chapter notebooks."""

import json
import subprocess

import nbformat
from nbclient import NotebookClient
from nbgrader import utils as nbgrader_utils

from reference_impl.course.build import GIVEN_TAG


def read(path):
    return nbformat.read(path, as_version=4)


def cell(nb, grade_id):
    for c in nb.cells:
        if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            return c
    raise KeyError(grade_id)


def answer_cells(nb):
    return [c for c in nb.cells if nbgrader_utils.is_solution(c)]


def function_from(nb, name, source=None):
    """Define the exercise function ``name`` as the notebook would: run the setup cell and the
    given code, then the answer cell (or ``source`` in its place)."""
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    namespace = {"__name__": "__main__"}
    exec(code_cells[0].source, namespace)
    for c in code_cells:
        if GIVEN_TAG in c.metadata.get("tags", []):
            exec(c.source, namespace)
    exec(source if source is not None else cell(nb, name).source, namespace)
    return namespace[name]


class LiveNotebook:
    """A notebook executed once in a kernel that stays alive, so tests can measure what the
    notebook computed (the figures and numbers its text describes)."""

    def __init__(self, path, timeout=600):
        self.nb = read(path)
        self.client = NotebookClient(self.nb, timeout=timeout, kernel_name="python3",
                                     allow_errors=False,
                                     resources={"metadata": {"path": str(path.parent)}})
        self._kernel = self.client.setup_kernel(stderr=subprocess.DEVNULL)
        self._kernel.__enter__()
        for index, c in enumerate(self.nb.cells):
            self.client.execute_cell(c, index)

    def value(self, expression):
        """The JSON value of a Python expression evaluated in the notebook's namespace."""
        probe = nbformat.v4.new_code_cell(f"import json as _json\nprint(_json.dumps({expression}))")
        self.nb.cells.append(probe)  # nbclient stores the executed cell back by its index
        try:
            self.client.execute_cell(probe, len(self.nb.cells) - 1)
        finally:
            self.nb.cells.pop()
        text = "".join(o.get("text", "") for o in probe.outputs if o.output_type == "stream")
        return json.loads(text)

    def close(self):
        self._kernel.__exit__(None, None, None)
