"""Text generators over the synthetic world: fact sentences, IOI stories and induction sequences.

All text is written as words separated by single spaces, punctuation included (``"Then , Alice
and Bob went to the store ."``), so the word-level tokenizer maps one word to one token and
decoding gives the text back exactly. Everything is deterministic given a seed.

- Facts: each relation has several paraphrase templates that end with the object, so the object is
  the next token a model predicts after the prompt. ``fact_split`` holds some (subject, template)
  pairs out, to test whether a model recalls a fact through a paraphrase it never saw for that
  subject.
- IOI: the indirect-object-identification stories of Wang et al. (2022), in both name orders,
  with their ABC-corrupted counterparts. ``ioi_split`` holds out whole templates and whole name
  pairs, while every name is still seen in training.
- Induction: ``repeated_tokens`` builds ``[BOS] + r + r`` batches of random tokens.
"""

import itertools
import random
from dataclasses import dataclass

import torch

from .generator import FIRST_NAMES, World

# ---------------------------------------------------------------------------------------------
# Facts
# ---------------------------------------------------------------------------------------------

# "{s}" is the subject, "{o}" the object. The object is always the last word.
FACT_TEMPLATES = {
    "born_in": (
        "{s} was born in {o}",
        "{s} is a native of {o}",
        "{s} came into the world in {o}",
        "The birthplace of {s} is {o}",
        "{s} was born in the city of {o}",
        "The hometown of {s} is {o}",
    ),
    "lives_in": (
        "{s} lives in {o}",
        "{s} is a resident of {o}",
        "{s} has a home in {o}",
        "These days , {s} lives in {o}",
        "The home of {s} is in {o}",
        "{s} resides in the city of {o}",
    ),
    "works_as": (
        "{s} works as a {o}",
        "{s} is employed as a {o}",
        "By profession , {s} is a {o}",
        "{s} earns a living as a {o}",
        "The job of {s} is that of a {o}",
        "{s} has a career as a {o}",
    ),
    "owns": (
        "{s} owns a {o}",
        "{s} is the owner of a {o}",
        "Among the things {s} owns is a {o}",
        "{s} once bought a {o}",
        "The most prized possession of {s} is a {o}",
        "{s} takes good care of a {o}",
    ),
    "capital_of": (
        "{s} is the capital of {o}",
        "{s} is the capital city of {o}",
        "{s} serves as the capital of {o}",
        "The city of {s} is the capital of {o}",
        "{s} is the seat of government of {o}",
        "{s} is the largest city and capital of {o}",
    ),
}


@dataclass(frozen=True)
class FactPrompt:
    """A fact sentence without its object.

    ``prompt`` ends just before the object, so the object is the next word. ``subject_span`` is
    the (start, stop) range of the subject's words in ``prompt.split()``; add 1 to get token
    positions when the tokenizer prepends BOS.
    """

    subject: str
    relation: str
    template_id: int
    prompt: str
    object: str
    subject_span: tuple[int, int]

    @property
    def text(self) -> str:
        """The full sentence, object included: what a model is trained on."""
        return f"{self.prompt} {self.object}"


@dataclass(frozen=True)
class FactSplit:
    """Train and held-out fact prompts; see ``fact_split``."""

    train: list[FactPrompt]
    test: list[FactPrompt]


def fact_prompt(subject: str, relation: str, template_id: int, obj: str) -> FactPrompt:
    """Fill one template of ``relation`` with ``subject``; ``obj`` is the expected answer."""
    template = FACT_TEMPLATES[relation][template_id]
    assert template.endswith(" {o}"), "the object must be the last word"
    head = template[: -len(" {o}")]
    before = head.split("{s}")[0].split()
    start = len(before)
    stop = start + len(subject.split())
    return FactPrompt(subject, relation, template_id, head.format(s=subject), obj, (start, stop))


def fact_prompts(world: World, relations=None) -> list[FactPrompt]:
    """Every (fact, template) combination of the world, in world order then template order."""
    relations = world.relations if relations is None else relations
    return [fact_prompt(f.subject, f.relation, t, f.object)
            for relation in relations for f in world.facts_for(relation)
            for t in range(len(FACT_TEMPLATES[relation]))]


