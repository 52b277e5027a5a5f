"""The word-level tokenizer of the synthetic world.

One word is one token: text is split on whitespace and every punctuation character is its own
word, then each word is looked up in a fixed vocabulary (a ``tokenizers`` WordLevel model). The
vocabulary covers every word the world and the text generators can produce, for any seed and
size, because it is built from the module word lists rather than from one sampled world. So a
full name ("Alice Varga") is two tokens and an IOI name ("Alice") is one.

Special tokens, at fixed ids:

- ``<|bos|>`` (id ``BOS_ID = 0``): beginning of sequence. It is also the end-of-sequence and the
  padding token, as in GPT-2 where ``<|endoftext|>`` plays all three roles. The tokenizer
  prepends it to every encoded text (pass ``add_special_tokens=False`` to leave it out), so a
  word at index ``i`` of ``text.split()`` is the token at position ``i + 1``.
- ``<|unk|>`` (id ``UNK_ID = 1``): any word outside the vocabulary.

The other ids follow in sorted order of the words, so ids do not depend on the world's seed.
"""

import os
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from . import generator, texts
from .generator import World

BOS_TOKEN = "<|bos|>"
UNK_TOKEN = "<|unk|>"
SPECIAL_TOKENS = (BOS_TOKEN, UNK_TOKEN)
BOS_ID = 0
UNK_ID = 1
# Kept in the vocabulary so any punctuation the pre-tokenizer isolates has an id of its own.
PUNCTUATION = tuple(",.!?;:'\"()-")


def vocabulary(world: World | None = None) -> list[str]:
    """The ordered vocabulary: special tokens, then every known word in sorted order.

    Words are those of the module lists (names, places, jobs, objects), the text templates and
    punctuation, plus any word of ``world`` (only relevant for a world built by hand).
    """
    words = set(PUNCTUATION) | texts.template_words()
    for pool in (generator.FIRST_NAMES, generator.LAST_NAMES, generator.CITIES,
                 generator.COUNTRIES, generator.OCCUPATIONS, generator.OBJECTS):
        words |= set(pool)
    if world is not None:
        for name in world.entity_names():
            words |= set(name.split())
    return list(SPECIAL_TOKENS) + sorted(words - set(SPECIAL_TOKENS))


def build_tokenizer(world: World | None = None) -> PreTrainedTokenizerFast:
    """Build the word-level tokenizer as a ``transformers`` fast tokenizer.

    The result prepends ``<|bos|>`` when encoding, uses it as bos, eos and pad token, maps unknown
    words to ``<|unk|>``, and decodes ids to words joined by single spaces, so
    ``tok.decode(tok(text).input_ids, skip_special_tokens=True) == text`` for every generated text.
    """
    vocab = {word: i for i, word in enumerate(vocabulary(world))}
    assert vocab[BOS_TOKEN] == BOS_ID and vocab[UNK_TOKEN] == UNK_ID
    backend = Tokenizer(models.WordLevel(vocab, unk_token=UNK_TOKEN))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation(behavior="isolated")])
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A", pair=f"{BOS_TOKEN} $A {BOS_TOKEN} $B",
        special_tokens=[(BOS_TOKEN, BOS_ID)])
    # WordPiece's decoder with an impossible prefix joins tokens with spaces and, with cleanup
    # off, leaves " ," as it is, so decoding inverts encoding.
    backend.decoder = decoders.WordPiece(prefix="\x00", cleanup=False)
    backend.add_special_tokens(list(SPECIAL_TOKENS))
    return _wrap(backend)


def _wrap(backend: Tokenizer) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=BOS_TOKEN, eos_token=BOS_TOKEN, pad_token=BOS_TOKEN,
        unk_token=UNK_TOKEN, clean_up_tokenization_spaces=False)


def save_tokenizer(tok: PreTrainedTokenizerFast, directory: str | os.PathLike) -> Path:
    """Write ``tok`` to ``directory`` with ``save_pretrained`` and return the path of its
    ``tokenizer.json``.

    ``AutoTokenizer.from_pretrained(directory)`` and ``load_tokenizer(directory)`` restore the
    tokenizer with its special tokens; ``PreTrainedTokenizerFast(tokenizer_file=...)`` loads the
    same ids from ``tokenizer.json`` alone (then pass the special tokens, or use
    ``load_tokenizer``).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(directory)
    return directory / "tokenizer.json"


def load_tokenizer(path: str | os.PathLike) -> PreTrainedTokenizerFast:
    """Load a tokenizer saved by ``save_tokenizer``: ``path`` is its directory or tokenizer.json."""
    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    return _wrap(Tokenizer.from_file(str(path)))
