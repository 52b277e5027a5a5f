"""The course's synthetic world and its languages.

The course trains its own small GPT-2 models offline, on text generated here:

- ``generate_world``: a seeded world of people, cities, countries, occupations and objects, and
  the facts linking them (``generator``).
- fact sentences, IOI stories and repeated random-token sequences (``texts``).
- a word-level tokenizer that covers every word those generators can produce (``tokenizer``).
"""

from .generator import RELATIONS, Fact, Person, World, generate_world
from .texts import (FACT_TEMPLATES, IOI_NAMES, IOI_ORDERS, IOI_TEMPLATES, FactPrompt, FactSplit,
                    IOIExample, IOISplit, fact_prompt, fact_prompts, fact_split, ioi_dataset,
                    ioi_example, ioi_split, repeated_tokens)
from .tokenizer import (BOS_ID, BOS_TOKEN, UNK_ID, UNK_TOKEN, build_tokenizer, load_tokenizer,
                        save_tokenizer, vocabulary)

__all__ = [
    "RELATIONS", "Fact", "Person", "World", "generate_world",
    "FACT_TEMPLATES", "IOI_NAMES", "IOI_ORDERS", "IOI_TEMPLATES", "FactPrompt", "FactSplit",
    "IOIExample", "IOISplit", "fact_prompt", "fact_prompts", "fact_split", "ioi_dataset",
    "ioi_example", "ioi_split", "repeated_tokens",
    "BOS_ID", "BOS_TOKEN", "UNK_ID", "UNK_TOKEN", "build_tokenizer", "load_tokenizer",
    "save_tokenizer", "vocabulary",
]