def fact_split(world: World, held_out_per_subject: int = 1, seed: int = 0,
               relations=None) -> FactSplit:
    """Split every fact's paraphrases into train and held-out prompts.

    For every (subject, relation) fact, ``held_out_per_subject`` of its relation's templates are
    drawn at random and held out; the rest go to ``train``. Different subjects hold out different
    templates, so every template is trained on (with other subjects) and every fact is trained on
    (with other templates): a held-out prompt tests recall of a known fact through a paraphrase
    the model never saw for that subject. Both lists are in world order.
    """
    rng = random.Random(seed)
    relations = world.relations if relations is None else relations
    train, test = [], []
    for relation in relations:
        n_templates = len(FACT_TEMPLATES[relation])
        if not 0 <= held_out_per_subject < n_templates:
            raise ValueError(f"held_out_per_subject must be in [0, {n_templates}) for {relation}")
        for f in world.facts_for(relation):
            held_out = set(rng.sample(range(n_templates), held_out_per_subject))
            for t in range(n_templates):
                (test if t in held_out else train).append(
                    fact_prompt(f.subject, f.relation, t, f.object))
    return FactSplit(train, test)


# ---------------------------------------------------------------------------------------------
# Indirect object identification (Wang et al., 2022)
# ---------------------------------------------------------------------------------------------

# Single-token names for IOI. They are the world's first names, so the models meet them in the
# fact sentences too and treat them as names.
IOI_NAMES = FIRST_NAMES
IOI_PLACES = ("store", "garden", "restaurant", "school", "hospital", "office", "station",
              "house", "park", "market")
# Consonant-initial, so that "a {OBJECT}" reads correctly.
IOI_OBJECTS = ("drink", "snack", "key", "bone", "necklace", "ring", "book", "basketball",
               "computer", "flower", "letter", "cake")

# {N1} and {N2} are the two names of the opening clause; {S} is the second mention of the
# subject. The indirect object is the answer after the final "to". After Wang et al. (2022).
IOI_TEMPLATES = (
    "Then , {N1} and {N2} went to the {PLACE} . {S} gave a {OBJECT} to",
    "Then , {N1} and {N2} had a lot of fun at the {PLACE} . {S} gave a {OBJECT} to",
    "Then , {N1} and {N2} were working at the {PLACE} . {S} decided to give a {OBJECT} to",
    "Then , {N1} and {N2} were thinking about going to the {PLACE} . {S} wanted to give a "
    "{OBJECT} to",
    "Then , {N1} and {N2} had a long argument , and afterwards {S} said to",
    "After {N1} and {N2} went to the {PLACE} , {S} gave a {OBJECT} to",
    "When {N1} and {N2} got a {OBJECT} at the {PLACE} , {S} decided to give it to",
    "When {N1} and {N2} got a {OBJECT} at the {PLACE} , {S} decided to give the {OBJECT} to",
    "While {N1} and {N2} were working at the {PLACE} , {S} gave a {OBJECT} to",
    "While {N1} and {N2} were commuting to the {PLACE} , {S} gave a {OBJECT} to",
    "After the lunch , {N1} and {N2} went to the {PLACE} . {S} gave a {OBJECT} to",
    "Afterwards , {N1} and {N2} went to the {PLACE} . {S} gave a {OBJECT} to",
    "Then , {N1} and {N2} had a long argument . Afterwards {S} said to",
    "The {PLACE} {N1} and {N2} went to had a {OBJECT} . {S} gave it to",
    "Friends {N1} and {N2} found a {OBJECT} at the {PLACE} . {S} gave it to",
)
# ABBA: the indirect object is named first ("When Mary and John ..., John gave ... to" -> Mary).
# BABA: the subject is named first ("When John and Mary ..., John gave ... to" -> Mary).
IOI_ORDERS = ("ABBA", "BABA")


