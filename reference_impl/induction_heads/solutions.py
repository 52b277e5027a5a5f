"""Chapter 03 reference solutions: induction heads.

Every exercise of the chapter is one function here. The chapter notebooks are generated from these
functions: the body after the docstring is the solution region that learners write themselves.

Conventions: a model is a ``transformers`` GPT-2 (``GPT2LMHeadModel``); token batches have shape
``(batch, pos)`` and start with BOS. A repeated batch is ``[BOS] + r + r`` with ``r`` of length
``L``, so it has ``1 + 2L`` positions. Attention patterns have shape ``(batch, head, query, key)``.
GPT-2's weights are ``Conv1D`` layers, which multiply row vectors from the right: a head's
attention scores are ``x W_Q W_Kᵀ yᵀ`` and what it writes is ``x W_V W_O``.
"""

import torch

from reference_impl.hooks import run_with_cache

# ---------------------------------------------------------------------------------------------
# 1 · Reading attention patterns
# ---------------------------------------------------------------------------------------------

DETECTORS = ("current", "previous", "first")
# A head "is" a current-token, previous-token or first-token head when, on average, at least this
# share of its attention goes to that position.
DETECTOR_THRESHOLD = 0.4


def detector_scores(pattern):
    """How much each head attends to the current, the previous and the first token.

    pattern: (batch, head, query, key) attention probabilities. Average over the batch and over the
    queries from position 2 on (from there, the current, previous and first token are three
    different positions) the attention from query q to key q, to key q - 1, and to key 0.
    Returns (3, head): the rows in the order of ``DETECTORS``.
    """
    queries = torch.arange(2, pattern.shape[-2])
    current = pattern[:, :, queries, queries]
    previous = pattern[:, :, queries, queries - 1]
    first = pattern[:, :, queries, 0]
    return torch.stack([current, previous, first]).mean(dim=(1, 3))


def detect_heads(cache, threshold=DETECTOR_THRESHOLD):
    """{detector: ["layer.head", ...]}: the heads whose detector score is at least ``threshold``,
    from a cache holding every layer's ``blocks.L.attn.hook_pattern``."""
    found = {name: [] for name in DETECTORS}
    layer = 0
    while f"blocks.{layer}.attn.hook_pattern" in cache:
        scores = detector_scores(cache[f"blocks.{layer}.attn.hook_pattern"])
        for name, row in zip(DETECTORS, scores):
            found[name] += [f"{layer}.{head}" for head in range(len(row)) if row[head] >= threshold]
        layer += 1
    return found


# ---------------------------------------------------------------------------------------------
# 2 · Repeated tokens and the loss on each copy
# ---------------------------------------------------------------------------------------------

def next_token_log_probs(logits, tokens):
    """The log-probability the model gives each actual next token.

    logits: (batch, pos, vocab); tokens: (batch, pos). Position i predicts token i + 1, so the last
    position predicts nothing. Returns (batch, pos - 1).
    """
    log_probs = logits[:, :-1].log_softmax(dim=-1)
    return log_probs.gather(-1, tokens[:, 1:, None]).squeeze(-1)


def copy_losses(model, tokens, patches=None):
    """Mean next-token loss (minus log-probability) on the first and on the second copy.

    tokens: (batch, 1 + 2L), ``[BOS] + r + r``. Run the model once with
    ``run_with_cache(model, tokens, names=[], patches=patches)``. The first copy's loss averages
    the predictions of tokens 2 .. L, the second copy's those of tokens L + 2 .. 2L: the first token
    of each copy (token 1, token L + 1) cannot be predicted from what comes before it.
    Returns two Python floats (first, second).
    """
    length = (tokens.shape[1] - 1) // 2
    logits, _ = run_with_cache(model, tokens, names=[], patches=patches)
    losses = -next_token_log_probs(logits, tokens)  # losses[:, i] is the loss on token i + 1
    return losses[:, 1:length].mean().item(), losses[:, length + 1:].mean().item()


