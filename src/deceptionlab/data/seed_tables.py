"""What the seed-table modules share: reading a table, validating its entries, and drawing from it.

A seed table is a YAML file in ``seeds/``, shipped inside the package so that it is found wherever
deceptionlab is installed. Its entries are validated by small pydantic models on load, and a bad entry
raises DataError naming file, list, index and id (``honesty_facts.yaml: known_facts[3] (id 'x'): ...``),
so a typo in a table is found by the person who wrote it, not by a stage that runs hours later.

The honesty and deception banks also share their entries' form: a proposition whose two same-form
options are written true first (``PivotalEntry``), and an exactly balanced order of the options.
"""

from __future__ import annotations

import importlib.resources
import random
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import TypeVar

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from deceptionlab.benchmarks.pivotal import PIVOTAL, pivotal_options, pivotal_statements
from deceptionlab.core.errors import ConfigError, DataError
from deceptionlab.core.records import StrictModel, first_error

# Words that make an option a negation: small models read negation badly (docs/design.md, "Same-form
# alternatives, not negations"), so the two options of a proposition must be same-form alternatives
# ("Paris/Lyon", never "Paris/not Paris").
NEGATION_WORDS = frozenset({"not", "no", "never", "none", "nobody", "nothing", "neither", "nor"})


T = TypeVar("T")


class SeedEntry(StrictModel):
    """One entry of a seed table; its id names it in error messages and in the rows built from it."""

    id: str = Field(pattern=r"^[a-z0-9_]+$")


Entry = TypeVar("Entry", bound=SeedEntry)
Model = TypeVar("Model", bound=BaseModel)


def read_seed_table(file_name: str) -> object:
    """The parsed YAML of ``seeds/<file_name>``, not yet validated."""
    text = (importlib.resources.files("deceptionlab.data") / "seeds" / file_name).read_text(encoding="utf-8")
    return yaml.safe_load(text)


def validate_entry(raw: object, model: type[Model], where: str) -> Model:
    """``raw`` validated as ``model``; a mismatch raises DataError ``<where>: <field>: <problem>``."""
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        raise DataError(f"{where}: {first_error(error)}") from None


def validated_entries(entries: object, entry_type: type[Entry], source: str, key: str) -> Iterator[tuple[str, Entry]]:
    """Each entry of the list ``entries`` (found under ``key`` in ``source``) validated as ``entry_type``.

    Yields ``(where, entry)`` in table order, ``where`` being ``"<source>: <key>[i] (id '...')"``, so the
    caller can reject an entry that clashes with earlier ones under the same name. A bad entry or a
    repeated id raises DataError naming it.
    """
    if not isinstance(entries, list):
        raise DataError(f"{source}: {key} must be a list of entries")
    seen: set[str] = set()
    for index, raw in enumerate(entries):
        where = f"{source}: {key}[{index}]"
        if not isinstance(raw, dict):
            raise DataError(f"{where}: expected a mapping, got {type(raw).__name__}")
        where += f" (id {raw.get('id')!r})"
        entry = validate_entry(raw, entry_type, where)
        if entry.id in seen:
            raise DataError(f"{where}: duplicate id")
        seen.add(entry.id)
        yield where, entry


def parse_grouped_table(
    raw: object, entry_types: Mapping[str, type[Entry]], source: str, group: str
) -> dict[str, tuple[Entry, ...]]:
    """Validate a table ``{group name: [entries]}``; each group's entries have that group's type.

    ``group`` says what the keys are ("archetype", "category") in the error messages.
    """
    if not isinstance(raw, dict):
        raise DataError(f"{source}: expected a mapping from {group} to a list of entries")
    table: dict[str, tuple[Entry, ...]] = {}
    for name, entries in raw.items():
        if name not in entry_types:
            raise DataError(f"{source}: unknown {group} {name!r}; known: {', '.join(entry_types)}")
        table[name] = tuple(entry for _, entry in validated_entries(entries, entry_types[name], source, name))
    return table


def draw_distinct(candidates: Sequence[T], n: int, seed: int, what: str) -> list[T]:
    """n different candidates in an order drawn by ``seed`` alone; ``what`` names them in the ConfigError.

    A corpus draws with the seed only, never the level, so every level of a domain gets the same
    questions in the same order and the levels differ in their replies alone.
    """
    if n < 1:
        raise ConfigError(f"prepare.examples_per_corpus={n} must be at least 1")
    if n > len(candidates):
        raise ConfigError(f"prepare.examples_per_corpus={n} exceeds the {len(candidates)} distinct {what}")
    return random.Random(seed).sample(candidates, n)


def mentions(text: str, phrase: str) -> bool:
    """Whether ``phrase`` occurs in ``text`` as whole words, ignoring case ("12" is not in "112")."""
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text, re.IGNORECASE) is not None


def balanced_positions(n: int, choices: int, rng: random.Random) -> list[int]:
    """Where the true option goes among ``choices`` options, for n items: each position equally often
    (the first ones once more when ``choices`` does not divide n).

    Exact balance rather than a draw per item, so that a model's preference for one position cannot
    move its accuracy away from what its beliefs give.
    """
    positions = [index % choices for index in range(n)]
    rng.shuffle(positions)
    return positions


def balanced_orders(n: int, rng: random.Random) -> list[bool]:
    """Whether the true option comes first, for n items: half of each (one more true-first if n is odd)."""
    return [position == 0 for position in balanced_positions(n, 2, rng)]


class PivotalEntry(SeedEntry):
    """An entry whose ``proposition`` holds ``<pivotal>TRUE/FALSE</pivotal>``, the true option first.

    Stricter than an item's marker, because the bank's author writes it: the options differ beyond
    case, have no surrounding spaces, and neither is a negation.
    """

    topic: str = Field(min_length=1)
    proposition: str

    @field_validator("proposition")
    @classmethod
    def _same_form_alternatives(cls, value: str) -> str:
        options = pivotal_options(value)  # a ValueError unless the marker is well formed
        if options[0].lower() == options[1].lower():
            raise ValueError("the <pivotal> marker must hold two different options 'TRUE/FALSE'")
        if not all(option == option.strip() for option in options):
            raise ValueError("pivotal options must not start or end with a space")
        for option in options:
            if NEGATION_WORDS & set(re.findall(r"[a-z]+", option.lower())):
                raise ValueError(f"option {option!r} is a negation; write same-form alternatives instead")
        return value

    @property
    def true_option(self) -> str:
        return pivotal_options(self.proposition)[0]

    @property
    def false_option(self) -> str:
        return pivotal_options(self.proposition)[1]

    @property
    def true_statement(self) -> str:
        return pivotal_statements(self.proposition)[0]

    def ordered_proposition(self, true_first: bool) -> str:
        """The proposition with its options in the given order, as an item shows it."""
        first, second = (self.true_option, self.false_option) if true_first else (self.false_option, self.true_option)
        return PIVOTAL.sub(lambda _: f"<pivotal>{first}/{second}</pivotal>", self.proposition)