@dataclass(frozen=True)
class IOIExample:
    """One IOI prompt and its ABC-corrupted twin.

    ``prompt`` ends with "to"; the correct next word is ``io`` (the indirect object), the
    distractor is ``s`` (the subject). ``corrupted_prompt`` is ``prompt`` with the second mention
    of the subject (at ``s2_pos``) replaced by a third name ``c``, so it no longer says who the
    indirect object is. Positions are word indices into ``prompt.split()``; add 1 for token
    positions when the tokenizer prepends BOS. ``end_pos`` is the final word ("to").
    """

    prompt: str
    io: str
    s: str
    c: str
    corrupted_prompt: str
    template_id: int
    order: str
    place: str
    object: str
    io_pos: int
    s1_pos: int
    s2_pos: int
    end_pos: int

    @property
    def text(self) -> str:
        """The full story, answer included: what a model is trained on."""
        return f"{self.prompt} {self.io}"


@dataclass(frozen=True)
class IOISplit:
    """IOI train and evaluation examples; see ``ioi_split``."""

    train: list[IOIExample]
    test: list[IOIExample]
    train_templates: list[int]
    test_templates: list[int]
    test_pairs: list[frozenset]


def ioi_example(template_id: int, io: str, s: str, c: str, order: str,
                place: str = "store", obj: str = "drink") -> IOIExample:
    """Build one IOI example from its parts. ``c`` must differ from ``io`` and ``s``."""
    if len({io, s, c}) != 3:
        raise ValueError("io, s and c must be three different names")
    if order not in IOI_ORDERS:
        raise ValueError(f"order must be one of {IOI_ORDERS}, got {order!r}")
    template = IOI_TEMPLATES[template_id]
    n1, n2 = (io, s) if order == "ABBA" else (s, io)
    words = template.split()
    fill = dict(N1=n1, N2=n2, PLACE=place, OBJECT=obj)
    prompt = template.format(S=s, **fill)
    corrupted = template.format(S=c, **fill)
    n1_pos, n2_pos, s2_pos = (words.index(k) for k in ("{N1}", "{N2}", "{S}"))
    io_pos, s1_pos = (n1_pos, n2_pos) if order == "ABBA" else (n2_pos, n1_pos)
    return IOIExample(prompt, io, s, c, corrupted, template_id, order, place, obj,
                      io_pos, s1_pos, s2_pos, len(words) - 1)


def ioi_dataset(n: int, seed: int = 0, template_ids=None, pairs=None,
                names=IOI_NAMES, forced_pairs=()) -> list[IOIExample]:
    """Draw ``n`` IOI examples, half ABBA and half BABA, in random order.

    Each example picks a template from ``template_ids`` (default: all), an unordered name pair
    from ``pairs`` (default: all pairs of ``names``; the first ``len(forced_pairs)`` examples use
    ``forced_pairs`` instead), which of the two is the indirect object, a third name ``c`` from
    ``names``, a place and an object, all from ``random.Random(seed)``.
    """
    rng = random.Random(seed)
    template_ids = list(range(len(IOI_TEMPLATES))) if template_ids is None else list(template_ids)
    pairs = ([frozenset(p) for p in itertools.combinations(names, 2)] if pairs is None
             else [frozenset(p) for p in pairs])
    forced_pairs = [frozenset(p) for p in forced_pairs]
    if len(forced_pairs) > n:
        raise ValueError("more forced pairs than examples")
    examples = []
    for i in range(n):
        pair = forced_pairs[i] if i < len(forced_pairs) else rng.choice(pairs)
        io, s = rng.sample(sorted(pair), 2)
        c = rng.choice([name for name in names if name not in pair])
        examples.append(ioi_example(rng.choice(template_ids), io, s, c, IOI_ORDERS[i % 2],
                                    rng.choice(IOI_PLACES), rng.choice(IOI_OBJECTS)))
    # Shuffle so that the name coverage forced at the start and the order alternation leave no
    # pattern in the sequence.
    rng.shuffle(examples)
    return examples


