"""world-5l-sae: a sparse autoencoder on world-5l's residual stream after block 2.

Trained on the activations of world-5l (the shipped checkpoint) over its own training text, every
token but BOS, with the chapter's own code: ``reference_impl.sae.solutions.train_sae``, the L1
penalty weighted by decoder norms, and dead latents resampled during training.
"""

import time

import torch

from reference_impl import zoo
from reference_impl.sae.data import HOOK_NAME, token_activations, world_texts
from reference_impl.sae.solutions import SAE, ce_loss_recovered, sae_statistics, train_sae
from reference_impl.zoo.bars import Bar
from reference_impl.zoo.training import encode_batch

NAME = "world-5l-sae"
BASE_MODEL = "world-5l"
RECIPE = dict(hook_name=HOOK_NAME, d_sae=1024, k=None, l1_coefficient=1.0, steps=2000,
              batch_size=1024, lr=2e-3, resample_at=(500, 1000), held_out_texts=1000)
DESCRIPTION = (
    f"A sparse autoencoder with {RECIPE['d_sae']} latents on world-5l's residual stream after "
    f"block 2 ({HOOK_NAME}), trained on the model's own training text with an L1 penalty "
    f"weighted by decoder norms (chapter 05)."
)
BARS = (
    Bar("l0", "<=", 32, "mean number of active latents per token"),
    Bar("fvu", "<=", 0.15, "fraction of the activations' variance left unexplained"),
    Bar("ce_loss_recovered", ">=", 0.90,
        "share of the loss increase of zero ablation that splicing in the SAE avoids"),
    Bar("dead_fraction", "<=", 0.10, "share of latents that never fire on the held-out text"),
)


def _texts():
    """(training texts, held-out texts): the model's training text in a fixed shuffled order,
    the last ``held_out_texts`` kept for measuring."""
    texts = world_texts()
    return texts[:-RECIPE["held_out_texts"]], texts[-RECIPE["held_out_texts"]:]


def train(seed: int = 0, progress: bool = True, recipe=RECIPE):
    start = time.time()
    model, tokenizer = zoo.load_model(BASE_MODEL)
    train_texts, _ = _texts()
    activations = token_activations(model, tokenizer, train_texts)[HOOK_NAME].activations
    r = recipe
    sae = SAE(model.config.n_embd, r["d_sae"], k=r["k"], hook_name=r["hook_name"], seed=seed)
    # The decoder bias starts at the mean activation: the SAE need not spend latents on it.
    with torch.no_grad():
        sae.b_dec.copy_(activations.mean(dim=0))
    log = train_sae(sae, activations, r["steps"], batch_size=r["batch_size"], lr=r["lr"],
                    l1_coefficient=r["l1_coefficient"], resample_at=r["resample_at"],
                    seed=seed, progress=progress)
    log = {"recipe": {**r, "seed": seed, "n_tokens": len(activations)},
           "steps": list(range(0, r["steps"], 50)), "loss": [round(v, 4) for v in log["loss"][::50]],
           "dead_at_resampling": log["resampled"], "train_seconds": round(time.time() - start)}
    return sae.eval(), None, log


def load(name=NAME):
    return zoo.load_sae(name), None


@torch.no_grad()
def measure(sae, tokenizer=None):
    model, tokenizer = zoo.load_model(BASE_MODEL)
    _, held_out = _texts()
    acts = token_activations(model, tokenizer, held_out)[HOOK_NAME]
    stats = sae_statistics(sae, acts.activations)
    tokens, mask = encode_batch(tokenizer, held_out)
    loss = ce_loss_recovered(model, sae, tokens, mask)
    return {"l0": stats["l0"], "fvu": stats["fvu"], "ce_loss_recovered": loss["recovered"],
            "ce_loss_clean": loss["clean"], "ce_loss_sae": loss["sae"],
            "ce_loss_zero": loss["zero"],
            "dead_fraction": (stats["density"] == 0).float().mean().item(),
            "dense_fraction": (stats["density"] > 0.1).float().mean().item(),
            "n_tokens": len(acts.activations)}
