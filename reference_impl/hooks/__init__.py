"""Read and overwrite the activations of any `transformers` GPT-2 model by name.

``run_with_cache(model, input_ids)`` returns the logits and an ``ActivationCache`` of named
activations; ``patched(model, {name: fn})`` is a context manager under which every forward pass of
``model`` replaces the activation ``name`` by ``fn(activation, name)`` (return None to leave it as
it is). Every hook is removed on exit, also when an exception is raised, and a context applies to
its own model only. The same code works on the course's tiny models and on a full-size GPT-2.

The names are TransformerLens's, with TransformerLens's shapes, so code written against one reads
the other (``L`` is a layer index; shapes are for a batch of ``batch`` sequences of ``pos``
tokens):

| name | shape | what it is |
|---|---|---|
| ``hook_embed`` | (batch, pos, d_model) | token embeddings |
| ``hook_pos_embed`` | (batch, pos, d_model) | position embeddings |
| ``blocks.L.hook_resid_pre`` | (batch, pos, d_model) | residual stream entering block L |
| ``blocks.L.ln1.hook_scale`` | (batch, pos, 1) | the first LayerNorm's scale sqrt(var + eps) of resid_pre (biased variance) |
| ``blocks.L.ln1.hook_normalized`` | (batch, pos, d_model) | the first LayerNorm's output, which attention reads |
| ``blocks.L.attn.hook_q`` / ``hook_k`` / ``hook_v`` | (batch, pos, head, d_head) | queries, keys, values per head |
| ``blocks.L.attn.hook_attn_scores`` | (batch, head, query_pos, key_pos) | scaled attention scores; masked (future or padded) entries are -inf |
| ``blocks.L.attn.hook_pattern`` | (batch, head, query_pos, key_pos) | attention probabilities |
| ``blocks.L.attn.hook_z`` | (batch, pos, head, d_head) | pattern-weighted values per head |
| ``blocks.L.attn.hook_result`` | (batch, pos, head, d_model) | what each head writes to the residual stream (z_h W_O^h, without the output bias) |
| ``blocks.L.hook_attn_out`` | (batch, pos, d_model) | attention output: Σ_h result_h + output bias |
| ``blocks.L.hook_resid_mid`` | (batch, pos, d_model) | resid_pre + attn_out |
| ``blocks.L.ln2.hook_scale`` / ``ln2.hook_normalized`` | (batch, pos, 1) / (batch, pos, d_model) | the second LayerNorm, on resid_mid, which the MLP reads |
| ``blocks.L.mlp.hook_pre`` / ``mlp.hook_post`` | (batch, pos, d_mlp) | MLP activations before / after the nonlinearity |
| ``blocks.L.hook_mlp_out`` | (batch, pos, d_model) | MLP output |
| ``blocks.L.hook_resid_post`` | (batch, pos, d_model) | resid_mid + mlp_out, leaving block L |
| ``ln_final.hook_scale`` | (batch, pos, 1) | the final LayerNorm's scale sqrt(var + eps) of the last resid_post |
| ``ln_final.hook_normalized`` | (batch, pos, d_model) | the final LayerNorm's output, which the unembedding reads |

A LayerNorm's output is ``(x - mean(x)) / scale * weight + bias``. An attention-only block (no
MLP) has no ``ln2`` or ``mlp`` names. Unlike TransformerLens, ``hook_result`` is always there, and
an attention-only block keeps ``hook_resid_mid``.

The cache also takes TransformerLens's short keys (``get_act_name``): ``cache["pattern", 0]`` is
``cache["blocks.0.attn.hook_pattern"]``, ``cache["resid_post", -1]`` the last layer's,
``cache["embed"]`` is ``cache["hook_embed"]``, ``cache["scale"]`` is
``cache["ln_final.hook_scale"]`` and ``cache["scale", 2, "ln1"]`` is
``cache["blocks.2.ln1.hook_scale"]``.

Attention is computed by the course's own copy of GPT-2's eager attention while hooks are active,
so that scores and pattern can be read and patched; outside the context the model is untouched.
"""

import contextlib
import contextvars
import difflib
import re

import torch
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, eager_mask
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

__all__ = ["run_with_cache", "patched", "hook_names", "get_act_name", "ActivationCache"]

_IMPLEMENTATION = "mechinterp_hooked_eager"
_sessions = contextvars.ContextVar("mechinterp_hook_sessions", default=())


# ---------------------------------------------------------------------------------------------
# Short names
# ---------------------------------------------------------------------------------------------

