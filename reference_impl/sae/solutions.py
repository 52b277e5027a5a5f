"""Chapter 05 reference solutions: sparse autoencoders.

Every exercise of the chapter is one function here. The chapter notebooks are generated from these
functions: the body after the docstring is the solution region that learners write themselves.

Conventions: an SAE is an ``SAE`` (below) with SAELens's parameter names and shapes: ``W_enc``
(d_in, d_sae), ``b_enc`` (d_sae,), ``W_dec`` (d_sae, d_in) and ``b_dec`` (d_in,). Activations
``x`` have shape (batch, d_in); latent activations ``f`` have shape (batch, d_sae). A model is a
``transformers`` GPT-2 and activation names are TransformerLens's (``blocks.2.hook_resid_post``).
"""

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from reference_impl.hooks import patched


class SAE(torch.nn.Module):
    """A sparse autoencoder over ``d_in``-dimensional activations with ``d_sae`` latents.

    ``k`` is None for a ReLU SAE trained with an L1 penalty, or the number of latents a TopK SAE
    keeps. ``hook_name`` says which activation of which model it reads (``cfg`` keeps all four).
    Initialisation: decoder rows in random directions with norm 0.1, the encoder their transpose,
    both biases zero.
    """

    def __init__(self, d_in, d_sae, k=None, hook_name=None, seed=0):
        super().__init__()
        self.cfg = {"d_in": d_in, "d_sae": d_sae, "k": k, "hook_name": hook_name}
        generator = torch.Generator().manual_seed(seed)
        W_dec = torch.randn(d_sae, d_in, generator=generator)
        W_dec = 0.1 * W_dec / W_dec.norm(dim=1, keepdim=True)
        self.W_enc = torch.nn.Parameter(W_dec.T.clone())
        self.b_enc = torch.nn.Parameter(torch.zeros(d_sae))
        self.W_dec = torch.nn.Parameter(W_dec)
        self.b_dec = torch.nn.Parameter(torch.zeros(d_in))

    @property
    def k(self):
        return self.cfg["k"]

    def save_pretrained(self, directory):
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({name: p.detach().contiguous() for name, p in self.named_parameters()},
                  directory / "sae.safetensors")
        (directory / "cfg.json").write_text(json.dumps(self.cfg, indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, directory):
        directory = Path(directory)
        sae = cls(**json.loads((directory / "cfg.json").read_text()))
        sae.load_state_dict(load_file(directory / "sae.safetensors"))
        return sae.eval()


# ---------------------------------------------------------------------------------------------
# 1 · The sparse autoencoder
# ---------------------------------------------------------------------------------------------


def encode(sae, x):
    """The latent activations of a ReLU SAE: ``ReLU((x − b_dec) W_enc + b_enc)``, (batch, d_sae).

    Subtracting the decoder bias first centres the input on the point the decoder adds back.
    """
    return F.relu((x - sae.b_dec) @ sae.W_enc + sae.b_enc)


def decode(sae, f):
    """The reconstruction ``f W_dec + b_dec``: (batch, d_in)."""
    return f @ sae.W_dec + sae.b_dec


def topk_encode(sae, x, k):
    """The latent activations of a TopK SAE: the same pre-activations as ``encode``, of which each
    input keeps only its ``k`` largest (then a ReLU, so a kept negative value is 0); every other
    latent is exactly 0. (batch, d_sae)."""
    pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
    values, indices = pre.topk(k, dim=-1)
    return torch.zeros_like(pre).scatter(-1, indices, F.relu(values))


def latents(sae, x):
    """The SAE's own encoder: TopK if it has a ``k``, otherwise ReLU."""
    check_width(sae, x)
    return encode(sae, x) if sae.k is None else topk_encode(sae, x, sae.k)


def check_width(sae, x):
    """A ValueError naming the mismatch if ``x`` is not (batch, d_in) activations for ``sae``."""
    d_in = sae.W_enc.shape[0]
    if x.ndim != 2 or x.shape[1] != d_in:
        raise ValueError(f"the activations have shape {tuple(x.shape)}, but this SAE reads "
                         f"(batch, {d_in}): flatten batch and positions, and take the SAE's "
                         f"own hook ({sae.cfg['hook_name']})")


# ---------------------------------------------------------------------------------------------
# 2 · The loss and the training step
# ---------------------------------------------------------------------------------------------


def sae_loss(sae, x, l1_coefficient):
    """(loss, reconstruction, sparsity), three 0-d tensors, with loss = reconstruction +
    l1_coefficient × sparsity.

    reconstruction: the squared error ‖x̂ − x‖², summed over d_in and averaged over the batch.
    sparsity: Σ_i f_i ‖W_dec,i‖, summed over latents and averaged over the batch. Weighting each
    latent by its decoder row's norm stops the SAE from shrinking f and growing W_dec to dodge
    the penalty. Latents come from ``latents(sae, x)``, so a TopK SAE is trained with the same
    loss (and l1_coefficient 0).
    """
    f = latents(sae, x)
    reconstruction = (decode(sae, f) - x).pow(2).sum(dim=-1).mean()
    sparsity = (f * sae.W_dec.norm(dim=1)).sum(dim=-1).mean()
    return reconstruction + l1_coefficient * sparsity, reconstruction, sparsity


def training_step(sae, optimizer, x, l1_coefficient):
    """One optimiser step on ``sae_loss(sae, x, l1_coefficient)``; returns the loss as a float.

    Clear the old gradients first, so each step follows this batch's gradient only.
    """
    loss, _, _ = sae_loss(sae, x, l1_coefficient)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def reset_optimizer_state(optimizer, sae, resampled):
    """Zero Adam's moments of the resampled latents' parameters, so that the old latent's
    momentum does not push its new direction away."""
    for param, rows in ((sae.W_enc, (slice(None), resampled)), (sae.b_enc, resampled),
                        (sae.W_dec, resampled)):
        for moment in optimizer.state.get(param, {}).values():
            if isinstance(moment, torch.Tensor) and moment.shape == param.shape:
                moment[rows] = 0


def train_sae(sae, activations, steps, batch_size=1024, lr=1e-3, l1_coefficient=0.0,
              resample_at=(), seed=0, progress=True):
    """Train ``sae`` on rows of ``activations`` (n, d_in) with Adam and ``training_step``.

    The L1 coefficient rises linearly over the first 5 % of steps, and the learning rate falls
    linearly to zero over the last 20 %. At each step of ``resample_at``, the latents that have
    not fired since the previous resampling (or the start) are resampled by
    ``resample_dead_latents`` on a sample of inputs. Returns a log: the loss of every step and
    the dead fraction at each resampling.
    """
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(sae.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (steps - step) / (0.2 * steps)))
    fired = torch.zeros(sae.W_enc.shape[1], dtype=torch.bool)
    log = {"loss": [], "resampled": []}
    for step in tqdm(range(steps), disable=not progress, desc="training the SAE"):
        x = activations[torch.randint(0, len(activations), (batch_size,), generator=generator)]
        coefficient = l1_coefficient * min(1.0, (step + 1) / (0.05 * steps))
        log["loss"].append(training_step(sae, optimizer, x, coefficient))
        if not all(torch.isfinite(p).all() for p in sae.parameters()):
            raise ValueError(f"the SAE's parameters became NaN or infinite at step {step}: "
                             f"check training_step and sae_loss, or lower the learning rate")
        schedule.step()
        if resample_at:
            with torch.no_grad():
                fired |= (latents(sae, x) > 0).any(dim=0)
            if step + 1 in resample_at:
                dead = ~fired
                log["resampled"].append(dead.float().mean().item())
                sample = activations[torch.randint(0, len(activations), (8 * batch_size,),
                                                   generator=generator)]
                resample_dead_latents(sae, sample, dead)
                reset_optimizer_state(optimizer, sae, dead)
                fired[:] = False
    return log


