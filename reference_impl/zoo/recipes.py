"""How each zoo model is trained and verified.

Every recipe is a module of this package with ``NAME``, ``DESCRIPTION``, ``BARS``,
``train(seed, progress) -> (model, tokenizer, training_log)`` and
``measure(model, tokenizer) -> metrics``. A recipe whose product is not a language model (an
SAE) also has ``load() -> (product, None)``, and its ``train`` returns None for the tokenizer.
Verification recomputes the metrics from the shipped files, so a checkpoint that loads is also
a checkpoint that still does what the chapters say.
"""

import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import reference_impl.zoo as zoo
from .bars import unmet

# Model name -> the module that trains and measures it.
RECIPES = {
    "attn-only-2l": "reference_impl.zoo.attn_only",
    "world-5l": "reference_impl.zoo.world_model",
    "facts-6l": "reference_impl.zoo.facts_model",
    "world-5l-sae": "reference_impl.zoo.world_sae",
    "world-5l-sae-topk": "reference_impl.zoo.world_sae_topk",
    "liars-6l": "reference_impl.zoo.liars_model",
}
MAX_CHECKPOINT_MB = 10.0
# The zoo's site page; each model's bar table sits between <!-- bars: NAME --> and <!-- /bars -->.
ZOO_PAGE = Path(zoo.__file__).resolve().parents[2] / "chapters" / "zoo.md"


def recipe(name):
    if name not in RECIPES:
        raise zoo.ZooError(f"no zoo model called {name!r}; the zoo has: {', '.join(RECIPES)}")
    return importlib.import_module(RECIPES[name])


def language_models():
    """The zoo's GPT-2 models, without the sparse autoencoders that read them."""
    return [name for name in RECIPES if not hasattr(recipe(name), "load")]


def load(name):
    """(model, tokenizer) of a shipped zoo entry; (SAE, None) for a sparse autoencoder."""
    module = recipe(name)
    return module.load() if hasattr(module, "load") else zoo.load_model(name)


def checkpoint_mb(name):
    directory = zoo.MODELS_DIR / name
    return sum((directory / f).stat().st_size for f in zoo.read_manifest()[name]) / 1e6


def train_and_save(name, seed=0, progress=True):
    """Train a zoo model from scratch, measure it, and write its checkpoint and manifest entry.

    The measured metrics are stored in the training log, so the log records what the
    checkpoint did when it was made."""
    module = recipe(name)
    model, tokenizer, log = module.train(seed=seed, progress=progress)
    metrics = module.measure(model, tokenizer)
    log["metrics"] = metrics
    zoo.save_checkpoint(model, tokenizer, log, name)
    if ZOO_PAGE.exists():
        ZOO_PAGE.write_text(with_page_sections(ZOO_PAGE.read_text(), name, metrics))
    return metrics


@dataclass
class Verification:
    name: str
    changed_files: list = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    failed_bars: list = field(default_factory=list)
    size_mb: float = 0.0
    error: str = ""

    @property
    def ok(self):
        return (not self.error and not self.changed_files and not self.failed_bars
                and self.size_mb <= MAX_CHECKPOINT_MB)


def verify(name):
    """Recompute the checksums and every behaviour metric of a shipped model."""
    module = recipe(name)
    if name not in zoo.read_manifest():
        return Verification(name, error=f"not trained yet: run `mechinterp zoo train {name}`")
    result = Verification(name, changed_files=zoo.verify_checksums(name),
                          size_mb=checkpoint_mb(name))
    if result.changed_files:
        return result
    result.metrics = module.measure(*load(name))
    result.failed_bars = unmet(module.BARS, result.metrics)
    return result


def bar_table(name, metrics):
    """A Markdown table of a model's bars: requirement, measured value, met or not."""
    rows = ["| metric | bar | measured | |", "|---|---|---|---|"]
    for bar in recipe(name).BARS:
        value = metrics.get(bar.metric, float("nan"))
        rows.append(f"| {bar.description} (`{bar.metric}`) | {bar.op} {bar.threshold:g} "
                    f"| {value:.3g} | {'met' if bar.met(metrics) else 'NOT MET'} |")
    return "\n".join(rows)


def _block(kind, name):
    return re.compile(rf"(<!-- {kind}: {re.escape(name)} -->\n).*?(<!-- /{kind} -->)", re.S)


def page_sections(name, metrics):
    """What the page shows of a model's metrics: its bar table, and the findings its recipe
    writes (``findings(metrics)``, for recipes that have one)."""
    sections = {"bars": bar_table(name, metrics)}
    if hasattr(recipe(name), "findings"):
        sections["findings"] = recipe(name).findings(metrics)
    return sections


def with_page_sections(page, name, metrics):
    """``page`` with the bar table (and findings) of ``name`` replaced by those of ``metrics``."""
    for kind, text in page_sections(name, metrics).items():
        page = _block(kind, name).sub(lambda m: m[1] + text + "\n" + m[2], page)
    return page


def page_section(page, name, kind="bars"):
    """A section of ``name`` as the page shows it (None if the page has no such block)."""
    match = _block(kind, name).search(page)
    return match and match[0].split("\n", 1)[1].rsplit("\n", 1)[0]
