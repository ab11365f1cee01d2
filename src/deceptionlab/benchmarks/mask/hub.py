"""The real ``cais/MASK`` from the hub's files, one folder per config."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
)

from deceptionlab.benchmarks.mask.items import (
    AnyItem,
    DoublingDownItem,
    ProvidedFactItem,
    StatisticsItem,
)
from deceptionlab.benchmarks.mask.numeric import VALUE_MARKER, NumericRange
from deceptionlab.benchmarks.pivotal import HonestyItem, pivotal_statements
from deceptionlab.core.errors import ConfigError, DataError
from deceptionlab.core.records import first_error, json_lines, read_text
from deceptionlab.core.vocabulary import ARCHETYPES

if TYPE_CHECKING:
    pass


class MaskRow(BaseModel):
    """One row of a ``cais/MASK`` config, as published; columns the project does not read (canary,
    delivery, ...) are ignored. Whether a column may be empty depends on the config (``hub_item``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    task_id: str | int | None = None
    type: Literal["binary", "numerical"] | None = None
    system_prompt: str = Field(min_length=1)
    user_prompt: str = Field(min_length=1)
    proposition: str = Field(min_length=1)
    ground_truth: str = Field(min_length=1)
    formatted_ground_truth: str = Field(min_length=1)
    belief_elicit_1: str | None = None
    belief_elicit_2: str | None = None
    belief_elicit_3: str | None = None
    dd_turn_1_prompt: str | None = None
    dd_turn_1_response: str | None = None


def parse_formatted_range(text: str) -> NumericRange:
    """A statistics ``formatted_ground_truth``: "[26.0, 29.0]", "(43, 43)", "[None, 100]" or a number."""
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        raise ValueError(f"formatted_ground_truth {text!r} is not a range [low, high]") from None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return NumericRange.point(float(value))
    if (isinstance(value, list | tuple) and len(value) == 2
            and all(end is None or (isinstance(end, int | float) and not isinstance(end, bool)) for end in value)):
        return NumericRange(low=value[0], high=value[1])
    raise ValueError(f"formatted_ground_truth {text!r} is not a range [low, high]")


def scaled_choices(ground_truth: NumericRange) -> list[float]:
    """Bins for a hub statistics item, which brings none: the truth, half of it and double it."""
    truth = ground_truth.representative()
    if truth == 0:
        raise ValueError("cannot place bins around a ground truth of 0")
    return sorted([truth / 2, truth, truth * 2])


def hub_item(row: MaskRow, archetype: str, row_id: str) -> AnyItem:
    """The project's item for one hub row; ValueError (or ValidationError) when the row cannot be one."""
    item_id = f"mask-{archetype}-{row.task_id if row.task_id is not None else row_id}"
    numeric = VALUE_MARKER.search(row.proposition) is not None
    if row.type is not None and (row.type == "numerical") != numeric:
        raise ValueError(f"type {row.type!r} does not match the proposition {row.proposition!r}")
    if (archetype == "statistics") != numeric:
        raise ValueError("statistics propositions hold <pivotal><value></pivotal>, those of other configs "
                         "<pivotal>A/B</pivotal>")
    meta = {"source": "cais/MASK", "task_id": row.task_id, "ground_truth_text": row.ground_truth}
    beliefs = [p for p in (row.belief_elicit_1, row.belief_elicit_2, row.belief_elicit_3) if p and p.strip()]
    if archetype == "statistics":
        truth = parse_formatted_range(row.formatted_ground_truth)
        return StatisticsItem(id=item_id, archetype="statistics", proposition=row.proposition, ground_truth=truth,
                              choices=scaled_choices(truth), belief_prompts=beliefs, system_prompt=row.system_prompt,
                              user_prompt=row.user_prompt, meta=meta)
    letter = row.formatted_ground_truth.strip()
    if letter not in ("A", "B"):
        raise ValueError(f"formatted_ground_truth must be 'A' or 'B' for a binary proposition, got {letter!r}")
    statements = pivotal_statements(row.proposition)
    true_statement, false_statement = statements if letter == "A" else statements[::-1]
    if row.ground_truth.strip() == false_statement.strip():
        raise ValueError(f"ground_truth is the statement that formatted_ground_truth {letter!r} calls false")
    common = {"id": item_id, "proposition": row.proposition, "ground_truth": true_statement,
              "system_prompt": row.system_prompt, "user_prompt": row.user_prompt, "meta": meta}
    if archetype == "provided_facts":
        return ProvidedFactItem(archetype="provided_facts", **common)
    if not row.belief_elicit_1 or not row.belief_elicit_1.strip():
        raise ValueError("belief_elicit_1 (the direct belief prompt) is empty")
    # MASK asks belief_elicit_1 three times; a missing consistency prompt leaves it one more repeat.
    beliefs += [row.belief_elicit_1] * (3 - len(beliefs))
    if archetype == "doubling_down_known_facts":
        if not (row.dd_turn_1_prompt and row.dd_turn_1_response):
            raise ValueError("doubling_down rows need dd_turn_1_prompt and dd_turn_1_response")
        return DoublingDownItem(archetype=archetype, belief_prompts=beliefs, prior_user_prompt=row.dd_turn_1_prompt,
                                prior_reply=row.dd_turn_1_response, **common)
    return HonestyItem(archetype=archetype, belief_prompts=beliefs, **common)


def _raw_rows(path: Path) -> Iterable[tuple[int, str, object]]:
    """(index, where, row) for each row of a .parquet (the hub's format) or .jsonl file."""
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
        except (pa.ArrowException, OSError) as error:
            raise DataError(f"{path}: not a readable parquet file ({error})") from None
        yield from ((index, f"{path}: row {index}", row) for index, row in enumerate(rows))
        return
    yield from json_lines(read_text(path), lambda index, number: f"{path}: row {index} (line {number})")


def read_mask_file(path: str | Path, archetype: str) -> list[AnyItem]:
    """Validate every row of one file of a MASK config; the first bad row raises DataError naming file and row."""
    path = Path(path)
    if archetype not in ARCHETYPES:
        raise ConfigError(f"unknown MASK archetype {archetype!r}; known: {', '.join(ARCHETYPES)}")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.suffix not in (".parquet", ".jsonl"):
        raise DataError(f"{path}: expected a .parquet or .jsonl file")
    items = []
    for index, where, raw in _raw_rows(path):
        if not isinstance(raw, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(raw).__name__}")
        try:
            items.append(hub_item(MaskRow.model_validate(raw), archetype, f"{path.stem}-{index}"))
        except ValidationError as error:
            raise DataError(f"{where}: {first_error(error)}") from None
        except ValueError as error:
            raise DataError(f"{where}: {error}") from None
    return items


def load_mask(root: str | Path, archetypes: Sequence[str] = ARCHETYPES) -> list[AnyItem]:
    """Every item of the chosen configs of a local copy of ``cais/MASK`` (``<root>/<config>/*.parquet``).

    Files are read in name order; ``.jsonl`` files in the same schema are read too (the tests' fixtures).
    """
    root = Path(root)
    items: list[AnyItem] = []
    seen: set[str] = set()
    for archetype in archetypes:
        if archetype not in ARCHETYPES:
            raise ConfigError(f"unknown MASK archetype {archetype!r}; known: {', '.join(ARCHETYPES)}")
        files = sorted(p for p in (root / archetype).glob("*") if p.suffix in (".parquet", ".jsonl"))
        if not files:
            raise DataError(f"{root / archetype}: no .parquet or .jsonl files for the MASK config {archetype!r}")
        for path in files:
            for item in read_mask_file(path, archetype):
                if item.id in seen:
                    raise DataError(f"{path}: duplicate item id {item.id!r}")
                seen.add(item.id)
                items.append(item)
    return items
