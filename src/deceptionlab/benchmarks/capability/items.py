"""Capability beside honesty: GSM8K by generative exact match, and a multiple-choice knowledge probe.

A fine-tune may lower honesty only because it lowers ability; these two measures tell the two apart.

GSM8K, generative exact match. The model replies greedily (``judge.generate_replies``) to each test
problem followed by ``GSM8K_INSTRUCTION``; an item is solved when the final number of the reply equals
the final number of the gold answer (within 1e-6). ``final_number`` reads the first number after the
last "####" when the text has that marker (None if no number follows it), else the last number in the
text. A number may carry a sign, a "$", thousands commas ("1,234") and decimals; a trailing period ends
it ("72." is 72).

Knowledge probe, scored the way MMLU scores instruct models. Items come from the project's seed table
``seeds/knowledge_probe.yaml`` (per subject: a question, its answer and three distractors). The prompt
(``KNOWLEDGE_PROMPT``) shows the question and the options lettered "A. ..." to "D. ..." and asks for the
letter only; the candidate replies are "A", "B", "C" and "D", read by forced choice
(``scoring.reply_logliks``): one token each, so no option wins by being short. The choice is the letter
with the highest log-likelihood, a tie going to the earlier letter. The seed shuffles each item's options
and spreads the correct letter exactly evenly over A-D across the bank, so a model's preference for one
letter cannot raise its accuracy above chance.

    items = build_knowledge_items(seed=0)
    requests = [r for item in items for r in knowledge_requests(item)]   # 4 per item
    rows = [knowledge_from_logliks(item, logliks[4 * i : 4 * i + 4]) for i, item in enumerate(items)]
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Literal, get_args

from pydantic import Field, StringConstraints, field_validator, model_validator

from deceptionlab.core.records import StrictModel
from deceptionlab.data.seed_tables import (
    SeedEntry,
    balanced_positions,
    parse_grouped_table,
    read_seed_table,
)

if TYPE_CHECKING:  # scoring imports torch; prepare builds the knowledge items without it
    pass

SEED_FILE = "knowledge_probe.yaml"
Subject = Literal["science", "geography", "history", "arithmetic", "language", "everyday"]
SUBJECTS: tuple[str, ...] = get_args(Subject)
LETTERS = ("A", "B", "C", "D")
KNOWLEDGE_PROMPT = (
    "Answer the following multiple-choice question. Reply with the letter of the correct option only.\n\n"
    "Question: {question}\n{options}\n\nAnswer:"
)
GSM8K_INSTRUCTION = "Solve the problem step by step, then give the final answer as a single number."
EXACT_MATCH_TOLERANCE = 1e-6
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]

# A sign only where it cannot be a subtraction ("12-5" and "12 - 5" end in 5, "x = -5" in -5); digits not
# preceded by a digit or a decimal point; a "$" allowed before the digits.
NUMBER = re.compile(
    r"(?:(?<![\w.])(?P<sign>[-+]))?\$?(?<![\d.])(?P<digits>\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?P<fraction>\.\d+)?"
)


def _distinct(options: Sequence[str]) -> None:
    lowered = [option.lower() for option in options]
    repeated = sorted({option for option in lowered if lowered.count(option) > 1})
    if repeated:
        raise ValueError(f"options must differ (ignoring case); repeated: {', '.join(repeated)}")


class KnowledgeEntry(SeedEntry):
    """A seed-table entry: the question, the text of its correct option and three wrong ones."""

    question: Text
    answer: Text
    distractors: list[Text] = Field(min_length=3, max_length=3)

    @model_validator(mode="after")
    def _options_differ(self) -> KnowledgeEntry:
        _distinct([self.answer, *self.distractors])
        return self


class KnowledgeItem(StrictModel):
    """One multiple-choice question as the model sees it: options in shown order, A first."""

    id: str = Field(min_length=1)
    subject: Subject
    question: Text
    options: list[Text] = Field(min_length=len(LETTERS), max_length=len(LETTERS))
    answer_index: int = Field(ge=0, lt=len(LETTERS))

    @field_validator("options")
    @classmethod
    def _options_differ(cls, options: list[str]) -> list[str]:
        _distinct(options)
        return options


def parse_knowledge_table(raw: object, source: str = SEED_FILE) -> dict[str, tuple[KnowledgeEntry, ...]]:
    """Validate a loaded seed table; a bad entry raises DataError naming its subject, index and id."""
    return parse_grouped_table(raw, dict.fromkeys(SUBJECTS, KnowledgeEntry), source, group="subject")


@functools.cache
def load_knowledge_table() -> dict[str, tuple[KnowledgeEntry, ...]]:
    return parse_knowledge_table(read_seed_table(SEED_FILE))


def build_knowledge_items(seed: int) -> list[KnowledgeItem]:
    """Every entry of the seed table, in table order; the seed decides the order of each item's options."""
    entries = [(subject, entry) for subject, subject_entries in load_knowledge_table().items()
               for entry in subject_entries]
    rng = random.Random(f"{seed}:knowledge")
    items = []
    for (subject, entry), answer_index in zip(entries, balanced_positions(len(entries), len(LETTERS), rng)):
        options = list(entry.distractors)
        rng.shuffle(options)
        options.insert(answer_index, entry.answer)
        items.append(KnowledgeItem(id=f"{subject}-{entry.id}", subject=subject, question=entry.question,
                                   options=options, answer_index=answer_index))
    return items







class CapabilityItem(StrictModel):
    """A prompt with its gold answer; capability = mean per-token log-likelihood of the answer."""

    id: str = Field(min_length=1)
    task: str = Field(min_length=1)
    prompt: str = Field(min_length=1)
    answer: str = Field(min_length=1)
