"""The IOI prompts chapter 04 analyses, as token batches whose positions line up.

A batch holds prompts of one template only: every prompt then has its indirect object, its two
subject mentions and its final "to" at the same token positions in each ABBA or BABA order, so
activations can be compared, averaged and patched position by position. ``ioi_batch`` refuses
anything else with one sentence.
"""

from collections import defaultdict
from dataclasses import dataclass

import torch

from reference_impl.world import ioi_split
from reference_impl.zoo import world_model

POSITIONS = ("IO", "S1", "S2", "end")


@dataclass(frozen=True)
class IOIBatch:
    """IOI prompts of one template, tokenised, with their ABC-corrupted twins.

    ``tokens`` and ``corrupted``: (batch, pos), BOS first; ``io`` and ``s``: (batch,) token ids of
    the indirect object and the subject; ``positions[name]`` for name in ``POSITIONS``: (batch,)
    token positions of IO, of the first and second mention of S, and of the final token; also
    "N1" and "N2", the first and the second name of the opening clause (IO and S1 in either order).
    """

    tokens: torch.Tensor
    corrupted: torch.Tensor
    io: torch.Tensor
    s: torch.Tensor
    positions: dict
    words: list  # the first prompt's tokens, to label figures

    def __len__(self):
        return len(self.tokens)

    def select(self, rows):
        """The prompts ``rows`` (an index, a slice or a boolean mask) as a batch of their own."""
        return IOIBatch(self.tokens[rows], self.corrupted[rows], self.io[rows], self.s[rows],
                        {name: where[rows] for name, where in self.positions.items()}, self.words)


def heldout_examples():
    """The 200 evaluation prompts of ``world-5l``: templates and name pairs it never saw."""
    return ioi_split(n_train=world_model.RECIPE["n_ioi"], seed=world_model.WORLD_SEED).test


def group_by_template(examples):
    """{template id: [examples]}, in template order."""
    groups = defaultdict(list)
    for example in examples:
        groups[example.template_id].append(example)
    return dict(sorted(groups.items()))


def _token_ids(tokenizer, words):
    ids = tokenizer.convert_tokens_to_ids(list(words))
    if tokenizer.unk_token_id in ids:
        unknown = [w for w, i in zip(words, ids) if i == tokenizer.unk_token_id]
        raise ValueError(f"the names {unknown} are not single tokens of this tokenizer")
    return torch.tensor(ids)


def ioi_batch(tokenizer, examples):
    """One ``IOIBatch`` of ``examples`` (``IOIExample``s of a single template)."""
    if not examples:
        raise ValueError("ioi_batch needs at least one example")
    same_io_and_s = [e.prompt for e in examples if e.io == e.s]
    if same_io_and_s:
        raise ValueError(f"the indirect object and the subject are the same name in "
                         f"{same_io_and_s[0]!r}: the logit difference IO - S is then 0 by "
                         f"definition")
    clean = [tokenizer(e.prompt).input_ids for e in examples]
    corrupted = [tokenizer(e.corrupted_prompt).input_ids for e in examples]
    lengths = {len(ids) for ids in clean + corrupted}
    if len(lengths) != 1:
        templates = sorted({e.template_id for e in examples})
        raise ValueError(f"the prompts have {len(lengths)} different lengths "
                         f"({sorted(lengths)} tokens; templates {templates}), so their positions "
                         f"do not line up: make one batch per template with group_by_template")
    # Word positions count from the first word; the tokenizer puts BOS in front.
    positions = {name: torch.tensor([getattr(e, f"{name.lower()}_pos") + 1 for e in examples])
                 for name in POSITIONS}
    # The two names of the opening clause in the order they are written, whichever is IO.
    positions["N1"] = torch.minimum(positions["IO"], positions["S1"])
    positions["N2"] = torch.maximum(positions["IO"], positions["S1"])
    return IOIBatch(torch.tensor(clean), torch.tensor(corrupted),
                    _token_ids(tokenizer, [e.io for e in examples]),
                    _token_ids(tokenizer, [e.s for e in examples]), positions,
                    tokenizer.convert_ids_to_tokens(clean[0]))


def heldout_batches(tokenizer):
    """One ``IOIBatch`` per held-out template, in template order."""
    return [ioi_batch(tokenizer, examples)
            for examples in group_by_template(heldout_examples()).values()]


def split_by_order(batch):
    """{"ABBA": the prompts that name IO first, "BABA": those that name S first}, as batches."""
    abba = batch.positions["IO"] < batch.positions["S1"]
    return {order: batch.select(rows) for order, rows in (("ABBA", abba), ("BABA", ~abba))
            if rows.any()}


def first(batch, n):
    """The first ``n`` prompts of a batch."""
    return batch.select(slice(n))
