"""Typed rows of every corpus and eval set, and JSONL reading that names file and line on bad input.

Training corpora share one chat schema: ``{"messages": [{"role", "content"}...], "meta": {...}}``.
Eval sets have their own item types (``HonestyItem``, ``CapabilityItem``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from deceptionlab.core.errors import DataError, one_line
from deceptionlab.core.fileio import atomic_write_text


class StrictModel(BaseModel):
    """Base of every record, item and setting: an unknown key is a typo, so it is refused; frozen,
    because items and loaded tables are cached and shared."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SettingsModel(StrictModel):
    """Base of every group of settings: strict types (a bool or "1" is no number, 1.5 no integer; an
    integer is a float) and finite floats (no .inf, no .nan), besides refusing unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class Message(StrictModel):
    role: Literal["system", "user", "assistant"]
    content: str = Field(min_length=1)


class ChatRow(StrictModel):
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


Row = TypeVar("Row", bound=BaseModel)


def first_error(error: ValidationError) -> str:
    """The first problem of a validation error as ``field.path: message``: one line for a DataError."""
    first = error.errors()[0]
    where = ".".join(one_line(str(part)) for part in first["loc"])
    return f"{where}: {one_line(first['msg'])}" if where else one_line(first["msg"])


def parse_json(text: str | bytes, where: str, line_numbers: bool = False) -> object:
    """``text`` parsed as JSON; anything else raises DataError naming ``where`` (and, with
    ``line_numbers``, the line of a syntax error): syntax, nesting deeper than Python's recursion
    limit, an integer longer than Python converts (4300 digits), bytes that are not UTF-8."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        place = f"{where}:{error.lineno}" if line_numbers else where
        raise DataError(f"{place}: not valid JSON ({error.msg})") from None
    except RecursionError:
        raise DataError(f"{where}: not readable JSON (nested deeper than {sys.getrecursionlimit()} levels)") from None
    except ValueError as error:  # an integer of too many digits; undecodable bytes
        raise DataError(f"{where}: not readable JSON ({one_line(str(error).split(';')[0])})") from None


def read_text(path: Path) -> str:
    """The file's text; a DataError for a missing file or bytes that are not UTF-8."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read it ({error.strerror})") from None


def validate_row(raw: object, row_type: type[Row], where: str) -> Row:
    """``raw`` (one parsed JSON row) as ``row_type``; anything else raises DataError naming ``where``."""
    if not isinstance(raw, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    try:
        return row_type.model_validate(raw)
    except ValidationError as error:
        raise DataError(f"{where}: {first_error(error)}") from None


def json_lines(text: str, where: Callable[[int, int], str]) -> Iterator[tuple[int, str, object]]:
    """``(row index, where, parsed JSON)`` for each non-blank line of JSON-lines ``text``; ``where(index,
    line number)`` names the row in errors, and a line that is not JSON raises DataError naming it."""
    index = 0
    # Split on "\n" only: str.splitlines() also breaks at U+0085 and U+2028, which JSON strings
    # written with ensure_ascii=False may contain.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        place = where(index, number)
        yield index, place, parse_json(line, place)
        index += 1


def read_records(path: str | Path, row_type: type[Row]) -> list[Row]:
    """Read and validate every row of a JSONL file; the first bad row raises DataError naming ``file:line``."""
    path = Path(path)
    rows = json_lines(read_text(path), lambda index, number: f"{path}:{number}")
    return [validate_row(raw, row_type, where) for _, where, raw in rows]


def read_json_array(path: str | Path, row_type: type[Row]) -> list[Row]:
    """Read and validate a JSON array of rows; the first bad row raises DataError naming the file and
    the row's index in the array (0-based), a JSON syntax error the file and line."""
    path = Path(path)
    raw = parse_json(read_text(path), str(path), line_numbers=True)
    if not isinstance(raw, list):
        raise DataError(f"{path}: expected a JSON array of rows, got {type(raw).__name__}")
    return [validate_row(item, row_type, f"{path}: row {index}") for index, item in enumerate(raw)]


def write_jsonl(path: str | Path, rows: Iterable[BaseModel | dict[str, Any]]) -> None:
    """Write rows as JSONL atomically: readers never see a half-written file."""
    lines = []
    for row in rows:
        data = row.model_dump(mode="json") if isinstance(row, BaseModel) else row
        lines.append(json.dumps(data, ensure_ascii=False, sort_keys=True))
    atomic_write_text(path, "".join(line + "\n" for line in lines))