_ATTENTION_NAMES = {"q", "k", "v", "z", "result", "pattern", "attn_scores"}
_MLP_NAMES = {"pre", "post"}
_LAYER_NORM_NAMES = {"scale", "normalized"}
_NAME_ALIASES = {"attn": "pattern", "attn_logits": "attn_scores", "query": "q", "key": "k",
                 "value": "v", "mlp_pre": "pre", "mlp_post": "post"}
_LAYER_TYPE_ALIASES = {"a": "attn", "attention": "attn", "m": "mlp", "b": "", "block": "",
                       "blocks": ""}


def get_act_name(name, layer=None, layer_type=None):
    """The full activation name of TransformerLens's short form (``utils.get_act_name``).

    ``get_act_name("pattern", 0) == "blocks.0.attn.hook_pattern"``, ``("pre", 2)`` gives
    ``"blocks.2.mlp.hook_pre"``, ``("resid_pre", 1)`` ``"blocks.1.hook_resid_pre"``,
    ``("embed")`` ``"hook_embed"``, ``("scale")`` ``"ln_final.hook_scale"``, ``("scale", 2, "ln1")``
    ``"blocks.2.ln1.hook_scale"``; ``"k6"`` and ``"scale4ln1"`` pack the layer into the name. A
    full name (with a dot, or starting with ``hook_``) is returned as it is.
    """
    if layer is None and layer_type is None and ("." in name or name.startswith("hook_")):
        return name
    packed = re.fullmatch(r"([a-z_]+?)(\d+)([a-z]\w*)?", name)
    if layer is None and packed is not None:
        name, layer, layer_type = packed.group(1), int(packed.group(2)), packed.group(3)
    name = _NAME_ALIASES.get(name, name)
    if name in _ATTENTION_NAMES:
        layer_type = "attn"
    elif name in _MLP_NAMES:
        layer_type = "mlp"
    else:
        layer_type = _LAYER_TYPE_ALIASES.get(layer_type, layer_type)
    parts = [] if layer is None else [f"blocks.{layer}"]
    if layer_type:
        parts.append(layer_type)
    elif layer is None and name in _LAYER_NORM_NAMES:
        parts.append("ln_final")
    return ".".join(parts + [f"hook_{name}"])


