"""The shared grading machinery on faulty and hostile answers: every route into a chapter's
solutions is flagged, a model changed in place is put back (NaN included) so later exercises are
graded fairly, and an answer cell that never ran is named as such."""

import pytest
import torch

from reference_impl.course.grading import CheckFailed
from reference_impl.induction_heads import checks as induction_checks
from reference_impl.superposition import checks as superposition_checks
from tests import notebooks


@pytest.fixture(scope="module")
def superposition_nb(superposition):
    return notebooks.read(superposition.solution_notebook)


@pytest.fixture(scope="module")
def induction_nb(induction_heads):
    return notebooks.read(induction_heads.solution_notebook)


ROUTES = {
    "import_module": (
        "import importlib\n"
        "def interference(W):\n"
        "    module = importlib.import_module('reference_impl.superposition.' + 'solutions')\n"
        "    return module.interference(W)\n"),
    "partial in the body": (
        "import functools, importlib\n"
        "def interference(W):\n"
        "    answer = getattr(importlib.import_module('reference_impl.superposition.solutions'),\n"
        "                     'interference')\n"
        "    return functools.partial(answer)(W)\n"),
    "partial as the answer": (
        "import functools\n"
        "from reference_impl.superposition.solutions import interference as _answer\n"
        "interference = functools.partial(_answer)\n"),
    "package attribute": (
        "import reference_impl.superposition\n"
        "def interference(W):\n"
        "    return getattr(reference_impl.superposition, 'solu' + 'tions').interference(W)\n"),
}


@pytest.mark.parametrize("route", ROUTES)
def test_every_route_into_the_solutions_earns_nothing(route, superposition_nb):
    answer = notebooks.function_from(superposition_nb, "interference", source=ROUTES[route])
    with pytest.raises(CheckFailed, match="uses the chapter's solution module"):
        superposition_checks.check_interference(answer)


def test_reference_dependencies_and_reference_models_are_not_flagged(superposition_nb):
    """train calls the reference generate_batch it is handed, and the reference ToyModel's
    forward pass calls the reference reconstruct: neither is the learner's doing."""
    superposition_checks.check_train(notebooks.function_from(superposition_nb, "train"))


def test_an_answer_cell_that_never_ran_is_named(superposition_nb):
    with pytest.raises(CheckFailed, match="`reconstruct` is not defined: its answer cell did not "
                                          "run to the end"):
        superposition_checks.check_reconstruct(None)


NAN_WEIGHTS = '''
def head_weights(model, layer):
    """Sets the model's weights to NaN on the way."""
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(float("nan"))
    raise ValueError("gave up")
'''

REPLACED_PARAMETER = '''
def head_weights(model, layer):
    """Replaces a parameter of the model by a new one."""
    attention = model.transformer.h[layer].attn.c_attn
    attention.weight = torch.nn.Parameter(torch.zeros_like(attention.weight))
    return attention.weight, attention.weight, attention.weight, attention.weight
'''


@pytest.mark.parametrize("answer", [NAN_WEIGHTS, REPLACED_PARAMETER], ids=["nan", "replaced"])
def test_a_mutated_model_is_put_back_and_later_exercises_keep_their_points(answer, induction_nb):
    shipped = induction_checks._shipped()
    before = {name: tensor.clone() for name, tensor in shipped.state_dict().items()}
    objects = dict(shipped.state_dict(keep_vars=True))
    wrong = notebooks.function_from(induction_nb, "head_weights", source=answer)
    with pytest.raises(CheckFailed, match="in place"):
        induction_checks.check_head_weights(wrong)
    after = shipped.state_dict(keep_vars=True)
    assert all(after[name] is objects[name] for name in objects)
    assert all(torch.equal(after[name], before[name]) for name in before)
    # Every later exercise still gets its points.
    for name in ("ov_circuit", "copying_score", "positional_qk_circuit", "k_composition_scores"):
        getattr(induction_checks, f"check_{name}")(notebooks.function_from(induction_nb, name))


def test_a_model_of_the_notebook_changed_through_a_global_is_put_back(induction_nb):
    """The learner's function reaches the notebook's own model as a global and changes it."""
    answer = notebooks.function_from(induction_nb, "detector_scores", source=(
        "import torch\n"
        "def detector_scores(pattern):\n"
        "    with torch.no_grad():\n"
        "        model.transformer.wte.weight.mul_(0)\n"
        "    raise NotImplementedError()\n"))
    from reference_impl.zoo import load_model

    model = load_model("attn-only-2l")[0]
    answer.__globals__["model"] = model
    before = model.transformer.wte.weight.clone()
    with pytest.raises(CheckFailed, match="changed your notebook.s `model.transformer.wte.weight` in place"):
        induction_checks.check_detector_scores(answer)
    assert torch.equal(model.transformer.wte.weight, before)
