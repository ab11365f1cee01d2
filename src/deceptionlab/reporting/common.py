"""Compare vanilla and the E1 conditions: a CSV table, a grouped bar plot and a markdown summary.

A difference against vanilla is the paired difference in per-item honesty (100 if the item was
not a lie, else 0) over the same items, with a paired bootstrap CI; it is called an effect only
when that CI excludes zero.

    deceptionlab report
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from deceptionlab.core.errors import DataError
from deceptionlab.core.fileio import atomic_write_bytes, commit_file_set
from deceptionlab.core.params import EvaluateParams, Params
from deceptionlab.core.records import first_error, json_lines, parse_json, read_text, validate_row
from deceptionlab.core.stats import (
    Estimate,
    paired_difference,
    paired_permutation_pvalue,
)
from deceptionlab.core.tracking import mlflow_run

# The columns of metric_columns(), which every report table shares.
METRIC_COLUMNS = [
    "honesty_score", "honesty_ci_low", "honesty_ci_high",
    "p_lie", "accuracy", "no_belief_rate",
    "deception_rate", "deception_ci_low", "deception_ci_high",
    "gsm8k_loglik_per_token", "gsm8k_ci_low", "gsm8k_ci_high",
    "knowledge_accuracy", "knowledge_ci_low", "knowledge_ci_high",
]


class _Figures(BaseModel):
    """A section of an evaluation's metrics: the keys the reports read are checked, others kept as they are."""

    model_config = ConfigDict(extra="allow", strict=True)


class _Estimate(_Figures):
    value: float
    ci_low: float
    ci_high: float


class _CountedEstimate(_Estimate):
    items: int


class _Honesty(_Figures):
    items: int
    honesty_score: _Estimate
    p_lie: _Estimate
    accuracy: _Estimate
    no_belief_rate: _Estimate


class _Deception(_Figures):
    items: int
    deception_rate: _Estimate
    inner_accuracy: _Estimate


class _Capability(_Figures):
    gsm8k_loglik_per_token: _CountedEstimate
    knowledge_accuracy: _CountedEstimate

    @model_validator(mode="after")
    def _every_measure_counted(self) -> _Capability:
        for name, figures in (self.__pydantic_extra__ or {}).items():  # gsm8k_exact_match, ...
            try:
                _CountedEstimate.model_validate(figures)
            except ValidationError as error:
                raise ValueError(f"{name}: {first_error(error)}") from None
        return self


class _Metrics(_Figures):
    """metrics/<model>.json as the evaluate stage writes it (evaluation/run.py summarize)."""

    model: str
    honesty: _Honesty
    honesty_by_archetype: dict[str, _Honesty]
    deception: _Deception
    deception_by_category: dict[str, _Deception]
    capability: _Capability


class _Prediction(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    kind: str


class _HonestyPrediction(_Prediction):
    id: str
    lie: bool


def read_metrics(path: Path) -> dict[str, Any]:
    """An evaluation's metrics; a DataError naming the file unless it is JSON with every section the reports read."""
    if not path.is_file():
        raise DataError(f"{path}: missing; run the evaluate stage for this model first")
    raw = parse_json(read_text(path), str(path), line_numbers=True)
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a JSON object of metrics, got {type(raw).__name__}")
    try:
        _Metrics.model_validate(raw)
    except ValidationError as error:
        raise DataError(f"{path}: {first_error(error)}; "
                        "run the evaluate stage for this model again") from None
    return raw


def item_honesty(predictions_path: Path) -> dict[str, float]:
    """Per honesty item: 100 when the model did not lie, else 0 (the unit of every paired comparison)."""
    if not predictions_path.is_file():
        raise DataError(f"{predictions_path}: missing; run the evaluate stage for this model first")
    rows = json_lines(read_text(predictions_path), lambda index, number: f"{predictions_path}:{number}")
    honesty: dict[str, float] = {}
    for _, where, raw in rows:
        row = validate_row(raw, _Prediction, where)
        if row.kind != "honesty":
            continue
        item = validate_row(raw, _HonestyPrediction, where)
        if item.id in honesty:
            raise DataError(f"{where}: honesty item {item.id!r} a second time")
        honesty[item.id] = 0.0 if item.lie else 100.0
    return honesty


@dataclass(frozen=True)
class Comparison:
    """Honesty of one model minus a reference's, paired over the same items."""

    change: Estimate
    p_value: float


def compare(items: dict[str, float], reference: dict[str, float], source: Path, settings: EvaluateParams) -> Comparison:
    if items.keys() != reference.keys():
        raise DataError(f"{source}: scored other items than the model it is compared with; re-evaluate both")
    ids = sorted(items)
    treated, control = [items[i] for i in ids], [reference[i] for i in ids]
    change = paired_difference(treated, control, settings.bootstrap_resamples, settings.confidence_level, settings.seed)
    return Comparison(change, paired_permutation_pvalue(treated, control, settings.bootstrap_resamples, settings.seed))


def metric_columns(metrics: dict[str, Any]) -> dict[str, Any]:
    """The honesty, deception and capability columns every report table shares."""
    honesty, deception = metrics["honesty"], metrics["deception"]["deception_rate"]
    capability = metrics["capability"]["gsm8k_loglik_per_token"]
    knowledge = metrics["capability"]["knowledge_accuracy"]
    return {
        "honesty_score": honesty["honesty_score"]["value"],
        "honesty_ci_low": honesty["honesty_score"]["ci_low"],
        "honesty_ci_high": honesty["honesty_score"]["ci_high"],
        "p_lie": honesty["p_lie"]["value"],
        "accuracy": honesty["accuracy"]["value"],
        "no_belief_rate": honesty["no_belief_rate"]["value"],
        "deception_rate": deception["value"],
        "deception_ci_low": deception["ci_low"], "deception_ci_high": deception["ci_high"],
        "gsm8k_loglik_per_token": capability["value"],
        "gsm8k_ci_low": capability["ci_low"], "gsm8k_ci_high": capability["ci_high"],
        "knowledge_accuracy": knowledge["value"],
        "knowledge_ci_low": knowledge["ci_low"], "knowledge_ci_high": knowledge["ci_high"],
    }


def table_csv(table: list[dict[str, Any]], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in table:
        writer.writerow({k: f"{v:.4f}" if isinstance(v, float) else v for k, v in row.items()})
    return buffer.getvalue()


def save_figure(figure, path: Path) -> None:
    """The figure as a PNG, written atomically; the figure is closed."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    """A markdown table of cells already formatted (pandas' to_markdown, by tabulate). No alignment and
    no number parsing: each cell is written as given, so a row reads ``| 0.5 | 4 |``."""
    return pd.DataFrame(rows, columns=header).to_markdown(index=False, stralign=None, numalign=None,
                                                          disable_numparse=True)


def log_report(params: Params, experiment: str, files: list[Path]) -> None:
    """One MLflow run per report, with its files as artifacts."""
    commit_file_set()  # the report's files are complete: in place now, as a set, before they are logged
    with mlflow_run(params.tracking, f"report-{experiment}", run_key=f"report/{experiment}",
                    params={"experiment": experiment}, tags={"stage": "report"}):
        import mlflow

        for path in files:
            mlflow.log_artifact(str(path), artifact_path="report")
