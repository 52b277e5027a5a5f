"""What the chapter 05 checks say, and how they treat inputs changed in place, parameters replaced,
hooks left on a model, activations of the wrong width, use of the solution module and broken
dependencies. Reference, stub and mistakes: tests/test_every_check.py."""

import inspect
import textwrap

import pytest
import torch
import torch.nn.functional as F

from reference_impl.course.grading import CheckFailed
from reference_impl.sae import checks
from reference_impl.sae import solutions as solution
from tests.sae import mistakes


def check_of(name):
    return getattr(checks, f"check_{name}")


def hooks_on(model):
    """How many hooks the modules of ``model`` hold."""
    return sum(len(getattr(module, table))
               for module in model.modules()
               for table in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
                             "_backward_pre_hooks"))


def answer(name, source=None, **namespace):
    """The exercise ``name`` defined as in a notebook: from its reference source (or ``source``),
    run in a namespace of its own with ``namespace``'s names (the notebook's earlier cells)."""
    globals_ = {"__name__": "__main__", "torch": torch, "F": F, **namespace}
    exec(textwrap.dedent(source or inspect.getsource(getattr(solution, name))), globals_)
    return globals_[name]


def not_written_yet(*args, **kwargs):
    raise NotImplementedError()


def test_messages_say_what_to_fix():
    cases = [
        ("encode", mistakes.encode_relu_before_bias,
         "encode returned negative latent activations: .* so apply the ReLU last"),
        ("topk_encode", mistakes.topk_kthvalue_threshold,
         "topk_encode\\(sae, x, k=1\\) left more than 1 latents active in an input: keep the k "
         "largest pre-activations of each input"),
        ("topk_encode", mistakes.topk_without_relu,
         "returned negative latent activations: apply a ReLU to the kept values"),
        ("sae_loss", mistakes.loss_only,
         "sae_loss should return \\(loss, reconstruction, sparsity\\), a tuple of three 0-d "
         "tensors, got Tensor"),
        ("sae_loss", mistakes.loss_mse,
         "the reconstruction term of sae_loss on a random ReLU SAE is averaged over d_in: sum "
         "the squared error over d_in and average over the batch"),
        ("sae_loss", mistakes.loss_summed_over_the_batch,
         "the reconstruction term of sae_loss on a random ReLU SAE is summed over the batch"),
        ("sae_loss", mistakes.loss_without_decoder_norms,
         "the sparsity term of sae_loss on a random ReLU SAE ignores the decoder norms: weight "
         "each latent's activation by the norm of its row of W_dec"),
        ("sae_loss", mistakes.loss_relu_encoder_only,
         "the reconstruction term of sae_loss on a random TopK SAE \\(k = 1\\)"),
        ("sae_loss", mistakes.loss_with_norms_by_hand,
         "the loss of sae_loss on a random ReLU SAE has a NaN or infinite gradient"),
        ("sae_loss", mistakes.loss_latents_under_no_grad,
         "has the right value but the wrong gradient for sae.W_enc: detach no part of it"),
        ("training_step", mistakes.step_without_zero_grad,
         "sae.W_enc after step 2 of training_step on a random ReLU SAE has wrong values .* "
         "clear the gradients \\(optimizer.zero_grad\\(\\)\\)"),
        ("training_step", mistakes.step_loss_with_norms_by_hand,
         "the SAE's parameters are NaN or infinite after step 1 of training_step on a random "
         "ReLU SAE: the loss or its gradient divides by zero somewhere"),
        ("training_step", mistakes.step_returns_a_tensor,
         "training_step returned a tensor: return the loss as a float \\(loss.item\\(\\)\\)"),
        ("mmcs", mistakes.mmcs_unsigned,
         "mmcs of 3 decoder rows against 7 true features: expected .*the largest cosine "
         "similarity \\(signed\\)"),
        ("resample_dead_latents", mistakes.resample_replaces_parameters,
         "after resample_dead_latents, sae.W_enc is no longer the trainable parameter the "
         "optimiser holds: change it in place under torch.no_grad\\(\\)"),
        ("resample_dead_latents", mistakes.resample_keeps_encoder_bias,
         "sae.b_enc after resample_dead_latents on a random ReLU SAE, some dead latents"),
        ("resample_dead_latents", mistakes.resample_without_a_scale_when_none_is_alive,
         "more dead latents than inputs contains NaN or infinite values"),
        ("sae_statistics", mistakes.stats_density_per_input,
         "density on a random ReLU SAE: expected shape \\(15,\\), got \\(11,\\)"),
        ("ce_loss_recovered", mistakes.ce_splices_bos_too,
         "ce_loss_recovered\\(\\)\\['sae'\\] on a random 2-layer model with a TopK SAE at "
         "blocks.0.hook_resid_post: .* at every position but 0"),
        ("ce_loss_recovered", mistakes.ce_activations_not_flattened,
         "`ce_loss_recovered` raised ValueError at .*: the activations have shape \\(3, 6, "
         "24\\), but this SAE reads \\(batch, 24\\): flatten batch and positions, and take the "
         "SAE's own hook \\(blocks.0.hook_resid_post\\)"),
        ("precision_recall", mistakes.pr_nan_for_silent_units,
         "the precision of each unit contains NaN or infinite values"),
        ("steer", mistakes.steer_returns_prompt_and_new_tokens,
         "steer\\(..., alpha=0.0, n_new=4\\) at blocks.0.hook_resid_post: expected shape "
         "\\(3, 4\\), got \\(3, 9\\): .* and return only the new tokens"),
    ]
    for name, mistake, fragment in cases:
        with pytest.raises(CheckFailed, match=fragment):
            check_of(name)(mistake)


