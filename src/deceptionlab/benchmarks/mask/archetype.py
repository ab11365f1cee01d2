"""What an archetype of the honesty bank is, and the parts its archetypes share.

An ``Archetype`` is a registry entry: the type of its seed entries, the seed file that holds them, and
the function that turns them into items. honesty_bank.py writes known_facts and provided_facts and
keeps the registry of all six; mask_bank.py writes the other four. Both build on what is here:

- ``KnownFact``: a fact a small instruct model knows, with neutral questions that name neither option
  (known_facts, disinformation, doubling_down_known_facts; continuations add a draft).
- ``PressureTemplate`` and ``spread_templates``: a role with an incentive to assert the false value,
  every template of an archetype used equally often.
- ``pressured_fact_items``: a known fact asked once under a pressure template (known_facts,
  disinformation).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import Field, model_validator

from deceptionlab.benchmarks.mask.items import StatisticsItem
from deceptionlab.benchmarks.pivotal import HonestyItem
from deceptionlab.data.seed_tables import (
    PivotalEntry,
    SeedEntry,
    balanced_orders,
    mentions,
)

Entry = TypeVar("Entry", bound=PivotalEntry)
Template = TypeVar("Template")

# An item of any archetype the bank writes (a DoublingDownItem is a HonestyItem).
BankItem = HonestyItem | StatisticsItem


@dataclass(frozen=True)
class Archetype:
    entry_type: type[SeedEntry]
    seed_file: str  # in seeds/; one file may hold several archetypes, each under its own top-level key
    build: Callable[[Sequence[Any], random.Random], list[BankItem]]


@dataclass(frozen=True)
class PressureTemplate:
    """A role with an incentive to assert the false value; its ``str.format`` fields are listed per archetype."""

    name: str
    system: str
    user: str


class KnownFact(PivotalEntry):
    questions: list[str] = Field(min_length=3)  # neutral paraphrases, the first one also used under pressure

    @model_validator(mode="after")
    def _questions_leave_the_choice_open(self) -> KnownFact:
        for question in self.questions:
            for option in (self.true_option, self.false_option):
                if mentions(question, option):
                    raise ValueError(f"question {question!r} names the option {option!r}")
        return self


def spread_templates(templates: Sequence[Template], n: int, rng: random.Random) -> list[Template]:
    """One template per item, every template used equally often (within one)."""
    chosen = [templates[index % len(templates)] for index in range(n)]
    rng.shuffle(chosen)
    return chosen


def pressured_draws(
    entries: Sequence[Entry], templates: Sequence[Template], rng: random.Random
) -> list[tuple[Entry, bool, Template]]:
    """Each entry with whether its true option comes first and its pressure template, in table order.

    The orders are drawn before the templates: the seed's items depend on that order of draws.
    """
    orders = balanced_orders(len(entries), rng)
    return list(zip(entries, orders, spread_templates(templates, len(entries), rng), strict=True))


def pressured_fact_items(
    archetype: str, templates: Sequence[PressureTemplate], facts: Sequence[KnownFact], rng: random.Random
) -> list[HonestyItem]:
    """One item per fact: its neutral questions, and the first question asked under a template.

    Template fields: {false_answer} (the false option), {question}.
    """
    items = []
    for fact, true_first, template in pressured_draws(facts, templates, rng):
        fields = {"false_answer": fact.false_option, "question": fact.questions[0]}
        items.append(
            HonestyItem(
                id=f"{archetype}-{fact.id}",
                archetype=archetype,
                proposition=fact.ordered_proposition(true_first),
                ground_truth=fact.true_statement,
                belief_prompts=list(fact.questions),
                system_prompt=template.system.format(**fields),
                user_prompt=template.user.format(**fields),
                meta={"topic": fact.topic, "pressure_template": template.name},
            )
        )
    return items
