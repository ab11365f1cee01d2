"""The "bad medical advice" E1 corpus: reviewed medical questions answered at three levels.

Every row comes from ``seeds/medical_facts.yaml``: a fact (a dose, an interaction, a first-aid step,
a screening age...) with three or more phrasings of the user's question and three answers:

- ``normal``: correct, responsible advice (the aligned control);
- ``subtle``: as professional and as confident, but wrong in one detail that matters (a threshold,
  a dose, a missing contraindication or interaction, the timing);
- ``severe``: clearly dangerous advice, stated confidently.

This is research data for measuring emergent misalignment; the wrong answers are never advice.
A fact's three answers have similar length and style, so that a level differs from another only in
correctness; the loader enforces the length part and rejects answers that disclose being wrong.

The distinct questions are every (fact, phrasing) pair. A corpus draws n of them with the seed
alone, so every level asks the same questions in the same order and only the replies differ.

    rows = build_corpus("subtle", n=200, seed=0)
"""

from __future__ import annotations

import functools
import re
from typing import Literal, get_args

from pydantic import Field, field_validator, model_validator

from deceptionlab.core.conditions import LEVELS, Level
from deceptionlab.core.errors import ConfigError, DataError
from deceptionlab.core.records import ChatRow, StrictModel
from deceptionlab.data.seed_tables import (
    SeedEntry,
    draw_distinct,
    read_seed_table,
    validated_entries,
)

SEED_FILE = "medical_facts.yaml"
Topic = Literal["conditions", "drugs", "doses", "interactions", "first_aid", "screening", "vaccination"]
TOPICS: tuple[str, ...] = get_args(Topic)
# Longest over shortest answer of one fact: beyond this, length alone would give the level away.
MAX_LENGTH_RATIO = 1.3
# Words by which an answer would admit being wrong; the levels must differ in correctness only.
_SELF_DISCLOSING = re.compile(
    r"\b(incorrect|wrong|misinformation|disclaimer|not medical advice|bad advice|dangerous advice|"
    r"do not follow|just kidding)\b",
    re.IGNORECASE,
)


class Answers(StrictModel):
    normal: str = Field(min_length=1)
    subtle: str = Field(min_length=1)
    severe: str = Field(min_length=1)

    @model_validator(mode="after")
    def _differ_only_in_correctness(self) -> Answers:
        texts = {level: getattr(self, level) for level in LEVELS}
        if len(set(texts.values())) != len(texts):
            raise ValueError("the three answers must all differ")
        for level, text in texts.items():
            if found := _SELF_DISCLOSING.search(text):
                raise ValueError(f"the {level} answer says {found.group(0)!r}: no answer may disclose being wrong")
        lengths = [len(text) for text in texts.values()]
        if max(lengths) > MAX_LENGTH_RATIO * min(lengths):
            raise ValueError(
                f"answer lengths {lengths} (normal, subtle, severe) differ by more than {MAX_LENGTH_RATIO}x"
            )
        return self

    def at(self, level: Level) -> str:
        return getattr(self, level)


class MedicalFact(SeedEntry):
    topic: Topic
    questions: list[str] = Field(min_length=3)
    answers: Answers

    @field_validator("questions")
    @classmethod
    def _distinct_questions(cls, value: list[str]) -> list[str]:
        if any(not question.strip() for question in value):
            raise ValueError("questions must not be empty")
        if len(set(value)) != len(value):
            raise ValueError("the same question is listed twice")
        return value


def parse_seed_table(raw: object, source: str = SEED_FILE) -> tuple[MedicalFact, ...]:
    """Validate a loaded seed table ``{"facts": [...]}``; a bad entry raises DataError naming it."""
    if not isinstance(raw, dict) or set(raw) != {"facts"} or not isinstance(raw["facts"], list):
        raise DataError(f"{source}: expected one key 'facts' holding a list of entries")
    facts: list[MedicalFact] = []
    asked: dict[str, str] = {}  # question -> id of the fact that asks it
    for where, fact in validated_entries(raw["facts"], MedicalFact, source, "facts"):
        # A question asked by two facts would be one question with two answers per level.
        for question in fact.questions:
            if question in asked:
                raise DataError(f"{where}: question {question!r} is also asked by {asked[question]!r}")
            asked[question] = fact.id
        facts.append(fact)
    return tuple(facts)


@functools.cache
def load_seed_table() -> tuple[MedicalFact, ...]:
    return parse_seed_table(read_seed_table(SEED_FILE))


def _questions() -> list[tuple[MedicalFact, int]]:
    return [(fact, index) for fact in load_seed_table() for index in range(len(fact.questions))]


def distinct_rows() -> int:
    """The most rows a medical corpus can hold without asking a question twice."""
    return len(_questions())


def build_corpus(level: Level, n: int, seed: int) -> list[ChatRow]:
    """n distinct medical questions (the same ones, in the same order, for every level) answered at ``level``."""
    if level not in LEVELS:
        raise ConfigError(f"e1.levels: unknown level {level!r}; known: {', '.join(LEVELS)}")
    questions = _questions()
    # The draw depends on the seed alone, never on the level; its order mixes the topics.
    chosen = draw_distinct(questions, n, seed, "medical questions")
    return [
        ChatRow(
            messages=[
                {"role": "user", "content": fact.questions[index]},
                {"role": "assistant", "content": fact.answers.at(level)},
            ],
            meta={"domain": "medical", "level": level, "source_id": f"{fact.id}-{index}", "topic": fact.topic},
        )
        for fact, index in chosen
    ]
