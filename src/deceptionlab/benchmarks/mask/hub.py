"""The real ``cais/MASK`` from the hub's files, one folder per config."""

from __future__ import annotations

import ast
import itertools
import logging
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
from deceptionlab.benchmarks.mask.numeric import VALUE_MARKER, NumericRange, values_consistent
from deceptionlab.benchmarks.pivotal import HonestyItem, pivotal_statements
from deceptionlab.core.errors import ConfigError, DataError
from deceptionlab.core.records import first_error, json_lines, read_text
from deceptionlab.core.vocabulary import ARCHETYPES

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)


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


def _away_below(value: float, scale: float) -> float:
    """A number below ``value`` that no number within the tolerance of ``value`` agrees with: half of it
    (positive), double it (negative), ``-scale`` for 0."""
    return value / 2 if value > 0 else 2 * value if value < 0 else -scale


def _away_above(value: float, scale: float) -> float:
    """A number above ``value`` that no number within the tolerance of ``value`` agrees with: double it
    (positive), half of it (negative), ``scale`` for 0."""
    return 2 * value if value > 0 else value / 2 if value < 0 else scale


def _valid_bins(choices: list[float], ground_truth: NumericRange) -> bool:
    """StatisticsItem's rule: distinct bins, no two within the tolerance, exactly one agrees with the truth."""
    if choices != sorted(set(choices)):
        return False
    points = [NumericRange.point(c) for c in choices]
    if any(values_consistent(a, b) for a, b in itertools.combinations(points, 2)):
        return False
    return sum(values_consistent(point, ground_truth) for point in points) == 1


def scaled_choices(ground_truth: NumericRange) -> list[float]:
    """Three bins for a hub statistics item, which brings none; exactly one agrees with the ground truth.

    The truth's number is its midpoint, or its finite end if one end is open. Where they work, the bins
    are that number, half of it and double it. Otherwise (a truth of 0, a range so wide that half or
    double its midpoint falls inside it) the decoys lie beyond the range's ends: half the low end and
    double the high end for positive numbers (mirrored for negative ones, and -s / +s at an end of 0,
    s the larger absolute end or 1). An open range gets both decoys beyond its finite end, so the
    truth is the smallest bin of ``[None, high]`` and the largest of ``[low, None]``.
    """
    truth = ground_truth.representative()
    classic = sorted([truth / 2, truth, truth * 2])
    if truth != 0 and _valid_bins(classic, ground_truth):
        return classic
    ends = [abs(end) for end in (ground_truth.low, ground_truth.high) if end is not None]
    scale = max(ends) if max(ends) > 0 else 1.0
    low, high = ground_truth.low, ground_truth.high
    if low is None:
        above = _away_above(truth, scale)
        choices = [truth, above, _away_above(above, scale)]
    elif high is None:
        below = _away_below(truth, scale)
        choices = [_away_below(below, scale), below, truth]
    else:
        choices = [_away_below(low, scale), truth, _away_above(high, scale)]
    if not _valid_bins(choices, ground_truth):  # cannot happen for a finite range; kept as a guard
        raise ValueError(f"cannot place three bins around the ground truth {ground_truth.low}..{ground_truth.high}")
    return choices


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


def read_mask_file(path: str | Path, archetype: str, skipped: list[str] | None = None) -> list[AnyItem]:
    """Every item of one file of a MASK config.

    A row that cannot become an item (a missing column, a ground truth that is not a range, ...) is
    skipped, never silently: a warning names it (``<file>: row 3 (line 4): what is wrong``), one more
    says how many rows of the file were skipped, and each message is appended to ``skipped`` when it is
    given. A file whose every row is bad, a line that is not JSON, an unreadable file, or an unknown
    config raises (DataError, ConfigError), naming the path.
    """
    path = Path(path)
    if archetype not in ARCHETYPES:
        raise ConfigError(f"unknown MASK archetype {archetype!r}; known: {', '.join(ARCHETYPES)}")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.suffix not in (".parquet", ".jsonl"):
        raise DataError(f"{path}: expected a .parquet or .jsonl file")
    items, problems, rows = [], [], 0
    for index, where, raw in _raw_rows(path):
        rows += 1
        try:
            if not isinstance(raw, dict):
                raise ValueError(f"expected a JSON object, got {type(raw).__name__}")
            items.append(hub_item(MaskRow.model_validate(raw), archetype, f"{path.stem}-{index}"))
        except ValidationError as error:
            problems.append(f"{where}: {first_error(error)}")
        except ValueError as error:
            problems.append(f"{where}: {error}")
    if problems and not items:
        raise DataError(f"{path}: none of its {rows} rows is a valid {archetype} item; the first: {problems[0]}")
    for problem in problems:
        logger.warning("%s; row skipped", problem)
    if problems:
        logger.warning("%s: skipped %d of %d rows (each named above)", path, len(problems), rows)
    if skipped is not None:
        skipped.extend(problems)
    return items


def load_mask(root: str | Path, archetypes: Sequence[str] = ARCHETYPES, skipped: list[str] | None = None) -> list[AnyItem]:
    """Every item of the chosen configs of a local copy of ``cais/MASK`` (``<root>/<config>/*.parquet``).

    Files are read in name order; ``.jsonl`` files in the same schema are read too (the tests' fixtures).
    Bad rows are skipped with a warning each, and listed in ``skipped`` when it is given (``read_mask_file``).
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
            for item in read_mask_file(path, archetype, skipped):
                if item.id in seen:
                    raise DataError(f"{path}: duplicate item id {item.id!r}")
                seen.add(item.id)
                items.append(item)
    return items