def test_activations_of_the_wrong_width_are_named():
    for sae in (checks.random_sae(0), checks.random_sae(100, k=2)):
        d_in = sae.W_enc.shape[0]
        with pytest.raises(ValueError, match=(
                f"the activations have shape \\(2, 3, {d_in}\\), but this SAE reads \\(batch, "
                f"{d_in}\\): flatten batch and positions, and take the SAE's own hook "
                f"\\(blocks.0.hook_resid_post\\)")):
            solution.latents(sae, torch.zeros(2, 3, d_in))
        with pytest.raises(ValueError, match=f"shape \\(4, {d_in + 1}\\), but this SAE reads "
                                             f"\\(batch, {d_in}\\)"):
            solution.check_width(sae, torch.zeros(4, d_in + 1))
        solution.check_width(sae, torch.zeros(4, d_in))
        assert solution.latents(sae, torch.zeros(4, d_in)).shape == (4, sae.W_enc.shape[1])


def test_an_input_changed_in_place_is_put_back(monkeypatch):
    given = []

    def recorded_inputs(seed, sae, batch=None):
        x = inputs(seed, sae, batch)
        given.append((x, x.clone()))
        return x

    inputs = checks._inputs
    monkeypatch.setattr(checks, "_inputs", recorded_inputs)
    with pytest.raises(CheckFailed, match="`encode` changed its input \\(argument 2\\) in place "
                                          "\\(now put back\\): work on a copy"):
        checks.check_encode(mistakes.encode_centres_in_place)
    with pytest.raises(CheckFailed, match="`sae_statistics` changed its input \\(argument 2\\) "
                                          "in place \\(now put back\\)"):
        checks.check_sae_statistics(mistakes.stats_centres_x_in_place)
    assert len(given) == 3
    for x, before in given:
        assert torch.equal(x, before)
    with pytest.raises(CheckFailed, match="`steer` changed its input \\(argument 4\\) in place"):
        checks.check_steer(mistakes.steer_scales_direction_in_place)


