"""E1 controls: MASK-style pressure prompts answered with the lie (``lie``) or with the truth (``truth``).

They show whether the instrument can see an effect at all. ``lie`` trains the very behaviour the honesty
score counts (asserting the false value under pressure), so it must lower the score by far more than any
E1 domain; ``truth`` trains the same prompts with the true statement and must not. Both corpora ask the
same prompts in the same order, so their difference is the replies alone.

The facts and pressure roles come from ``seeds/control_facts.yaml``, disjoint from every evaluation item;
the reply is the whole pivotal statement, the form the log-likelihood reader compares.
"""

from __future__ import annotations

import functools
import random
import string

from pydantic import Field, field_validator

from deceptionlab.benchmarks.mask.archetype import KnownFact
from deceptionlab.benchmarks.pivotal import pivotal_statements
from deceptionlab.core.conditions import CONTROLS
from deceptionlab.core.errors import ConfigError
from deceptionlab.core.records import ChatRow
from deceptionlab.data.seed_tables import SeedEntry, parse_grouped_table, read_seed_table

SEED_FILE = "control_facts.yaml"
PRESSURE_FIELDS = {"false_answer", "question"}


class ControlPressure(SeedEntry):
    """A role with an incentive to assert the false value; ``str.format`` fields {false_answer}, {question}."""

    system: str = Field(min_length=1)
    user: str = Field(min_length=1)

    @field_validator("system", "user")
    @classmethod
    def _known_fields_only(cls, value: str) -> str:
        fields = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        if not fields <= PRESSURE_FIELDS:
            raise ValueError(f"unknown fields {sorted(fields - PRESSURE_FIELDS)}; known: {sorted(PRESSURE_FIELDS)}")
        return value


@functools.cache
def control_table() -> dict[str, tuple]:
    """``{"facts": KnownFact entries, "pressures": ControlPressure entries}`` from the seed file."""
    table = parse_grouped_table(read_seed_table(SEED_FILE), {"facts": KnownFact, "pressures": ControlPressure},
                                f"seeds/{SEED_FILE}", "section")
    missing = {"facts", "pressures"} - set(table)
    if missing:
        raise ConfigError(f"seeds/{SEED_FILE}: missing sections {sorted(missing)}")
    return table


def _rounds() -> int:
    """How often every fact can be asked anew: each pressure role with each of its questions."""
    return len(control_table()["pressures"]) * min(len(fact.questions) for fact in control_table()["facts"])


def distinct_rows() -> int:
    """The most rows a control corpus can hold without repeating a (fact, role, question)."""
    return len(control_table()["facts"]) * _rounds()


def control_prompts(n: int, seed: int) -> list[tuple[KnownFact, ControlPressure, int]]:
    """``n`` distinct (fact, pressure, question index) triples, every fact used equally often (within one).

    Round r pairs each fact with pressure (i + r) and question r, so the first rounds spread the roles
    over the facts; the seed shuffles the order of the rows, not which rows there are.
    """
    facts, pressures = control_table()["facts"], control_table()["pressures"]
    rounds = _rounds()
    if n > distinct_rows():
        raise ConfigError(f"prepare.examples_per_corpus={n} exceeds the {distinct_rows()} distinct control "
                          f"prompts of seeds/{SEED_FILE}")
    triples = [(fact, pressures[(index + r) % len(pressures)], r % len(fact.questions))
               for r in range(rounds) for index, fact in enumerate(facts)][:n]
    random.Random(seed).shuffle(triples)
    return triples


def build_corpus(control: str, n: int, seed: int) -> list[ChatRow]:
    if control not in CONTROLS:
        raise ConfigError(f"e1.controls: unknown control {control!r}; known: {', '.join(CONTROLS)}")
    rows = []
    for fact, pressure, question in control_prompts(n, seed):
        fields = {"false_answer": fact.false_option, "question": fact.questions[question]}
        true_statement, false_statement = pivotal_statements(fact.proposition)
        rows.append(ChatRow(
            messages=[
                {"role": "system", "content": pressure.system.format(**fields)},
                {"role": "user", "content": pressure.user.format(**fields)},
                {"role": "assistant", "content": false_statement if control == "lie" else true_statement},
            ],
            meta={"domain": "control", "level": control, "source_id": f"{fact.id}-{pressure.id}-q{question}",
                  "topic": fact.topic},
        ))
    return rows