class ActivationCache(dict):
    """``{name: activation}``: a dict that also accepts TransformerLens's short keys.

    ``cache[name]`` with a full name is a plain dict lookup. Otherwise the key is read as
    TransformerLens's ``ActivationCache`` reads it: ``cache["embed"]``, ``cache["pattern", 0]``,
    ``cache["resid_post", -1]`` (a negative layer counts from the end), ``cache["scale", 2, "ln1"]``
    (see ``get_act_name``). ``in``, ``keys()``, ``items()`` and iteration see the full names only.
    """

    def __init__(self, *args, n_layers=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.n_layers = n_layers

    def full_name(self, key):
        """The full name a key stands for."""
        if isinstance(key, str):
            return get_act_name(key)
        if isinstance(key, tuple) and 1 <= len(key) <= 3 and isinstance(key[0], str):
            name, layer, *layer_type = key + (None,) * (2 - len(key))
            if layer is not None:
                layer = int(layer)
                if layer < 0 and self.n_layers is not None:
                    layer += self.n_layers
            return get_act_name(name, layer, *layer_type)
        raise KeyError(f"{key!r}: a cache key is a name, or a tuple (name, layer) or "
                       "(name, layer, layer_type)")

    def __getitem__(self, key):
        if isinstance(key, str) and dict.__contains__(self, key):
            return dict.__getitem__(self, key)
        name = self.full_name(key)
        if dict.__contains__(self, name):
            return dict.__getitem__(self, name)
        shown = repr(key) if name == key else f"{key!r} (that is, {name!r})"
        raise KeyError(f"{shown} is not in this cache{_suggestions(name, self)}") from None

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def __repr__(self):
        names = list(self)
        shown = ", ".join(names if len(names) <= 6 else names[:3] + ["..."] + names[-2:])
        return f"ActivationCache of {len(names)} activations ({shown})"


def _suggestions(name, names):
    close = difflib.get_close_matches(name, list(names), n=3, cutoff=0.6)
    return f"; the closest names are {', '.join(map(repr, close))}" if close else ""


# ---------------------------------------------------------------------------------------------
# Sessions
# ---------------------------------------------------------------------------------------------

class _Session:
    """The hooks of one context on one model: what to cache and what to patch."""

    def __init__(self, model, cache_names=None, patches=None):
        self.cache_names = cache_names  # a set of names, or None for nothing
        self.patches = patches or {}
        self.cache = ActivationCache(n_layers=model.config.n_layer)
        self.config = model.config
        self.previous = model.config._attn_implementation
        self.attention = {block.attn for block in _transformer(model).h}

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
    every = _sessions.get()
    sessions = [s for s in every if module in s.attention]  # outermost first
    if not sessions:
        # Another model whose config object a hooked model shares: attend as it would have.
        previous = next((s.previous for s in every if s.config is module.config), "eager")
        fallback = ALL_ATTENTION_FUNCTIONS.get(previous)
        if fallback is not None and previous != _IMPLEMENTATION:
            return fallback(module, query, key, value, attention_mask, scaling=scaling,
                            dropout=dropout, **kwargs)
    prefix = f"blocks.{module.layer_idx}.attn"

    def whole(name, tensor):
        for session in sessions:
            if session.wants(f"{prefix}.{name}"):
                tensor = session(f"{prefix}.{name}", tensor)
        return tensor

    def per_head(name, tensor):  # hook per-head tensors as (batch, pos, head, d_head)
        return whole(name, tensor.transpose(1, 2)).transpose(1, 2)

    query, key = per_head("hook_q", query), per_head("hook_k", key)
    value = per_head("hook_v", value)
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    scores = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:  # True: may attend
            masked = ~attention_mask
        else:  # additive: 0, or the dtype's lowest value where masked
            scores = scores + attention_mask
            masked = attention_mask <= torch.finfo(attention_mask.dtype).min
        # Show masked entries as -inf, as TransformerLens does.
        scores = scores.masked_fill(masked, float("-inf"))
    scores = whole("hook_attn_scores", scores)
    # Softmax over the lowest finite value instead of -inf: a row with every key masked (a padded
    # query) then spreads evenly, as in the model's own attention, instead of becoming NaN.
    lowest = torch.finfo(scores.dtype).min
    finite = scores.masked_fill(torch.isneginf(scores), lowest)
    pattern = whole("hook_pattern", torch.softmax(finite, dim=-1).type(value.dtype))
    pattern_used = torch.nn.functional.dropout(pattern, p=dropout, training=module.training)
    z = per_head("hook_z", torch.matmul(pattern_used, value))
    return z.transpose(1, 2), pattern


AttentionInterface.register(_IMPLEMENTATION, _hooked_attention)
AttentionMaskInterface.register(_IMPLEMENTATION, eager_mask)


def _transformer(model):
    return getattr(model, "transformer", model)


def hook_names(model):
    """Every activation name this model has, in the order of the forward pass."""
    transformer = _transformer(model)
    names = ["hook_embed", "hook_pos_embed"]
    for layer, block in enumerate(transformer.h):
        names += [f"blocks.{layer}.{n}" for n in (
            "hook_resid_pre", "ln1.hook_scale", "ln1.hook_normalized", "attn.hook_q",
            "attn.hook_k", "attn.hook_v", "attn.hook_attn_scores", "attn.hook_pattern",
            "attn.hook_z", "attn.hook_result", "hook_attn_out", "hook_resid_mid")]
        if _has_mlp(block):
            names += [f"blocks.{layer}.{n}" for n in (
                "ln2.hook_scale", "ln2.hook_normalized", "mlp.hook_pre", "mlp.hook_post",
                "hook_mlp_out")]
        names.append(f"blocks.{layer}.hook_resid_post")
    return names + ["ln_final.hook_scale", "ln_final.hook_normalized"]


def _has_mlp(block):
    return all(hasattr(getattr(block, "mlp", None), part) for part in ("c_fc", "act", "c_proj"))


def _register_module_hooks(model, session):
    """Standard PyTorch hooks for everything outside the attention function."""
    transformer = _transformer(model)
    handles = []
    batch = {}

    def batch_size(module, args, kwargs):
        inputs = args[0] if args and args[0] is not None else kwargs.get("input_ids")
        if inputs is None:
            inputs = kwargs.get("inputs_embeds")
        batch["size"] = inputs.shape[0] if inputs is not None else 1

    def output_hook(name):
        def hook(module, args, output):
            return session(name, output) if session.wants(name) else None
        return hook

    def pos_embed(module, args, output):
        name = "hook_pos_embed"
        if not session.wants(name):
            return None
        # The model adds one row of position embeddings to every sequence; show it per sequence.
        if output.shape[0] == 1 and batch.get("size", 1) != 1:
            output = output.expand(batch["size"], *output.shape[1:]).contiguous()
        return session(name, output)

    handles.append(transformer.register_forward_pre_hook(batch_size, with_kwargs=True))
    handles.append(transformer.wte.register_forward_hook(output_hook("hook_embed")))
    handles.append(transformer.wpe.register_forward_hook(pos_embed))
    handles.append(transformer.ln_f.register_forward_hook(_layer_norm_hook("ln_final", session)))
    for layer, block in enumerate(transformer.h):
        handles += _register_block_hooks(block, f"blocks.{layer}", session)
    return handles


def _layer_norm_hook(prefix, session):
    """hook_scale and hook_normalized of one LayerNorm; a patched scale recomputes the output."""
    scale_name, normalized_name = f"{prefix}.hook_scale", f"{prefix}.hook_normalized"

    def hook(module, args, output):
        if not (session.wants(scale_name) or session.wants(normalized_name)):
            return None
        if session.wants(scale_name):
            x = args[0]
            centred = x - x.mean(dim=-1, keepdim=True)
            scale = (centred.pow(2).mean(dim=-1, keepdim=True) + module.eps).sqrt()
            scale = session(scale_name, scale)
            if scale_name in session.patches:
                output = centred / scale
                if module.weight is not None:
                    output = output * module.weight
                if module.bias is not None:
                    output = output + module.bias
        if session.wants(normalized_name):
            output = session(normalized_name, output)
        return output
    return hook


def _register_block_hooks(block, prefix, session):
    handles = []
    stash = {}

    def resid_pre(module, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        hidden = session(f"{prefix}.hook_resid_pre", hidden)
        stash["resid_pre"] = hidden
        return ((hidden, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": hidden})

    def head_results(module, args, output):
        # c_proj is a Conv1D: output = z @ weight + bias, with weight (n_heads * d_head, d_model).
        name = f"{prefix}.attn.hook_result"
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
        out_name, mid_name = f"{prefix}.hook_attn_out", f"{prefix}.hook_resid_mid"
        out = session(out_name, out) if session.wants(out_name) else out
        if session.wants(mid_name):
            # The block adds attn_out to the residual itself: patch resid_mid through attn_out.
            out = session(mid_name, stash["resid_pre"] + out) - stash["resid_pre"]
        return (out, *output[1:])

    def resid_post(module, args, kwargs, output):
        name = f"{prefix}.hook_resid_post"
        if not session.wants(name):
            return None
        if isinstance(output, tuple):
            return (session(name, output[0]), *output[1:])
        return session(name, output)

    handles.append(block.register_forward_pre_hook(resid_pre, with_kwargs=True))
    handles.append(block.ln_1.register_forward_hook(_layer_norm_hook(f"{prefix}.ln1", session)))
    handles.append(block.attn.c_proj.register_forward_hook(head_results))
    handles.append(block.attn.register_forward_hook(attn_out))
    if _has_mlp(block):
        handles.append(block.ln_2.register_forward_hook(_layer_norm_hook(f"{prefix}.ln2", session)))
        for module, name in ((block.mlp.c_fc, "mlp.hook_pre"), (block.mlp.act, "mlp.hook_post"),
                             (block.mlp, "hook_mlp_out")):
            handles.append(module.register_forward_hook(
                lambda m, a, out, name=f"{prefix}.{name}": session(name, out)
                if session.wants(name) else None))
    handles.append(block.register_forward_hook(resid_post, with_kwargs=True))
    return handles


@contextlib.contextmanager
def _hooked(model, session):
    known = hook_names(model)
    for name in list(session.patches) + sorted(session.cache_names or ()):
        if name not in known:
            raise KeyError(f"no activation called {name!r}{_suggestions(name, known)}; see "
                           "reference_impl.hooks.hook_names")
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


@contextlib.contextmanager
def patched(model, patches):
    """Within the block, replace each named activation of ``model`` by
    ``patches[name](activation, name)``."""
    with _hooked(model, _Session(model, patches=dict(patches))):
        yield


def run_with_cache(model, input_ids, names=None, patches=None, **forward_kwargs):
    """Run the model once; return (logits, ActivationCache {name: activation}).

    ``names``: the activations to keep (default: all of them), or a predicate on names.
    ``patches``: optional {name: fn} applied during this run, as in ``patched``."""
    every = hook_names(model)
    if names is None:
        wanted = set(every)
    elif callable(names):
        wanted = {n for n in every if names(n)}
    else:
        wanted = set(names)
    session = _Session(model, cache_names=wanted, patches=dict(patches or {}))
    with _hooked(model, session), torch.no_grad():
        logits = model(input_ids, **forward_kwargs).logits
    return logits, session.cache
