"""Read and overwrite the activations of any `transformers` GPT-2 model by name.

``run_with_cache(model, input_ids)`` returns the logits and a dict of named activations;
``patched(model, {name: fn})`` is a context manager under which every forward pass replaces the
activation ``name`` by ``fn(activation, name)`` (return None to leave it as it is). Every hook is
removed on exit, also when an exception is raised. The same code works on the course's tiny
models and on a full-size GPT-2.

The names (``L`` is a layer index; shapes are for a batch of ``batch`` sequences of ``pos``
tokens):

| name | shape | what it is |
|---|---|---|
| ``embed`` | (batch, pos, d_model) | token embeddings |
| ``pos_embed`` | (1, pos, d_model) | position embeddings |
| ``blocks.L.resid_pre`` | (batch, pos, d_model) | residual stream entering block L |
| ``blocks.L.attn.q`` / ``.k`` / ``.v`` | (batch, pos, head, d_head) | queries, keys, values per head |
| ``blocks.L.attn.scores`` | (batch, head, query_pos, key_pos) | scaled, masked attention scores |
| ``blocks.L.attn.pattern`` | (batch, head, query_pos, key_pos) | attention probabilities |
| ``blocks.L.attn.z`` | (batch, pos, head, d_head) | pattern-weighted values per head |
| ``blocks.L.attn.result`` | (batch, pos, head, d_model) | what each head writes to the residual stream (z_h W_O^h, without the output bias) |
| ``blocks.L.attn_out`` | (batch, pos, d_model) | attention output: Σ_h result_h + output bias |
| ``blocks.L.resid_mid`` | (batch, pos, d_model) | resid_pre + attn_out |
| ``blocks.L.mlp.pre`` / ``.mlp.post`` | (batch, pos, d_mlp) | MLP activations before / after the nonlinearity |
| ``blocks.L.mlp_out`` | (batch, pos, d_model) | MLP output |
| ``blocks.L.resid_post`` | (batch, pos, d_model) | resid_mid + mlp_out, leaving block L |
| ``ln_final`` | (batch, pos, d_model) | the final LayerNorm's output, which the unembedding reads |

Attention is computed by the course's own copy of GPT-2's eager attention while hooks are active,
so that scores and pattern can be read and patched; outside the context the model is untouched.
"""

import contextlib
import contextvars

import torch
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, eager_mask

__all__ = ["run_with_cache", "patched", "hook_names"]

_IMPLEMENTATION = "mechinterp_hooked_eager"
_sessions = contextvars.ContextVar("mechinterp_hook_sessions", default=())


class _Session:
    """The hooks of one context: what to cache and what to patch."""

    def __init__(self, cache_names=None, patches=None):
        self.cache_names = cache_names  # a set of names, or None for nothing
        self.patches = patches or {}
        self.cache = {}

    def wants(self, name):
        return name in self.patches or (self.cache_names is not None and name in self.cache_names)

    def __call__(self, name, activation):
        """Patch, then cache, one activation; return what the model should continue with."""
        if name in self.patches:
            replaced = self.patches[name](activation, name)
            if replaced is not None:
                if replaced.shape != activation.shape:
                    raise ValueError(f"the patch for {name} returned shape {tuple(replaced.shape)}, "
                                     f"expected {tuple(activation.shape)}")
                activation = replaced
        if self.cache_names is not None and name in self.cache_names:
            self.cache[name] = activation.detach()
        return activation


def _hooked_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0,
                      **kwargs):
    """GPT-2's eager attention with hook points; tensors arrive as (batch, head, pos, d_head)."""
    sessions = _sessions.get()  # nested contexts apply outermost first
    prefix = f"blocks.{module.layer_idx}.attn"

    def whole(name, tensor):
        for session in sessions:
            if session.wants(f"{prefix}.{name}"):
                tensor = session(f"{prefix}.{name}", tensor)
        return tensor

    def per_head(name, tensor):  # hook per-head tensors as (batch, pos, head, d_head)
        return whole(name, tensor.transpose(1, 2)).transpose(1, 2)

    query, key, value = per_head("q", query), per_head("k", key), per_head("v", value)
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    scores = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if attention_mask is not None:
        scores = scores + attention_mask
    scores = whole("scores", scores)
    pattern = whole("pattern", torch.softmax(scores, dim=-1).type(value.dtype))
    pattern_used = torch.nn.functional.dropout(pattern, p=dropout, training=module.training)
    z = per_head("z", torch.matmul(pattern_used, value))
    return z.transpose(1, 2), pattern


AttentionInterface.register(_IMPLEMENTATION, _hooked_attention)
AttentionMaskInterface.register(_IMPLEMENTATION, eager_mask)


def _transformer(model):
    return getattr(model, "transformer", model)