# ---------------------------------------------------------------------------------------------
# 3 · Ground truth: do the decoder's directions match the true features?
# ---------------------------------------------------------------------------------------------


def mmcs(W_dec, true_features):
    """Mean max cosine similarity: for each true feature (a row of ``true_features``, (n, d_in)),
    the largest cosine similarity with any decoder row (W_dec: (d_sae, d_in)), averaged over the
    true features. 1 means every true feature has a latent pointing exactly its way."""
    cosines = F.normalize(true_features, dim=-1) @ F.normalize(W_dec, dim=-1).T
    return cosines.max(dim=1).values.mean().item()


# ---------------------------------------------------------------------------------------------
# 4 · Dead latents
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def resample_dead_latents(sae, x, dead):
    """Re-initialise the ``dead`` latents (a (d_sae,) bool mask) towards the inputs of ``x``
    (batch, d_in) that the SAE reconstructs worst, in place.

    Rank the inputs by squared reconstruction error, worst first; the j-th dead latent (in index
    order) takes the j-th worst input (going round again if there are more dead latents than
    inputs). Its decoder row becomes that input minus b_dec, normalised to norm 1; its encoder
    column the same direction times 0.2 × the mean norm of the live latents' encoder columns (1
    if none is alive); its encoder bias 0. Live latents are untouched.
    """
    indices = dead.nonzero().flatten()
    if len(indices) == 0:
        return
    errors = (decode(sae, latents(sae, x)) - x).pow(2).sum(dim=-1)
    worst = errors.argsort(descending=True)
    inputs = x[worst[torch.arange(len(indices)) % len(x)]]
    directions = F.normalize(inputs - sae.b_dec, dim=-1)
    alive = sae.W_enc[:, ~dead]
    scale = alive.norm(dim=0).mean() if alive.shape[1] else torch.tensor(1.0)
    sae.W_dec[indices] = directions
    sae.W_enc[:, indices] = 0.2 * scale * directions.T
    sae.b_enc[indices] = 0.0