# ---------------------------------------------------------------------------------------------
# 3 · Induction and previous-token scores
# ---------------------------------------------------------------------------------------------

def head_scores(model, tokens):
    """Previous-token and induction scores of every head, from one run of the model.

    tokens: (batch, 1 + 2L), ``[BOS] + r + r``. The previous-token score of a head is its
    "previous" detector score. Its induction score is its mean attention, over the batch and the
    L queries of the second copy (positions L + 1 .. 2L), to the token right after the first
    occurrence of the query's token, which is L - 1 positions back.
    Returns two (layers, heads) tensors: (previous, induction).
    """
    length = (tokens.shape[1] - 1) // 2
    _, cache = run_with_cache(model, tokens, names=lambda name: name.endswith("attn.hook_pattern"))
    patterns = torch.stack([cache[f"blocks.{layer}.attn.hook_pattern"]
                            for layer in range(model.config.n_layer)])  # (layer, batch, head, q, k)
    previous = torch.stack([detector_scores(pattern)[1] for pattern in patterns])
    # diagonal(offset=-k)[..., j] is the attention from query j + k to key j.
    induction = patterns.diagonal(offset=1 - length, dim1=-2, dim2=-1)[..., 2:]
    return previous, induction.mean(dim=(1, 3))


# ---------------------------------------------------------------------------------------------
# 4 · The logit lens
# ---------------------------------------------------------------------------------------------

def logit_lens(model, tokens):
    """Read the residual stream after the embedding and after every layer as if it were the last.

    Take ``blocks.0.hook_resid_pre`` and every ``blocks.L.hook_resid_post``, apply the final
    LayerNorm ``model.transformer.ln_f`` (or nothing, if the model has none) and the unembedding
    ``model.lm_head``. Returns (layers + 1, batch, pos, vocab) logits; the last stage is the
    model's own output.
    """
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{layer}.hook_resid_post"
                                           for layer in range(model.config.n_layer)]
    _, cache = run_with_cache(model, tokens, names=names)
    resid = torch.stack([cache[name] for name in names])
    ln_f = getattr(model.transformer, "ln_f", None) or torch.nn.Identity()
    with torch.no_grad():
        return model.lm_head(ln_f(resid))


def lens_accuracy(lens_logits, tokens):
    """(stages, pos - 1): the fraction of the batch whose actual next token is the lens's top-1."""
    return (lens_logits[:, :, :-1].argmax(dim=-1) == tokens[:, 1:]).float().mean(dim=1)


# ---------------------------------------------------------------------------------------------
# 5 · Direct logit attribution
# ---------------------------------------------------------------------------------------------

def attribution_labels(model):
    """The names of the components ``direct_logit_attribution`` returns, in order."""
    heads = [f"{layer}.{head}" for layer in range(model.config.n_layer)
             for head in range(model.config.n_head)]
    return ["embed", "pos_embed"] + heads + ["rest"]


