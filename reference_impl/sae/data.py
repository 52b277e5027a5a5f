"""Chapter 05's data: toy activations with known features, and `world-5l`'s activations on its
own training text, with the concepts of the world labelled token by token."""

from dataclasses import dataclass

import torch

from reference_impl.hooks import run_with_cache
from reference_impl.superposition.solutions import generate_batch
from reference_impl.zoo.training import encode_batch
from reference_impl.zoo.world_model import training_texts

# The SAE of the zoo reads the residual stream in the middle of world-5l's five blocks.
HOOK_NAME = "blocks.2.hook_resid_post"


# ---------------------------------------------------------------------------------------------
# Toy activations: sparse features embedded in fewer dimensions by a known matrix
# ---------------------------------------------------------------------------------------------


def true_features(n_features, d_in, seed=0):
    """``n_features`` random unit directions in ``d_in`` dimensions, (n_features, d_in)."""
    directions = torch.randn(n_features, d_in, generator=torch.Generator().manual_seed(seed))
    return directions / directions.norm(dim=1, keepdim=True)


def toy_activations(n, features, density, generator):
    """``n`` activations (n, d_in), each a sparse sum of the rows of ``features``: every feature
    is present with probability ``density`` with a magnitude uniform in [0, 1] (chapter 01's
    ``generate_batch``)."""
    magnitudes = generate_batch(n, torch.tensor([density]), len(features), generator)[:, 0]
    return magnitudes @ features


# ---------------------------------------------------------------------------------------------
# world-5l on its own text
# ---------------------------------------------------------------------------------------------


@dataclass
class TokenActivations:
    """One activation per token of some texts (BOS and padding left out).

    ``activations`` (n, d); ``tokens`` (n,), each row's token id; ``previous`` (n,), the token
    before it; ``text`` and ``position`` (n,), where it sits (a text index and a token position,
    counting BOS as 0)."""
    activations: torch.Tensor
    tokens: torch.Tensor
    previous: torch.Tensor
    text: torch.Tensor
    position: torch.Tensor


def world_texts(n=None, seed=0):
    """``n`` of world-5l's training texts (all of them by default) in a shuffled order."""
    texts = training_texts()
    order = torch.randperm(len(texts), generator=torch.Generator().manual_seed(seed))
    return [texts[i] for i in order[:n]]


@torch.no_grad()
def token_activations(model, tokenizer, texts, names=(HOOK_NAME,), batch_size=500):
    """{name: TokenActivations} of the activations ``names`` of ``model`` on ``texts``."""
    ids, mask = encode_batch(tokenizer, texts)
    keep = torch.cat([torch.zeros(len(texts), 1), mask], dim=1).bool()  # not BOS, not padding
    chunks = {name: [] for name in names}
    for start in range(0, len(texts), batch_size):
        _, cache = run_with_cache(model, ids[start:start + batch_size], names=list(names))
        for name in names:
            chunks[name].append(cache[name][keep[start:start + batch_size]])
    text, position = keep.nonzero().T
    previous = ids[text, position - 1]
    return {name: TokenActivations(torch.cat(chunks[name]).flatten(1), ids[keep], previous, text,
                                   position) for name in names}


def token_id(tokenizer, word):
    (token,) = tokenizer.convert_tokens_to_ids([word])
    return token


def concept_labels(tokenizer, acts, concepts):
    """{name: (n,) bool} for concepts given as ("token", word), the token is ``word``, or
    ("after", word), the token comes right after ``word``."""
    labels = {}
    for name, (kind, word) in concepts.items():
        ids = acts.tokens if kind == "token" else acts.previous
        labels[name] = ids == token_id(tokenizer, word)
    return labels


def context(tokenizer, texts, acts, row, width=8):
    """The text around row ``row`` of ``acts``, its token in [brackets]."""
    words = ["<bos>"] + texts[int(acts.text[row])].split()
    at = int(acts.position[row])
    shown = words[max(0, at - width):at] + [f"[{words[at]}]"] + words[at + 1:at + 3]
    return " ".join(shown)
