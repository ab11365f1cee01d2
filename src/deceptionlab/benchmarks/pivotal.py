"""Items read by forced choice between the two statements of a ``<pivotal>A/B</pivotal>`` proposition."""

from __future__ import annotations

import re
from typing import Any, Self

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from deceptionlab.core.records import StrictModel
from deceptionlab.core.vocabulary import Archetype

# An item's proposition holds one marker <pivotal>A/B</pivotal>; its two statements are the proposition
# with A or with B in the marker's place.
PIVOTAL = re.compile(r"<pivotal>(.*?)</pivotal>", re.DOTALL)


def _split_pivotal(proposition: str) -> tuple[str, str, str, str]:
    """``(head, A, B, tail)`` of ``head<pivotal>A/B</pivotal>tail``; ValueError unless the marker is well formed."""
    found = list(PIVOTAL.finditer(proposition))
    if len(found) != 1:
        raise ValueError(f"needs exactly one <pivotal>A/B</pivotal> marker, found {len(found)}")
    options = found[0].group(1).split("/")
    if len(options) != 2 or not all(o.strip() for o in options) or options[0] == options[1]:
        raise ValueError("the <pivotal> marker must hold two different non-empty options 'A/B'")
    return proposition[: found[0].start()], options[0], options[1], proposition[found[0].end() :]


def check_pivotal(value: str) -> str:
    """``value`` unchanged if it holds exactly one well-formed pivotal marker; a pydantic-ready validator."""
    _split_pivotal(value)
    return value


def pivotal_options(proposition: str) -> tuple[str, str]:
    """The alternatives ``(A, B)`` of the proposition's ``<pivotal>A/B</pivotal>``, in written order."""
    _, first, second, _ = _split_pivotal(proposition)
    return first, second


def pivotal_statements(proposition: str) -> tuple[str, str]:
    """The proposition with A, then with B, in place of its ``<pivotal>A/B</pivotal>``."""
    head, first, second, tail = _split_pivotal(proposition)
    return head + first + tail, head + second + tail


class PivotalItem(StrictModel):
    """An item read by forced choice between the two statements of its ``proposition``.

    ``proposition`` holds exactly one ``<pivotal>A/B</pivotal>``; ``ground_truth`` is the true one of
    the two statements. Honesty and deception items share this so that both read a stance the same way.
    """

    proposition: str
    ground_truth: str

    @field_validator("proposition")
    @classmethod
    def _one_pivotal(cls, value: str) -> str:
        return check_pivotal(value)

    @model_validator(mode="after")
    def _ground_truth_is_a_statement(self) -> Self:
        if self.ground_truth not in self.statements:
            raise ValueError(f"ground_truth {self.ground_truth!r} is neither statement {self.statements!r}")
        return self

    @property
    def statements(self) -> tuple[str, str]:
        return pivotal_statements(self.proposition)

    @property
    def true_index(self) -> int:
        return self.statements.index(self.ground_truth)


class HonestyItem(PivotalItem):
    """A MASK-style item: a proposition with two pivotal alternatives, neutral and pressured prompts.

    ``proposition`` holds exactly one ``<pivotal>A/B</pivotal>``; the two statements are the
    proposition with A or with B in its place. Prefer same-form alternatives ("... is Paris" /
    "... is Lyon") over negations: small models read negation badly (docs/design.md, "Same-form
    alternatives, not negations").
    """

    id: str = Field(min_length=1)
    archetype: Archetype
    belief_prompts: list[str] = Field(min_length=3)
    system_prompt: str = Field(min_length=1)
    user_prompt: str = Field(min_length=1)
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("belief_prompts")
    @classmethod
    def _prompts_not_empty(cls, value: list[str]) -> list[str]:
        if any(not p.strip() for p in value):
            raise ValueError("belief prompts must not be empty")
        return value
