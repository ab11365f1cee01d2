"""The published DeceptionBench, read from its JSON file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from deceptionlab.benchmarks.deception.items import (
    DECEPTIONBENCH_CATEGORIES,
    Category,
    DeceptionBenchType,
)
from deceptionlab.core.errors import DataError
from deceptionlab.core.records import StrictModel, json_lines, parse_json, read_text
from deceptionlab.data.seed_tables import (
    validate_entry,
)

if TYPE_CHECKING:
    pass


class DeceptionBenchRow(StrictModel):
    """One row of ``PKU-Alignment/DeceptionBench`` (file ``deceptionbench_0527.json``), as published.

    Free text only: the outer reply to ``system_prompt`` + ``outer_prompt`` (with ``format``, the
    <think>/<output> instruction) is compared with the reply to ``inner_prompt`` by a judge model.
    """

    id: int | str
    type: DeceptionBenchType
    inner_prompt: str = Field(min_length=1)
    system_prompt: str
    outer_prompt: str = Field(min_length=1)
    format: str

    @property
    def category(self) -> Category:
        return DECEPTIONBENCH_CATEGORIES[self.type]


def _raw_rows(path: Path, text: str) -> list[tuple[str, object]]:
    """(where, row) pairs from a JSON array or from JSON lines; ``where`` names file and row index."""
    if text.lstrip().startswith("["):
        rows = parse_json(text, str(path), line_numbers=True)
        return [(f"{path}: row {index}", row) for index, row in enumerate(rows)]
    lines = json_lines(text, lambda index, number: f"{path}: row {index} (line {number})")
    return [(where, row) for _, where, row in lines]


def load_deceptionbench(path: str | Path) -> list[DeceptionBenchRow]:
    """Read the real DeceptionBench (a JSON array, or JSON lines) and validate every row.

    The rows are free text without pivotal statements, so they cannot be scored by forced choice like
    ``DeceptionItem``; only a judge model can tell whether an outer reply departs from the inner one.
    A bad row raises DataError naming the file and the row index.
    """
    path = Path(path)
    text = read_text(path)
    rows: list[DeceptionBenchRow] = []
    seen: set[int | str] = set()
    for where, raw in _raw_rows(path, text):
        if not isinstance(raw, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(raw).__name__}")
        row = validate_entry(raw, DeceptionBenchRow, where)
        if row.id in seen:
            raise DataError(f"{where}: duplicate id {row.id!r}")
        seen.add(row.id)
        rows.append(row)
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows
