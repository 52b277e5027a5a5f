"""A seeded synthetic world: people, places, jobs, belongings and the facts that link them.

The course trains its own small GPT-2 models, so it needs knowledge that is (a) known exactly,
(b) never seen by any pretrained model and (c) reproducible from a seed. ``generate_world`` draws
such a world from fixed word lists. People have two-word full names ("Alice Varga"): a full name is
unique, but its first and last names are shared with other people, so a model has to combine both
tokens to recall a person's facts, which is what chapter 06 (locating and editing facts) studies.

Relations (subject -> object):

- ``born_in``    person -> city
- ``lives_in``   person -> city
- ``works_as``   person -> occupation
- ``owns``       person -> object
- ``capital_of`` city -> country (every country has exactly one capital city)

Every entity name other than a full name is a single word, so an object is a single token.
"""

import random
from dataclasses import dataclass, field

# Single words only. Place names are invented so that no real-world knowledge applies to them.
FIRST_NAMES = (
    "Alice", "Bob", "Carol", "David", "Emma", "Frank", "Grace", "Henry", "Irene", "Jack",
    "Karen", "Leo", "Maria", "Nathan", "Olivia", "Paul", "Rachel", "Sam", "Tina", "Victor",
    "Wendy", "Adam", "Bella", "Chris", "Diana", "Ethan", "Fiona", "George", "Hannah", "Isaac",
    "Julia", "Kevin", "Laura", "Mark", "Nina", "Oscar", "Peter", "Rose", "Simon", "Tom",
    "Ursula", "Vera", "William", "Zoe", "Anna", "Ben", "Clara", "Daniel", "Eva", "Felix",
)
LAST_NAMES = (
    "Abbott", "Barker", "Castillo", "Dalton", "Eriksen", "Fischer", "Garza", "Holloway",
    "Ivanova", "Jensen", "Kowalski", "Lindqvist", "Moreau", "Novak", "Okafor", "Petrov",
    "Quinlan", "Rossi", "Sandoval", "Tanaka", "Ulrich", "Varga", "Whitfield", "Yamada",
    "Zimmer", "Adler", "Brennan", "Costa", "Dubois", "Engel", "Ferreira", "Gallo",
    "Horvat", "Ibsen", "Keller", "Larsen", "Mendes", "Nilsson", "Oliveira", "Popescu",
)
CITIES = (
    "Arvenna", "Belmora", "Calder", "Dunmere", "Eskarra", "Falloway", "Galbrook", "Harrowgate",
    "Istria", "Jorvale", "Kestrel", "Lunmouth", "Marrowick", "Norhaven", "Ostrava", "Pellmoor",
    "Quenby", "Rhosmere", "Silverton", "Tamsford", "Ulverby", "Vantor", "Westerholm", "Yarrowby",
    "Zelcastle", "Ambervale", "Brightwater", "Coldmarsh", "Dravenport", "Elmswick",
)
COUNTRIES = (
    "Aldoria", "Borvania", "Caldemar", "Drovenia", "Estoval", "Farland", "Gallivant", "Hesperia",
    "Ilvaria", "Jorland", "Korvessa", "Lurania", "Mordavia", "Nestoria", "Osteria",
)
# Consonant-initial, so that every template can say "a {occupation}" / "a {object}".
OCCUPATIONS = (
    "baker", "carpenter", "doctor", "farmer", "lawyer", "nurse", "painter", "pilot", "teacher",
    "writer", "tailor", "plumber", "sailor", "dentist", "banker", "chemist", "gardener",
    "merchant", "musician", "soldier",
)
OBJECTS = (
    "bicycle", "piano", "guitar", "camera", "telescope", "lantern", "violin", "kettle",
    "compass", "typewriter", "sailboat", "tractor", "microscope", "harp", "canoe", "drum",
    "motorcycle", "saxophone", "hammock", "globe",
)

RELATIONS = ("born_in", "lives_in", "works_as", "owns", "capital_of")


@dataclass(frozen=True)
class Person:
    """A person of the world; ``name`` is the full, unique two-word name."""

    first: str
    last: str

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"


@dataclass(frozen=True)
class Fact:
    """One (subject, relation, object) triple, e.g. ``Fact("Alice Varga", "born_in", "Calder")``."""

    subject: str
    relation: str
    object: str


