"""Time attribution patching against activation patching on the grids chapter 04 draws.

    python -m tests.benchmark_patching

On `world-5l` and the chapter's patching batch (the first 12 held-out prompts of its last
template), prints the time of each activation-patching grid (the residual stream, layer ×
position, and every head's output), of one attribution-patching pass that estimates both, the
speed-up, and how well the estimate agrees (Pearson correlation, per grid).
"""

import time

import torch

from reference_impl.ioi_circuit import solutions
from reference_impl.ioi_circuit.data import first, heldout_batches
from reference_impl.zoo import load_model


def timed(run):
    start = time.perf_counter()
    result = run()
    return result, time.perf_counter() - start


def main():
    torch.set_num_threads(1)
    model, tokenizer = load_model("world-5l")
    batch = first(heldout_batches(tokenizer)[-1], 12)
    n_layer = model.config.n_layer

    def metric(final_logits):
        return solutions.logit_diff(final_logits, batch.io, batch.s).mean()

    args = (model, batch.tokens, batch.corrupted, metric)
    residual, residual_time = timed(lambda: solutions.residual_patching(*args))
    heads, heads_time = timed(lambda: solutions.head_patching(*args))
    names = ([f"blocks.{layer}.hook_resid_pre" for layer in range(n_layer)]
             + [f"blocks.{layer}.attn.hook_z" for layer in range(n_layer)])
    estimates, attribution_time = timed(lambda: solutions.attribution_patching(*args, names))
    residual_estimate = torch.stack([estimates[f"blocks.{layer}.hook_resid_pre"].sum(dim=-1)
                                     for layer in range(n_layer)])
    head_estimate = torch.stack([estimates[f"blocks.{layer}.attn.hook_z"].sum(dim=(0, 2))
                                 for layer in range(n_layer)])

    def pearson(a, b):
        return torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1].item()

    patching_time = residual_time + heads_time
    print(f"activation patching: residual grid {tuple(residual.shape)} {residual_time:.2f}s, "
          f"head grid {tuple(heads.shape)} {heads_time:.2f}s, together {patching_time:.2f}s")
    print(f"attribution patching, both grids at once: {attribution_time:.2f}s, "
          f"{patching_time / attribution_time:.0f}x faster")
    print(f"Pearson: residual grid {pearson(residual_estimate, residual):.3f}, "
          f"head grid {pearson(head_estimate, heads):.3f}")


if __name__ == "__main__":
    main()