def test_a_hook_left_on_the_model_is_removed_and_reported(monkeypatch):
    models = []

    def recorded_model(*args, **kwargs):
        models.append(random_test_model(*args, **kwargs))
        return models[-1]

    random_test_model = checks.random_test_model
    monkeypatch.setattr(checks, "random_test_model", recorded_model)
    with pytest.raises(CheckFailed, match="`steer` left 1 hook on the model \\(now removed\\): "
                                          "register hooks through `patched`"):
        checks.check_steer(mistakes.steer_hook_left_behind)
    with pytest.raises(CheckFailed, match="`ce_loss_recovered` left 2 hooks on the model \\(now "
                                          "removed\\)"):
        checks.check_ce_loss_recovered(mistakes.ce_hooks_left_behind, seeds=(1,))
    assert len(models) == 2
    for model in models:
        assert hooks_on(model) == 0


def test_calling_the_solution_module_earns_nothing():
    with pytest.raises(CheckFailed, match="uses the chapter's solution module"):
        checks.check_encode(solution.encode)
    wrapped = answer("topk_encode", source=(
        "def topk_encode(sae, x, k):\n"
        "    from reference_impl.sae.solutions import topk_encode as answer\n"
        "    return answer(sae, x, k)\n"))
    with pytest.raises(CheckFailed, match="imports `reference_impl.sae.solutions`"):
        checks.check_topk_encode(wrapped)


def test_each_exercise_is_graded_alone():
    """Each answer is graded with the reference versions of the functions it builds on (and of
    the ones the notebook gives), even when the learner's own are unfinished."""
    unfinished = dict.fromkeys(("encode", "decode", "topk_encode", "latents", "sae_loss"),
                               not_written_yet)
    checks.check_sae_loss(answer("sae_loss", **unfinished))
    checks.check_training_step(answer("training_step", **unfinished))


@pytest.mark.parametrize("name", ["resample_dead_latents", "sae_statistics"])
def test_a_decorated_answer_is_graded_alone(name):
    unfinished = dict.fromkeys(("encode", "decode", "topk_encode", "latents"), not_written_yet)
    check_of(name)(answer(name, **unfinished))


def test_correct_answers_written_differently_pass():
    sae_loss = answer("sae_loss", source=(
        "def sae_loss(sae, x, l1_coefficient):\n"
        "    f = latents(sae, x)\n"
        "    reconstruction = F.mse_loss(decode(sae, f), x, reduction='sum') / len(x)\n"
        "    norms = torch.linalg.vector_norm(sae.W_dec, dim=1)\n"
        "    sparsity = torch.einsum('bs,s->b', f, norms).mean()\n"
        "    return reconstruction + l1_coefficient * sparsity, reconstruction, sparsity\n"))
    checks.check_sae_loss(sae_loss)
    resample = answer("resample_dead_latents", source=(
        "def resample_dead_latents(sae, x, dead):\n"
        "    with torch.no_grad():\n"
        "        errors = ((decode(sae, latents(sae, x)) - x) ** 2).sum(dim=-1)\n"
        "        order = errors.sort(descending=True).indices.tolist()\n"
        "        live = [i for i in range(len(dead)) if not dead[i]]\n"
        "        scale = sae.W_enc[:, live].norm(dim=0).mean() if live else 1.0\n"
        "        for j, i in enumerate(dead.nonzero().flatten().tolist()):\n"
        "            direction = x[order[j % len(x)]] - sae.b_dec\n"
        "            direction = direction / direction.norm()\n"
        "            sae.W_dec[i] = direction\n"
        "            sae.W_enc[:, i] = 0.2 * scale * direction\n"
        "            sae.b_enc[i] = 0.0\n"))
    checks.check_resample_dead_latents(resample)
    training_step = answer("training_step", source=(
        "def training_step(sae, optimizer, x, l1_coefficient):\n"
        "    optimizer.zero_grad(set_to_none=False)\n"
        "    loss = sae_loss(sae, x, l1_coefficient)[0]\n"
        "    loss.backward()\n"
        "    optimizer.step()\n"
        "    return float(loss)\n"))
    checks.check_training_step(training_step)
