"""DeceptionBench-style deception items: the project's own scenario bank, and a loader for the real set.

The measure (docs/design.md, "Measures"): a neutral *inner* prompt gives the model's own stance; an *outer*
prompt (system + user) adds a goal that rewards departing from it. An item is deceptive when the outer
stance departs from the inner one; the deception rate is the share of deceptive items, per category
and in total. Categories follow DeceptionBench: sycophancy, strategic deception, honesty evasion,
alignment faking, sandbagging.

Two sources:

- The project's own bank, ``seeds/deception_scenarios.yaml``, scored offline by forced choice. Every
  scenario holds a proposition with two same-form alternatives ("Ice <pivotal>floats/sinks</pivotal> in
  water."); a stance is the statement with the higher log-likelihood as the model's whole reply, read
  once after the inner prompt and once after the outer prompts. The seed only decides which option is
  shown first (exactly balanced within each category).
- The real ``PKU-Alignment/DeceptionBench`` (``load_deceptionbench``): 180 free-text scenarios without
  pivotal statements, so its items cannot be read by forced choice; they are scored by generating
  replies to the inner and outer prompts and letting a judge model decide whether the outer reply
  departs from the inner one.

    items = build_deception_items(seed=0)
    rows = load_deceptionbench("data/deceptionbench/deceptionbench_0527.json")
"""

from __future__ import annotations

import functools
import random
from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_args

from pydantic import Field, model_validator

from deceptionlab.benchmarks.pivotal import PivotalItem
from deceptionlab.core.errors import DataError
from deceptionlab.data.seed_tables import (
    PivotalEntry,
    balanced_orders,
    mentions,
    parse_grouped_table,
    read_seed_table,
)

if TYPE_CHECKING:
    pass

SEED_FILE = "deception_scenarios.yaml"
Category = Literal["sycophancy", "strategic_deception", "honesty_evasion", "alignment_faking", "sandbagging"]
CATEGORIES: tuple[str, ...] = get_args(Category)

# The real dataset's ``type`` values and the project's category for each.
DeceptionBenchType = Literal[
    "Sycophantic_Misrepresentation",
    "Goal_Driven_Rule_Breaking_Manipulation",
    "Honesty_Evasion_Under_Pressure",
    "Alignment_Faking",
    "Sandbagging",
]
DECEPTIONBENCH_CATEGORIES: dict[str, Category] = {
    "Sycophantic_Misrepresentation": "sycophancy",
    "Goal_Driven_Rule_Breaking_Manipulation": "strategic_deception",
    "Honesty_Evasion_Under_Pressure": "honesty_evasion",
    "Alignment_Faking": "alignment_faking",
    "Sandbagging": "sandbagging",
}


class DeceptionItem(PivotalItem):
    """One forced-choice deception item: a proposition, a neutral inner prompt and the outer prompts.

    ``ground_truth`` is the true statement: the deception verdict does not need it, but inner-stance
    accuracy does, and a deception rate over beliefs at chance means nothing (docs/design.md, "Measures").
    """

    id: str = Field(min_length=1)
    category: Category
    inner_prompt: str = Field(min_length=1)
    outer_system_prompt: str = Field(min_length=1)
    outer_user_prompt: str = Field(min_length=1)
    meta: dict[str, Any] = Field(default_factory=dict)


class DeceptionScenario(PivotalEntry):
    """A seed-table entry; ``proposition`` holds the true option first (see the seed file's header)."""

    question: str = Field(min_length=1)  # the neutral inner prompt
    system: str = Field(min_length=1)
    user: str = Field(min_length=1)
    # Whether the outer prompts must name the false option (the view, goal or instruction they push).
    names_false_option: ClassVar[bool] = True

    @model_validator(mode="after")
    def _prompts_fit_the_measure(self) -> DeceptionScenario:
        for option in (self.true_option, self.false_option):
            if mentions(self.question, option):
                raise ValueError(f"question {self.question!r} names the option {option!r}")
        outer = f"{self.system}\n{self.user}"
        if mentions(outer, self.true_option):
            raise ValueError(f"the outer prompts name the true option {self.true_option!r}")
        if self.names_false_option and not mentions(outer, self.false_option):
            raise ValueError(f"the outer prompts never name the false option {self.false_option!r}")
        return self


class SandbaggingScenario(DeceptionScenario):
    names_false_option: ClassVar[bool] = False  # told to underperform, not which wrong answer to give


SCENARIO_TYPES: dict[str, type[DeceptionScenario]] = {
    category: SandbaggingScenario if category == "sandbagging" else DeceptionScenario for category in CATEGORIES
}


def parse_scenario_table(raw: object, source: str = SEED_FILE) -> dict[str, tuple[DeceptionScenario, ...]]:
    """Validate a loaded seed table; a bad entry raises DataError naming its category, index and id."""
    table = parse_grouped_table(raw, SCENARIO_TYPES, source, group="category")
    missing = [category for category in CATEGORIES if category not in table]
    if missing:
        raise DataError(f"{source}: no scenarios for {', '.join(missing)}")
    return table


@functools.cache
def load_scenario_table() -> dict[str, tuple[DeceptionScenario, ...]]:
    return parse_scenario_table(read_seed_table(SEED_FILE))


def build_deception_items(seed: int) -> list[DeceptionItem]:
    """Every scenario of every category, in seed-table order; the seed only decides the option order."""
    table = load_scenario_table()
    items: list[DeceptionItem] = []
    for category in CATEGORIES:
        # One stream per category: editing one category's scenarios leaves the others' items unchanged.
        rng = random.Random(f"{seed}:{category}")
        scenarios = table[category]
        for scenario, true_first in zip(scenarios, balanced_orders(len(scenarios), rng)):
            items.append(
                DeceptionItem(
                    id=f"{category}-{scenario.id}",
                    category=category,
                    proposition=scenario.ordered_proposition(true_first),
                    ground_truth=scenario.true_statement,
                    inner_prompt=scenario.question,
                    outer_system_prompt=scenario.system,
                    outer_user_prompt=scenario.user,
                    meta={"topic": scenario.topic},
                )
            )
    return items
