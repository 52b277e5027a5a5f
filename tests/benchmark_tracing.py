"""Time causal tracing of one prompt: `reference_impl.rome.solutions.trace` (batched, each pass starting at
the first restored layer) against a loop of one forward pass per restoration (`restored_probabilities`).

    python -m tests.benchmark_tracing

Runs on a model with MLPs of the zoo's size (4 layers, d_model 128, randomly initialised, so the
figure does not depend on any checkpoint), a 12-token prompt with a 2-token subject, 10 noisy
copies, for each site and for windows of 1 and 2 layers.
"""

import time

import torch
from transformers import GPT2Config

from reference_impl.rome.solutions import subject_noise, trace
from reference_impl.zoo import build_model
from tests.rome.test_tracing import trace_one_at_a_time


def seconds(run):
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_model(GPT2Config(n_layer=4, n_head=4, n_embd=128, n_positions=32,
                                   vocab_size=300, bos_token_id=0, eos_token_id=0)).eval()
    tokens = torch.randint(2, 300, (12,), generator=torch.Generator().manual_seed(0))
    noise = subject_noise(10, 2, 128, 0.3)
    print(f"{'site':<6} {'window':>6} {'batched':>9} {'loop':>9} {'speed-up':>9}")
    for kind in ("resid", "mlp", "attn"):
        for window in (1, 2):
            batched = seconds(lambda: trace(model, tokens, (1, 3), 5, noise, kind, window))
            loop = seconds(lambda: trace_one_at_a_time(model, tokens, (1, 3), 5, noise, kind,
                                                       window))
            print(f"{kind:<6} {window:>6} {batched:>8.2f}s {loop:>8.2f}s {loop / batched:>8.1f}x")


if __name__ == "__main__":
    main()