def hook_names(model):
    """Every activation name this model has, in the order of the forward pass."""
    transformer = _transformer(model)
    names = ["embed", "pos_embed"]
    for layer, block in enumerate(transformer.h):
        names += [f"blocks.{layer}.{n}" for n in (
            "resid_pre", "attn.q", "attn.k", "attn.v", "attn.scores", "attn.pattern", "attn.z",
            "attn.result", "attn_out", "resid_mid")]
        if _has_mlp(block):
            names += [f"blocks.{layer}.{n}" for n in ("mlp.pre", "mlp.post", "mlp_out")]
        names.append(f"blocks.{layer}.resid_post")
    return names + ["ln_final"]


def _has_mlp(block):
    return all(hasattr(getattr(block, "mlp", None), part) for part in ("c_fc", "act", "c_proj"))


def _register_module_hooks(model, session):
    """Standard PyTorch hooks for everything outside the attention function."""
    transformer = _transformer(model)
    handles = []

    def output_hook(name):
        def hook(module, args, output):
            return session(name, output) if session.wants(name) else None
        return hook

    handles.append(transformer.wte.register_forward_hook(output_hook("embed")))
    handles.append(transformer.wpe.register_forward_hook(output_hook("pos_embed")))
    handles.append(transformer.ln_f.register_forward_hook(output_hook("ln_final")))
    for layer, block in enumerate(transformer.h):
        handles += _register_block_hooks(block, f"blocks.{layer}", session)
    return handles


def _register_block_hooks(block, prefix, session):
    handles = []
    stash = {}

    def resid_pre(module, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        hidden = session(f"{prefix}.resid_pre", hidden)
        stash["resid_pre"] = hidden
        return ((hidden, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": hidden})

    def head_results(module, args, output):
        # c_proj is a Conv1D: output = z @ weight + bias, with weight (n_heads * d_head, d_model).
        name = f"{prefix}.attn.result"
        if not session.wants(name):
            return None
        z = args[0]
        n_heads = block.attn.num_heads
        z = z.reshape(*z.shape[:-1], n_heads, -1)
        W_O = module.weight.reshape(n_heads, -1, module.weight.shape[-1])
        result = session(name, torch.einsum("bphd,hdm->bphm", z, W_O))
        return result.sum(dim=-2) + module.bias

    def attn_out(module, args, output):
        out = output[0]
        out = session(f"{prefix}.attn_out", out) if session.wants(f"{prefix}.attn_out") else out
        mid_name = f"{prefix}.resid_mid"
        if session.wants(mid_name):
            # The block adds attn_out to the residual itself: patch resid_mid through attn_out.
            out = session(mid_name, stash["resid_pre"] + out) - stash["resid_pre"]
        return (out, *output[1:])

    def resid_post(module, args, kwargs, output):
        name = f"{prefix}.resid_post"
        if not session.wants(name):
            return None
        if isinstance(output, tuple):
            return (session(name, output[0]), *output[1:])
        return session(name, output)

    handles.append(block.register_forward_pre_hook(resid_pre, with_kwargs=True))
    handles.append(block.attn.c_proj.register_forward_hook(head_results))
    handles.append(block.attn.register_forward_hook(attn_out))
    if _has_mlp(block):
        for module, name in ((block.mlp.c_fc, "mlp.pre"), (block.mlp.act, "mlp.post"),
                             (block.mlp, "mlp_out")):
            handles.append(module.register_forward_hook(
                lambda m, a, out, name=f"{prefix}.{name}": session(name, out)
                if session.wants(name) else None))
    handles.append(block.register_forward_hook(resid_post, with_kwargs=True))
    return handles


@contextlib.contextmanager
def _hooked(model, session):
    for name in list(session.patches) + sorted(session.cache_names or ()):
        if name not in _known_names(model):
            raise KeyError(f"no activation called {name!r}; see reference_impl.hooks.hook_names")
    config = model.config
    previous = config._attn_implementation
    handles = _register_module_hooks(model, session)
    token = _sessions.set(_sessions.get() + (session,))
    config._attn_implementation = _IMPLEMENTATION
    try:
        yield session
    finally:
        config._attn_implementation = previous
        _sessions.reset(token)
        for handle in handles:
            handle.remove()


def _known_names(model):
    return set(hook_names(model))


@contextlib.contextmanager
def patched(model, patches):
    """Within the block, replace each named activation by ``patches[name](activation, name)``."""
    with _hooked(model, _Session(patches=dict(patches))):
        yield


def run_with_cache(model, input_ids, names=None, patches=None, **forward_kwargs):
    """Run the model once; return (logits, {name: activation}).

    ``names``: the activations to keep (default: all of them), or a predicate on names.
    ``patches``: optional {name: fn} applied during this run, as in ``patched``."""
    every = hook_names(model)
    if names is None:
        wanted = set(every)
    elif callable(names):
        wanted = {n for n in every if names(n)}
    else:
        wanted = set(names)
    session = _Session(cache_names=wanted, patches=dict(patches or {}))
    with _hooked(model, session), torch.no_grad():
        logits = model(input_ids, **forward_kwargs).logits
    return logits, session.cache