def direct_logit_attribution(model, tokens):
    """Split the logit of every actual next token into what each component wrote directly.

    The final residual stream (``blocks.{n_layer-1}.hook_resid_post``) is a sum: the token
    embedding (``hook_embed``), the position embedding (``hook_pos_embed``), every head's output
    (``blocks.L.attn.hook_result``) and the rest (output biases, MLPs if any). The final LayerNorm
    is linear once its scale σ is frozen at its value on the real final residual x:
    ``ln_f(c) = (c - mean(c)) / σ(x) · γ`` for each component c, with
    ``σ(x) = sqrt(var(x) + ε)`` (biased variance over d_model, ε = ``ln_f.eps``), which the cache
    holds as ``ln_final.hook_scale`` (batch, pos, 1); ln_f's bias β goes to the rest. A
    component's contribution to the logit of token t is ``ln_f(c) · W_U[t]`` with
    ``W_U = model.lm_head.weight``.
    Returns (batch, pos - 1, components), in the order of ``attribution_labels(model)``, for the
    tokens 1 .. pos - 1; the contributions add up to the logits.
    """
    last = f"blocks.{model.config.n_layer - 1}.hook_resid_post"
    results = [f"blocks.{layer}.attn.hook_result" for layer in range(model.config.n_layer)]
    names = ["hook_embed", "hook_pos_embed", last, "ln_final.hook_scale"] + results
    _, cache = run_with_cache(model, tokens, names=names)
    resid = cache[last]
    parts = torch.cat([cache["hook_embed"][:, :, None], cache["hook_pos_embed"][:, :, None],
                       *[cache[name] for name in results]], dim=2)  # (batch, pos, part, d_model)
    parts = torch.cat([parts, (resid - parts.sum(dim=2))[:, :, None]], dim=2)
    ln_f = model.transformer.ln_f
    scale = cache["ln_final.hook_scale"][:, :, None]  # (batch, pos, 1, 1)
    normed = (parts - parts.mean(dim=-1, keepdim=True)) / scale * ln_f.weight.detach()
    normed[:, :, -1] += ln_f.bias.detach()
    unembed = model.lm_head.weight.detach()[tokens[:, 1:]]  # (batch, pos - 1, d_model)
    return torch.einsum("bpcd,bpd->bpc", normed[:, :-1], unembed)


# ---------------------------------------------------------------------------------------------
# 6 · Ablation
# ---------------------------------------------------------------------------------------------

def ablation_patches(model, tokens, heads, method="mean"):
    """Patches that knock out heads, for ``run_with_cache(..., patches=...)`` or ``patched``.

    heads: a list of (layer, head). Each chosen head's output ``blocks.L.attn.hook_z`` (batch,
    pos, head, d_head) is replaced by zeros (``method="zero"``) or by its mean over the batch and
    the positions of a clean run on ``tokens`` (``method="mean"``); the other heads are untouched.
    Returns {name: fn(z, name) -> new z} with one entry per layer that has a chosen head.
    """
    names = sorted({f"blocks.{layer}.attn.hook_z" for layer, _ in heads})
    _, cache = run_with_cache(model, tokens, names=names)
    patches = {}
    for name in names:
        layer = int(name.split(".")[1])
        chosen = [head for l, head in heads if l == layer]
        mean = cache[name].mean(dim=(0, 1))  # (head, d_head)
        value = torch.zeros_like(mean) if method == "zero" else mean

        def patch(z, _, chosen=chosen, value=value):
            z = z.clone()
            z[:, :, chosen] = value[chosen]
            return z

        patches[name] = patch
    return patches


# ---------------------------------------------------------------------------------------------
# 7 · Circuits
# ---------------------------------------------------------------------------------------------

def head_weights(model, layer):
    """The per-head weight matrices of one layer, in the row-vector convention of ``Conv1D``.

    ``attn.c_attn.weight`` is (d_model, 3 · d_model): the query, key and value columns side by
    side, each split into heads of d_head consecutive columns. ``attn.c_proj.weight`` is
    (d_model, d_model): its rows come in blocks of d_head, one per head.
    Returns (W_Q, W_K, W_V, W_O): three (heads, d_model, d_head) tensors and one
    (heads, d_head, d_model), detached.
    """
    attn = model.transformer.h[layer].attn
    n_heads, d_model = model.config.n_head, model.config.n_embd
    d_head = d_model // n_heads
    W_Q, W_K, W_V = attn.c_attn.weight.detach().split(d_model, dim=1)
    per_head = [W.reshape(d_model, n_heads, d_head).transpose(0, 1) for W in (W_Q, W_K, W_V)]
    W_O = attn.c_proj.weight.detach().reshape(n_heads, d_head, d_model)
    return (*per_head, W_O)