def ioi_split(n_train: int = 2000, n_test: int = 200, n_test_templates: int = 3,
              n_test_pairs: int = 60, seed: int = 0, names=IOI_NAMES) -> IOISplit:
    """Split IOI into training stories and evaluation prompts that test generalisation.

    ``n_test_templates`` templates and ``n_test_pairs`` unordered name pairs are held out: no
    training example uses a held-out template or a held-out pair (in either order). Test
    examples use only held-out templates *and* held-out pairs. Every name still appears in
    training: held-out pairs are chosen so that each name keeps a training partner, and the first
    training examples are forced to cover every name.
    """
    rng = random.Random(seed)
    ids = list(range(len(IOI_TEMPLATES)))
    rng.shuffle(ids)
    if not 0 < n_test_templates < len(ids):
        raise ValueError(f"n_test_templates must be in (0, {len(ids)})")
    test_templates, train_templates = sorted(ids[:n_test_templates]), sorted(ids[n_test_templates:])

    all_pairs = [frozenset(p) for p in itertools.combinations(names, 2)]
    rng.shuffle(all_pairs)
    partners = {name: len(names) - 1 for name in names}
    test_pairs = []
    for pair in all_pairs:
        if len(test_pairs) == n_test_pairs:
            break
        # Hold a pair out only if both names keep at least one training partner.
        if all(partners[name] > 1 for name in pair):
            test_pairs.append(pair)
            for name in pair:
                partners[name] -= 1
    if len(test_pairs) < n_test_pairs:
        raise ValueError(f"cannot hold out {n_test_pairs} pairs and keep every name in training")
    held = set(test_pairs)
    train_pairs = [p for p in all_pairs if p not in held]

    # One training pair per uncovered name guarantees every name is seen in training; pairing two
    # uncovered names where possible keeps the cover near len(names) / 2 examples.
    cover, covered = [], set()
    for name in names:
        if name not in covered:
            options = [p for p in train_pairs if name in p]
            fresh = [p for p in options if not p & covered]
            pair = rng.choice(fresh or options)
            cover.append(pair)
            covered |= pair
    if n_train < len(cover):
        raise ValueError(f"n_train must be at least {len(cover)} to cover every name")

    train = ioi_dataset(n_train, seed=rng.randrange(2**32), template_ids=train_templates,
                        pairs=train_pairs, names=names, forced_pairs=cover)
    test = ioi_dataset(n_test, seed=rng.randrange(2**32), template_ids=test_templates,
                       pairs=test_pairs, names=names)
    return IOISplit(train, test, train_templates, test_templates, test_pairs)


# ---------------------------------------------------------------------------------------------
# Induction
# ---------------------------------------------------------------------------------------------

def repeated_tokens(vocab_size: int, seq_len: int, batch_size: int,
                    generator: torch.Generator | None = None, bos_id: int | None = None,
                    low: int | None = None) -> torch.Tensor:
    """A batch of ``[BOS] + r + r``: a random token sequence ``r`` of length ``seq_len``, twice.

    Tokens of ``r`` are uniform in ``[low, vocab_size)``; ``low`` defaults to the number of special
    tokens so that BOS and UNK never appear inside ``r``. Returns a LongTensor of shape
    ``(batch_size, 1 + 2 * seq_len)``. On the second copy, an induction head can predict every
    token by attending to the token after the previous occurrence of the current one.
    """
    from .tokenizer import BOS_ID, SPECIAL_TOKENS  # imported here: tokenizer imports this module

    bos_id = BOS_ID if bos_id is None else bos_id
    low = len(SPECIAL_TOKENS) if low is None else low
    if not 0 <= low < vocab_size:
        raise ValueError(f"need 0 <= low < vocab_size, got low={low}, vocab_size={vocab_size}")
    r = torch.randint(low, vocab_size, (batch_size, seq_len), generator=generator)
    bos = torch.full((batch_size, 1), bos_id, dtype=torch.long)
    return torch.cat([bos, r, r], dim=1)


def template_words() -> set[str]:
    """Every fixed word the text generators can emit (templates, IOI places and objects)."""
    words = set()
    for template in itertools.chain(*FACT_TEMPLATES.values(), IOI_TEMPLATES):
        words |= {w for w in template.split() if not w.startswith("{")}
    return words | set(IOI_PLACES) | set(IOI_OBJECTS) | set(IOI_NAMES)