@dataclass
class World:
    """A generated world. Equal seeds and sizes give equal worlds (``==`` compares everything).

    Entity lists are in the order they were drawn; ``facts`` lists every fact once, grouped by
    relation in the order of ``RELATIONS`` (relations absent from the world are skipped).
    """

    seed: int
    people: list[Person]
    cities: list[str]
    countries: list[str]
    occupations: list[str]
    objects: list[str]
    facts: list[Fact]
    _index: dict = field(default=None, init=False, repr=False, compare=False)

    @property
    def relations(self) -> list[str]:
        """The relations that have at least one fact, in ``RELATIONS`` order."""
        present = {f.relation for f in self.facts}
        return [r for r in RELATIONS if r in present]

    def facts_for(self, relation: str) -> list[Fact]:
        """All facts of one relation, in world order."""
        return [f for f in self.facts if f.relation == relation]

    def subjects(self, relation: str) -> list[str]:
        """The subjects of one relation, in world order."""
        return [f.subject for f in self.facts_for(relation)]

    def lookup(self, subject: str, relation: str) -> str:
        """The object of ``(subject, relation)``; raises KeyError if the world has no such fact."""
        if self._index is None:
            self._index = {(f.subject, f.relation): f.object for f in self.facts}
        return self._index[(subject, relation)]

    def capital(self, country: str) -> str:
        """The capital city of ``country``."""
        for f in self.facts_for("capital_of"):
            if f.object == country:
                return f.subject
        raise KeyError(country)

    def entity_names(self) -> list[str]:
        """Every name in the world: full names, cities, countries, occupations and objects."""
        return ([p.name for p in self.people] + self.cities + self.countries
                + self.occupations + self.objects)


def _draw(rng: random.Random, pool: tuple, n: int, what: str) -> list[str]:
    if not 0 <= n <= len(pool):
        raise ValueError(f"n_{what} must be between 0 and {len(pool)}, got {n}")
    return rng.sample(pool, n)


def generate_world(seed: int = 0, n_people: int = 300, n_cities: int = 20, n_countries: int = 10,
                   n_occupations: int = 12, n_objects: int = 12, with_owns: bool = True) -> World:
    """Draw a world deterministically from ``seed``.

    Entities are sampled without replacement from the module's word lists (``FIRST_NAMES`` x
    ``LAST_NAMES`` for people), so each size is bounded by its list. ``n_countries`` of the cities
    become capitals, one per country, so ``n_countries <= n_cities``. Every person gets one city of
    birth, one city of residence (drawn independently, so they often differ), one occupation and,
    with ``with_owns``, one object. Raises ValueError for sizes the lists cannot supply.
    """
    rng = random.Random(seed)
    n_pairs = len(FIRST_NAMES) * len(LAST_NAMES)
    if not 0 <= n_people <= n_pairs:
        raise ValueError(f"n_people must be between 0 and {n_pairs}, got {n_people}")
    if n_countries > n_cities:
        raise ValueError("every country needs its own capital: n_countries must be <= n_cities")
    # Sample full names without replacement from the product, so names are unique but parts repeat.
    picks = rng.sample(range(n_pairs), n_people)
    people = [Person(FIRST_NAMES[i // len(LAST_NAMES)], LAST_NAMES[i % len(LAST_NAMES)])
              for i in picks]
    cities = _draw(rng, CITIES, n_cities, "cities")
    countries = _draw(rng, COUNTRIES, n_countries, "countries")
    occupations = _draw(rng, OCCUPATIONS, n_occupations, "occupations")
    objects = _draw(rng, OBJECTS, n_objects, "objects")
    if n_people and not (cities and occupations and (objects or not with_owns)):
        raise ValueError("people need at least one city, occupation and (with owns) object")

    facts = []
    facts += [Fact(p.name, "born_in", rng.choice(cities)) for p in people]
    facts += [Fact(p.name, "lives_in", rng.choice(cities)) for p in people]
    facts += [Fact(p.name, "works_as", rng.choice(occupations)) for p in people]
    if with_owns:
        facts += [Fact(p.name, "owns", rng.choice(objects)) for p in people]
    # Cities are already in random order, so the first n_countries become the capitals.
    facts += [Fact(city, "capital_of", country) for city, country in zip(cities, countries)]
    return World(seed, people, cities, countries, occupations, objects, facts)