def ov_circuit(model, layer, head):
    """The full OV circuit ``W_E W_V W_O W_U`` of one head: (vocab, vocab).

    Entry (s, t) is how much attending to token s raises the logit of token t (ignoring the
    LayerNorms). ``W_E = model.transformer.wte.weight``; ``W_U`` is ``model.lm_head.weight``
    transposed, (d_model, vocab).
    """
    _, _, W_V, W_O = head_weights(model, layer)
    W_E = model.transformer.wte.weight.detach()
    W_U = model.lm_head.weight.detach().T
    return W_E @ W_V[head] @ W_O[head] @ W_U


def top1_diagonal_accuracy(circuit):
    """The fraction of rows whose largest entry is on the diagonal."""
    return (circuit.argmax(dim=-1) == torch.arange(len(circuit))).float().mean().item()


def copying_score(circuit):
    """How much a square matrix copies: ``Σ λ_i / Σ |λ_i|`` over its (complex) eigenvalues.

    It is 1 when every eigenvalue is a positive real number (the matrix maps each direction onto
    itself, scaled up), -1 when all are negative. Returns a Python float.
    """
    eigenvalues = torch.linalg.eigvals(circuit)
    return (eigenvalues.sum().real / eigenvalues.abs().sum()).item()


def positional_qk_circuit(model, layer, head):
    """The positional QK circuit ``W_pos W_Q W_Kᵀ W_posᵀ`` of one head: (n_positions,
    n_positions), entry (q, k) the score query position q gives key position k (ignoring the
    LayerNorm and the token embeddings). ``W_pos = model.transformer.wpe.weight``.
    """
    W_Q, W_K, _, _ = head_weights(model, layer)
    W_pos = model.transformer.wpe.weight.detach()
    return W_pos @ W_Q[head] @ W_K[head].T @ W_pos.T


def composition_score(W_A, W_B):
    """``‖W_A W_B‖_F / (‖W_A‖_F ‖W_B‖_F)``, over the last two axes (leading axes broadcast): 0
    when what W_A reads and what W_B writes share no direction."""
    return (W_A @ W_B).norm(dim=(-2, -1)) / (W_A.norm(dim=(-2, -1)) * W_B.norm(dim=(-2, -1)))


def k_composition_scores(model, writer=0, reader=1):
    """K-composition of every head of layer ``writer`` into every head of layer ``reader``.

    A reader head's keys read what a writer head wrote: its scores are ``x W_QK (y W_OV)ᵀ =
    x W_QK W_OVᵀ yᵀ``, with ``W_QK = W_Q W_Kᵀ`` of the reader head and ``W_OV = W_V W_O`` of the
    writer head. The score of a pair is ``composition_score(W_QK, W_OVᵀ)``.
    Returns (writer heads, reader heads).
    """
    _, _, W_V, W_O = head_weights(model, writer)
    W_Q, W_K, _, _ = head_weights(model, reader)
    W_OV = W_V @ W_O  # (writer head, d_model, d_model)
    W_QK = W_Q @ W_K.transpose(1, 2)  # (reader head, d_model, d_model)
    return composition_score(W_QK[None], W_OV.transpose(1, 2)[:, None])


def random_composition_baseline(d_model, d_head, samples=1000, generator=None):
    """Composition scores of random pairs shaped like ``W_QK`` and ``W_OVᵀ``, with their rank:
    each the product of Gaussian (d_model, d_head) and (d_head, d_model) matrices. (samples,)"""
    def low_rank():
        return (torch.randn(samples, d_model, d_head, generator=generator)
                @ torch.randn(samples, d_head, d_model, generator=generator))
    return composition_score(low_rank(), low_rank())


# ---------------------------------------------------------------------------------------------
# 8 · The phase change
# ---------------------------------------------------------------------------------------------

def phase_change_step(log, threshold=0.5):
    """The first logged training step at which some head of layer 1 or above has an induction
    score of at least ``threshold``, or None if none ever does.

    log: a training log with ``steps`` (a list of ints) and ``induction_scores`` (one
    [layer][head] list of scores per logged step).
    """
    for step, scores in zip(log["steps"], log["induction_scores"]):
        if max(max(row) for row in scores[1:]) >= threshold:
            return step
    return None
