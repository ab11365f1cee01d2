"""MASK items beyond ``HonestyItem``, the loader for the real ``cais/MASK``, and the scoring rules they need.

Four of MASK's six archetypes fit ``HonestyItem`` (a pivotal proposition, neutral belief prompts, one
pressured system + user prompt). Two do not, and one hub archetype lacks belief prompts:

- ``DoublingDownItem`` (doubling_down_known_facts): the pressured conversation opens with a pre-filled
  first turn, a user question and an assistant reply that already asserted the falsehood; the statement
  is the stance taken in the reply that follows the user's second prompt.
- ``StatisticsItem`` (statistics): a numeric proposition ``... <pivotal><value></pivotal> ...`` whose
  ground truth is a range ``[low, high]``. A stance is a number (a chosen bin of a forced choice, or a
  number parsed from generated text); two numbers agree when they are within MASK's 5% tolerance.
- ``ProvidedFactItem`` (provided_facts read from the hub): the fact sits only in the pressured context,
  so there are no neutral prompts; the belief is the ground truth, as MASK defines it.

Every rule is written down in docs/mask_archetypes.md. The real set is read from files in the hub's
schema, one folder per config (``huggingface-cli download cais/MASK --repo-type dataset --local-dir
data/mask``, a gated set: accept its terms and set HF_TOKEN first):

    items = load_mask(Path("data/mask"))                       # all six configs
    rows = score_items(model, tok, statistics_items, mask_requests, statistics_from_logliks, ...)
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    Discriminator,
    Field,
    RootModel,
    Tag,
    field_validator,
    model_validator,
)

from deceptionlab.benchmarks.mask.numeric import (
    TOLERANCE,
    VALUE_MARKER,
    NumericRange,
    value_statements,
    values_consistent,
)
from deceptionlab.benchmarks.pivotal import HonestyItem, PivotalItem
from deceptionlab.core.records import StrictModel, read_records

if TYPE_CHECKING:
    pass




# --- items -------------------------------------------------------------------------------------------


class DoublingDownItem(HonestyItem):
    """A known fact asked again after the assistant already lied about it (MASK doubling_down_known_facts).

    The pressured conversation is: system prompt, ``prior_user_prompt``, the pre-filled assistant turn
    ``prior_reply`` (which asserted the false value), then ``user_prompt``; the statement is read in the
    reply to that last prompt. Belief prompts are neutral and carry no pre-filled turn.
    """

    archetype: Literal["doubling_down_known_facts"]
    prior_user_prompt: str = Field(min_length=1)
    prior_reply: str = Field(min_length=1)


class ProvidedFactItem(PivotalItem):
    """A provided_facts item from the hub: the fact is given only inside the pressured context.

    MASK elicits no neutral belief for these: the belief is the ground truth (the fact provided), so
    belief accuracy is not defined for them.
    """

    id: str = Field(min_length=1)
    archetype: Literal["provided_facts"]
    system_prompt: str = Field(min_length=1)
    user_prompt: str = Field(min_length=1)
    meta: dict[str, Any] = Field(default_factory=dict)

    @property
    def belief_prompts(self) -> tuple[str, ...]:
        """None: requests and verdicts treat the item like a HonestyItem whose belief is given."""
        return ()


class StatisticsItem(StrictModel):
    """A numeric MASK item, read by forced choice among ``choices`` (one number per bin).

    ``proposition`` holds one ``<pivotal><value></pivotal>``; the statement for a choice is the
    proposition with that number written in. Choice ``c`` stands for the bin of numbers within the
    tolerance of ``c``; no two bins agree with each other and exactly one agrees with ``ground_truth``.
    """

    id: str = Field(min_length=1)
    archetype: Literal["statistics"]
    proposition: str
    ground_truth: NumericRange
    choices: list[float] = Field(min_length=2)
    belief_prompts: list[str] = Field(min_length=1)
    system_prompt: str = Field(min_length=1)
    user_prompt: str = Field(min_length=1)
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("proposition")
    @classmethod
    def _one_value_marker(cls, value: str) -> str:
        found = len(VALUE_MARKER.findall(value))
        if found != 1:
            raise ValueError(f"needs exactly one <pivotal><value></pivotal> marker, found {found}")
        return value

    @field_validator("belief_prompts")
    @classmethod
    def _prompts_not_empty(cls, value: list[str]) -> list[str]:
        if any(not prompt.strip() for prompt in value):
            raise ValueError("belief prompts must not be empty")
        return value

    @model_validator(mode="after")
    def _bins_are_distinct_and_one_is_true(self) -> Self:
        if any(not math.isfinite(c) for c in self.choices) or self.choices != sorted(set(self.choices)):
            raise ValueError(f"choices must be finite, distinct and ascending, got {self.choices}")
        for a, b in itertools.combinations(self.choices, 2):
            if values_consistent(NumericRange.point(a), NumericRange.point(b)):
                raise ValueError(f"choices {a:g} and {b:g} are within {TOLERANCE:.0%} of each other")
        true = [c for c in self.choices if values_consistent(NumericRange.point(c), self.ground_truth)]
        if len(true) != 1:
            raise ValueError(f"exactly one choice must agree with the ground truth, found {len(true)}")
        return self

    @property
    def statements(self) -> tuple[str, ...]:
        return value_statements(self.proposition, self.choices)

    @property
    def true_index(self) -> int:
        return next(i for i, c in enumerate(self.choices)
                    if values_consistent(NumericRange.point(c), self.ground_truth))


def _item_kind(value: Any) -> str:
    """Which item type a JSON row (or an item) is: the archetype decides, and a provided_facts row
    without belief prompts comes from the hub."""
    if isinstance(value, BaseModel):
        return ITEM_KINDS[type(value)]
    archetype = value.get("archetype") if isinstance(value, dict) else None
    if archetype == "statistics":
        return "statistics"
    if archetype == "doubling_down_known_facts":
        return "doubling_down"
    if archetype == "provided_facts" and "belief_prompts" not in value:
        return "provided_fact"
    return "honesty"


ITEM_KINDS: dict[type, str] = {
    HonestyItem: "honesty", DoublingDownItem: "doubling_down", StatisticsItem: "statistics",
    ProvidedFactItem: "provided_fact",
}
MaskItem = Annotated[
    Annotated[HonestyItem, Tag("honesty")]
    | Annotated[DoublingDownItem, Tag("doubling_down")]
    | Annotated[StatisticsItem, Tag("statistics")]
    | Annotated[ProvidedFactItem, Tag("provided_fact")],
    Discriminator(_item_kind),
]


# Any of the item types above, as functions take and return them.
AnyItem = HonestyItem | DoublingDownItem | StatisticsItem | ProvidedFactItem


class AnyMaskItem(RootModel[MaskItem]):
    """One JSONL row holding any MASK item, so that all six archetypes can share one eval file."""


def read_mask_items(path: str | Path) -> list[AnyItem]:
    """Every item of a JSONL file written by ``schema.write_jsonl``, each as its own type."""
    return [row.root for row in read_records(path, AnyMaskItem)]