# ---------------------------------------------------------------------------------------------
# 5 · Evaluating an SAE on a language model
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def sae_statistics(sae, x):
    """What an SAE does to activations ``x`` (batch, d_in), with its own encoder (``latents``):

    ``l0``: the mean number of latents active (> 0) per input, a float;
    ``fvu``: the fraction of variance unexplained, Σ‖x − x̂‖² / Σ‖x − mean(x)‖² over the batch,
    a float;
    ``density``: the fraction of inputs on which each latent is active, a (d_sae,) tensor.
    """
    f = latents(sae, x)
    active = f > 0
    fvu = (decode(sae, f) - x).pow(2).sum() / (x - x.mean(dim=0)).pow(2).sum()
    return {"l0": active.float().sum(dim=-1).mean().item(), "fvu": fvu.item(),
            "density": active.float().mean(dim=0)}


def masked_next_token_loss(logits, tokens, loss_mask):
    """The mean next-token cross-entropy of ``tokens`` (batch, pos) over the predicted positions
    where ``loss_mask`` (batch, pos − 1) is 1."""
    losses = F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none")
    return (losses * loss_mask).sum() / loss_mask.sum()


@torch.no_grad()
def ce_loss_recovered(model, sae, tokens, loss_mask):
    """How much of the model's next-token loss survives when the SAE's reconstruction replaces
    the activation it reads (``sae.cfg["hook_name"]``), as a dict of floats:

    ``clean``: the model's loss; ``sae``: with the reconstruction spliced in; ``zero``: with the
    activation set to zero; ``recovered``: (zero − sae) / (zero − clean), 1 for a perfect SAE.
    Position 0 (BOS, whose activation is unlike every other and which the SAE never saw) keeps
    its own activation in both replacements. Losses use ``masked_next_token_loss``.
    """
    def replaced(new):
        def patch(activation, name):
            out = new(activation)
            out[:, 0] = activation[:, 0]
            return out
        return patch

    def loss(patches):
        with patched(model, patches):
            return masked_next_token_loss(model(tokens).logits, tokens, loss_mask).item()

    hook = sae.cfg["hook_name"]
    width = sae.W_enc.shape[0]
    reconstruct = replaced(lambda a: decode(sae, latents(sae, a.reshape(-1, width))).reshape(a.shape))
    clean = loss({})
    spliced = loss({hook: reconstruct})
    zero = loss({hook: replaced(torch.zeros_like)})
    return {"clean": clean, "sae": spliced, "zero": zero,
            "recovered": (zero - spliced) / (zero - clean)}


# ---------------------------------------------------------------------------------------------
# 6 · Reading features: latents and neurons as classifiers of a concept
# ---------------------------------------------------------------------------------------------


def precision_recall(activations, labels):
    """Each unit (a column of ``activations``, (n, units)) as a classifier that says "concept"
    when it is active (> 0), scored against ``labels`` (n,) bool: (precision, recall), two
    (units,) tensors. A unit that never fires has precision 0."""
    predicted = activations > 0
    true_positives = (predicted & labels[:, None]).sum(dim=0).float()
    precision = true_positives / predicted.sum(dim=0).clamp(min=1)
    recall = true_positives / labels.sum().clamp(min=1)
    return precision, recall


def precision_at_recall(activations, labels, recall):
    """Each unit as the classifier "activation ≥ t", with t the highest threshold at which it
    finds at least a share ``recall`` of the positives: its precision there, (units,).

    For a unit, t is the activation of the positive ranked ⌈recall × positives⌉-th from the top;
    every input at or above t counts as predicted, ties included.
    """
    needed = max(1, int(torch.tensor(recall * labels.sum().item()).ceil()))
    positives = activations[labels]
    threshold = positives.topk(needed, dim=0).values[-1]
    predicted = activations >= threshold
    return (predicted & labels[:, None]).sum(dim=0).float() / predicted.sum(dim=0)


# ---------------------------------------------------------------------------------------------
# 7 · Steering
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def steer(model, tokens, hook_name, direction, alpha, n_new):
    """Greedy completions of ``tokens`` (batch, pos) while ``alpha × direction`` (a (d_model,)
    vector) is added to the activation ``hook_name`` at every position of every forward pass:
    the ``n_new`` generated token ids, (batch, n_new)."""
    def add(activation, name):
        return activation + alpha * direction

    generated = tokens
    with patched(model, {hook_name: add}):
        for _ in range(n_new):
            next_token = model(generated).logits[:, -1].argmax(dim=-1, keepdim=True)
            generated = torch.cat([generated, next_token], dim=1)
    return generated[:, tokens.shape[1]:]
