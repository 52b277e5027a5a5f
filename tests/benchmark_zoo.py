"""Time the zoo: retraining every model from scratch, and the cost of caching activations.

    python -m tests.benchmark_zoo [--skip-training]

Prints, per model, the seconds `mechinterp zoo train` spends training and measuring (nothing is
written), and whether the retrained model meets its bars; then, on the largest zoo model at
batch 32 x its full context, a plain eager forward pass against `run_with_cache` of every
activation (median of 30 alternating runs each).
"""

import statistics
import sys
import time

import torch

from reference_impl.hooks import run_with_cache
from reference_impl.zoo import load_model
from reference_impl.zoo.bars import RETRAIN_STANDARD_ERRORS, unmet
from reference_impl.zoo.recipes import RECIPES, language_models, recipe


def retrain_all():
    total = 0.0
    print(f"{'model':<18} {'train + measure':>16}  bars")
    for name in RECIPES:
        module = recipe(name)
        start = time.perf_counter()
        model, tokenizer, _ = module.train(seed=0, progress=False)
        failed = unmet(module.BARS, module.measure(model, tokenizer), RETRAIN_STANDARD_ERRORS)
        seconds = time.perf_counter() - start
        total += seconds
        print(f"{name:<18} {seconds:>15.0f}s  {'all met' if not failed else failed}", flush=True)
    print(f"{'whole zoo':<18} {total:>15.0f}s ({total / 60:.1f} min)")


def median_seconds(runs, repeats=30):
    """The median time of each run; the runs alternate, so a busy moment slows all alike."""
    times = [[] for _ in runs]
    for repeat in range(repeats + 1):
        for run, seconds in zip(runs, times):
            start = time.perf_counter()
            run()
            if repeat:  # the first round warms up
                seconds.append(time.perf_counter() - start)
    return [statistics.median(seconds) for seconds in times]


def caching_overhead():
    models = {name: load_model(name)[0] for name in language_models()}
    name, model = max(models.items(), key=lambda item: item[1].num_parameters())
    tokens = torch.randint(2, model.config.vocab_size, (32, model.config.n_positions),
                           generator=torch.Generator().manual_seed(0))
    def plain_forward():
        with torch.no_grad():
            model(tokens)

    plain, cached = median_seconds([plain_forward, lambda: run_with_cache(model, tokens)])
    print(f"\ncaching every activation on {name} ({model.num_parameters() / 1e6:.2f}M parameters, "
          f"batch 32 x {model.config.n_positions}): plain {plain * 1e3:.1f} ms, "
          f"cached {cached * 1e3:.1f} ms, ratio {cached / plain:.2f}x")


if __name__ == "__main__":
    torch.set_num_threads(1)  # as `mechinterp zoo train` does
    print(f"torch threads: {torch.get_num_threads()}")
    if "--skip-training" not in sys.argv:
        retrain_all()
    caching_overhead()
