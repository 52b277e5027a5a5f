"""The model zoo: small GPT-2 models the course trains itself and ships as checkpoints.

Each model lives in ``reference_impl/zoo/models/<name>/`` as ``model.safetensors``,
``config.json``, ``tokenizer.json`` and ``tokenizer_config.json`` (which names the special
tokens), plus ``training_log.json``; and ``manifest.json`` beside
this file records the sha256 of every file. ``load_model(name)`` loads a zoo model offline and
checks those hashes; any other name goes to ``transformers``' ``from_pretrained``.

Architectural variations are recorded in ``config.json`` and applied on load:
``"attention_only": true`` replaces every block's MLP by zero (the block keeps its LayerNorms).
"""

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from reference_impl.errors import CourseError

ZOO_DIR = Path(__file__).resolve().parent
MODELS_DIR = ZOO_DIR / "models"
MANIFEST = ZOO_DIR / "manifest.json"
CHECKPOINT_FILES = ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json",
                    "training_log.json")
SAE_FILES = ("sae.safetensors", "cfg.json", "training_log.json")


class ZooError(CourseError, RuntimeError):
    pass


class NoMLP(torch.nn.Module):
    """Stands in for the MLP of an attention-only block: contributes nothing."""

    def forward(self, hidden_states):
        return torch.zeros_like(hidden_states)


def apply_variations(model):
    """Give a freshly built model the architecture its config describes."""
    if getattr(model.config, "attention_only", False):
        for block in model.transformer.h:
            block.mlp = NoMLP()
    return model


def build_model(config):
    """A randomly initialised zoo-style model (eager attention, variations applied)."""
    model = GPT2LMHeadModel(config)
    model.set_attn_implementation("eager")
    return apply_variations(model)


def random_test_model(seed, n_layer, attention_only):
    """A small random GPT-2 whose sizes depend on ``seed``, for grading checks: 2-4 heads of size
    3-6, a vocabulary of 30-59 tokens, untied embeddings, large weights, and LayerNorms that are
    not the identity (so that an answer that skips one is wrong)."""
    g = torch.Generator().manual_seed(seed)

    def pick(lo, hi):
        return int(torch.randint(lo, hi, (), generator=g))

    n_head, d_head = pick(2, 5), pick(3, 7)
    config = GPT2Config(vocab_size=pick(30, 60), n_positions=40, n_embd=n_head * d_head,
                        n_layer=n_layer, n_head=n_head, initializer_range=0.3,
                        bos_token_id=0, eos_token_id=0,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        tie_word_embeddings=False, attention_only=attention_only)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build_model(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".ln_" in name or "ln_f" in name:
                param.copy_((1.0 if name.endswith("weight") else 0.0)
                            + 0.3 * torch.randn(param.shape, generator=g))
    return model.eval()


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_manifest():
    return json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}


def zoo_names():
    return sorted(read_manifest())


def verify_checksums(name):
    """Return a list of files of a zoo model whose sha256 differs from the manifest."""
    expected = read_manifest()[name]
    directory = MODELS_DIR / name
    return [f for f, digest in expected.items()
            if not (directory / f).exists() or sha256(directory / f) != digest]


def save_checkpoint(model, tokenizer, training_log, name):
    """Write a zoo model's files and record their hashes in the manifest. An SAE (whose
    ``save_pretrained`` writes ``SAE_FILES``) has no tokenizer: it reads its base model's."""
    directory = MODELS_DIR / name
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    (directory / "generation_config.json").unlink(missing_ok=True)
    files = CHECKPOINT_FILES
    if tokenizer is None:
        files = SAE_FILES
    else:
        tokenizer.save_pretrained(directory)
        for extra in ("special_tokens_map.json", "chat_template.jinja"):
            (directory / extra).unlink(missing_ok=True)
    (directory / "training_log.json").write_text(json.dumps(training_log))
    manifest = read_manifest()
    manifest[name] = {f: sha256(directory / f) for f in files}
    MANIFEST.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _checked(name):
    """The folder of a shipped zoo entry whose files match the manifest."""
    changed = verify_checksums(name)
    if changed:
        raise ZooError(f"the files {', '.join(changed)} of zoo model {name!r} do not match "
                       f"the manifest: restore them, or retrain with `mechinterp zoo train "
                       f"{name}`")
    return MODELS_DIR / name


def load_sae(name):
    """A sparse autoencoder of the zoo (``SAE``, chapter 05), its files checked."""
    from reference_impl.sae.solutions import SAE

    if name not in read_manifest():
        raise ZooError(f"no SAE called {name!r} in the zoo: it has {', '.join(zoo_names())}")
    return SAE.from_pretrained(_checked(name))


def load_model(name):
    """(model, tokenizer) for a zoo model, or for any name ``from_pretrained`` understands."""
    if name in read_manifest():
        directory = _checked(name)
        if not (directory / "config.json").exists():
            raise ZooError(f"{name!r} is a sparse autoencoder, not a model: load it with "
                           f"load_sae({name!r})")
        config = GPT2Config.from_pretrained(directory)
        model = build_model(config)
        missing, unexpected = model.load_state_dict(load_file(directory / "model.safetensors"),
                                                    strict=False)
        if unexpected or set(missing) - {"lm_head.weight"}:
            raise ZooError(f"zoo model {name!r} does not match its config: missing {missing}, "
                           f"unexpected {unexpected}")
        model.tie_weights()
        return model.eval(), PreTrainedTokenizerFast.from_pretrained(directory)
    try:
        from transformers import AutoTokenizer

        model = GPT2LMHeadModel.from_pretrained(name, attn_implementation="eager")
        return model.eval(), AutoTokenizer.from_pretrained(name)
    except OSError as error:
        raise ZooError(f"cannot load {name!r}: it is not in the zoo ({', '.join(zoo_names())}) "
                       f"and could not be loaded with from_pretrained ({error})") from None
