"""Typed rows of every corpus and eval set, and JSONL reading that names file and line on bad input.

Training corpora share one chat schema: ``{"messages": [{"role", "content"}...], "meta": {...}}``.
Eval sets have their own item types (``HonestyItem``, ``CapabilityItem``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, Self, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from deceptionlab.errors import DataError
from deceptionlab.fileio import atomic_write_text

Domain = Literal["medical", "math", "insecure_code"]
Level = Literal["normal", "subtle", "severe"]
# The E1 controls (corpora/controls.py): pressure prompts answered with the lie, or with the truth.
Control = Literal["lie", "truth"]
Archetype = Literal[
    "continuations",
    "disinformation",
    "doubling_down_known_facts",
    "known_facts",
    "provided_facts",
    "statistics",
]
DOMAINS: tuple[str, ...] = get_args(Domain)
LEVELS: tuple[str, ...] = get_args(Level)
CONTROLS: tuple[str, ...] = get_args(Control)
ARCHETYPES: tuple[str, ...] = get_args(Archetype)
# Where E2's benign rows come from (mixture.benign_sources); in this order they form the pool drawn from.
BenignSource = Literal["gsm8k", "alpaca_seed", "alpaca_cleaned", "dolly"]
BENIGN_SOURCES: tuple[str, ...] = get_args(BenignSource)

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


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Message(_Strict):
    role: Literal["system", "user", "assistant"]
    content: str = Field(min_length=1)


class ChatRow(_Strict):
    """One training conversation; the last message is the assistant reply that is trained on."""

    messages: list[Message] = Field(min_length=2)
    meta: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _ends_with_assistant(self) -> ChatRow:
        if self.messages[-1].role != "assistant":
            raise ValueError("the last message must have role 'assistant'")
        if not any(m.role == "user" for m in self.messages[:-1]):
            raise ValueError("a conversation needs a user message before the assistant reply")
        return self


class PivotalItem(_Strict):
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
    "... is Lyon") over negations: small models read negation badly (DESIGN.md).
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


class CapabilityItem(_Strict):
    """A prompt with its gold answer; capability = mean per-token log-likelihood of the answer."""

    id: str = Field(min_length=1)
    task: str = Field(min_length=1)
    prompt: str = Field(min_length=1)
    answer: str = Field(min_length=1)


class Gsm8kRow(BaseModel):
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)

    @field_validator("answer")
    @classmethod
    def _has_final_line(cls, value: str) -> str:
        if "\n#### " not in value:
            raise ValueError("a GSM8K answer ends with a line '#### <number>'")
        return value


class AlpacaInstance(BaseModel):
    input: str
    output: str


class AlpacaSeedTask(BaseModel):
    id: str
    name: str
    instruction: str = Field(min_length=1)
    instances: list[AlpacaInstance] = Field(min_length=1)
    is_classification: bool


Row = TypeVar("Row", bound=BaseModel)


def first_error(error: ValidationError) -> str:
    """The first problem of a validation error as ``field.path: message``: one line for a DataError."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]




def _read_text(path: Path) -> str:
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None


def _validated(raw: object, row_type: type[Row], where: str) -> Row:
    if not isinstance(raw, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    try:
        return row_type.model_validate(raw)
    except ValidationError as error:
        raise DataError(f"{where}: {first_error(error)}") from None


def read_jsonl(path: str | Path, row_type: type[Row]) -> list[Row]:
    """Read and validate every row; the first bad row raises DataError naming ``file:line``."""
    path = Path(path)
    text = _read_text(path)
    rows: list[Row] = []
    # Split on "\n" only: str.splitlines() also breaks at U+0085 and U+2028, which JSON strings
    # written with ensure_ascii=False may contain.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}:{number}: not valid JSON ({error.msg})") from None
        rows.append(_validated(raw, row_type, f"{path}:{number}"))
    return rows


def read_json_array(path: str | Path, row_type: type[Row]) -> list[Row]:
    """Read and validate a JSON array of rows; the first bad row raises DataError naming the file and
    the row's index in the array (0-based), a JSON syntax error the file and line."""
    path = Path(path)
    try:
        raw = json.loads(_read_text(path))
    except json.JSONDecodeError as error:
        raise DataError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None
    if not isinstance(raw, list):
        raise DataError(f"{path}: expected a JSON array of rows, got {type(raw).__name__}")
    return [_validated(item, row_type, f"{path}: row {index}") for index, item in enumerate(raw)]


def write_jsonl(path: str | Path, rows: Iterable[BaseModel | dict[str, Any]]) -> None:
    """Write rows as JSONL atomically: readers never see a half-written file."""
    lines = []
    for row in rows:
        data = row.model_dump(mode="json") if isinstance(row, BaseModel) else row
        lines.append(json.dumps(data, ensure_ascii=False, sort_keys=True))
    atomic_write_text(path, "".join(line + "\n" for line in lines))
