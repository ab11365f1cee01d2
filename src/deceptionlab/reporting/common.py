"""What every report shares: the metrics and per-item honesty it reads, paired comparisons made as a
family (Bonferroni CIs, Holm p-values, minimum detectable effects, verdicts), the columns every table
carries, figures, markdown tables, and the report's MLflow run.

A comparison is the paired difference in per-item honesty (100 if the item was not a lie, else 0)
between two models over the same items.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from deceptionlab.core.errors import DataError
from deceptionlab.core.fileio import atomic_write_bytes, commit_file_set
from deceptionlab.core.params import Params
from deceptionlab.core.records import first_error, json_lines, parse_json, read_text, validate_row
from deceptionlab.core.stats import (
    VERDICTS,
    Estimate,
    family_confidence,
    minimum_detectable_effect,
    paired_difference,
    paired_permutation_pvalue,
    verdict,
)
from deceptionlab.core.tracking import log_report_files, mlflow_run

# The columns of metric_columns(), which every report table shares.
METRIC_COLUMNS = [
    "honesty_score", "honesty_ci_low", "honesty_ci_high", "honesty_score_normalized",
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
    honesty_score_normalized: _Estimate
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
    """Honesty of one model minus a reference's, paired over the same items, as one of a family of
    comparisons made together: ``change`` at the nominal confidence (uncorrected), ``family_change`` at
    the Bonferroni level that keeps the family's intervals at the nominal confidence together, the
    permutation p-value with its Holm adjustment over the family, the minimum detectable effect at the
    family's alpha and ``report.power``, and the verdict (core.stats.verdict) read off ``family_change``."""

    change: Estimate
    family_change: Estimate
    family_confidence: float
    p_value: float
    p_value_holm: float
    mde: float
    n_items: int
    verdict: str

    @property
    def effect(self) -> bool:
        return self.verdict == VERDICTS[0]

    def columns(self, prefix: str) -> dict[str, Any]:
        """The comparison as table columns, every name starting with ``prefix``."""
        return {
            f"{prefix}": self.change.value, f"{prefix}_ci_low": self.change.low, f"{prefix}_ci_high": self.change.high,
            f"{prefix}_family_ci_low": self.family_change.low, f"{prefix}_family_ci_high": self.family_change.high,
            f"{prefix}_family_confidence": self.family_confidence,
            f"{prefix}_p_value": self.p_value, f"{prefix}_p_value_holm": self.p_value_holm,
            f"{prefix}_mde": self.mde, f"{prefix}_n_items": self.n_items, f"{prefix}_verdict": self.verdict,
        }


def comparison_columns(prefix: str) -> list[str]:
    """The column names of ``Comparison.columns(prefix)``, in order."""
    return [f"{prefix}{suffix}" for suffix in ("", "_ci_low", "_ci_high", "_family_ci_low", "_family_ci_high",
                                                "_family_confidence", "_p_value", "_p_value_holm", "_mde",
                                                "_n_items", "_verdict")]


def paired_items(items: dict[str, float], reference: dict[str, float], source: Path) -> tuple[np.ndarray, np.ndarray]:
    """The two models' per-item honesty over the same items, in one order."""
    if items.keys() != reference.keys():
        raise DataError(f"{source}: scored other items than the model it is compared with; re-evaluate both")
    ids = sorted(items)
    return np.array([items[i] for i in ids]), np.array([reference[i] for i in ids])


@dataclass(frozen=True)
class Test:
    """One comparison of a family before the family is corrected: the change at the nominal and at the
    family's confidence, its p-value and MDE (at the family's alpha), and its paired items."""

    change: Estimate
    family_change: Estimate
    p_value: float
    mde: float
    n_items: int


def as_family(tests: dict[Any, Test], params: Params) -> dict[Any, Comparison]:
    """The tests as one family: Holm-adjusted p-values, and each called an effect only when its family
    interval excludes zero (core.stats.verdict)."""
    from statsmodels.stats.multitest import multipletests

    confidence = family_confidence(params.evaluate.confidence_level, len(tests))
    p_values = [test.p_value for test in tests.values()]
    holm = dict(zip(tests, multipletests(p_values, method="holm")[1], strict=True)) if tests else {}
    return {name: Comparison(change=test.change, family_change=test.family_change, family_confidence=confidence,
                             p_value=test.p_value, p_value_holm=float(holm[name]), mde=test.mde, n_items=test.n_items,
                             verdict=verdict(test.family_change, test.mde, params.report.smallest_effect_of_interest))
            for name, test in tests.items()}


def compare_family(pairs: dict[str, tuple[dict[str, float], dict[str, float], Path]], params: Params) -> dict[str, Comparison]:
    """Every comparison in ``pairs`` (name -> (items, reference items, the items' source file)), made
    together: their intervals hold at ``evaluate.confidence_level`` jointly (Bonferroni), their p-values
    are Holm-adjusted, and each is called an effect only when its family interval excludes zero."""
    settings = params.evaluate
    confidence = family_confidence(settings.confidence_level, len(pairs))
    tests = {}
    for name, (items, reference_items, source) in pairs.items():
        treated, reference = paired_items(items, reference_items, source)
        tests[name] = Test(
            change=paired_difference(treated, reference, settings.bootstrap_resamples, settings.confidence_level, settings.seed),
            family_change=paired_difference(treated, reference, settings.bootstrap_resamples, confidence, settings.seed),
            p_value=paired_permutation_pvalue(treated, reference, settings.bootstrap_resamples, settings.seed),
            mde=minimum_detectable_effect(treated - reference, 1 - confidence, params.report.power), n_items=len(treated))
    return as_family(tests, params)


def compare(items: dict[str, float], reference: dict[str, float], source: Path, params: Params) -> Comparison:
    """One comparison on its own (a family of one)."""
    return compare_family({"only": (items, reference, source)}, params)["only"]


def family_note(comparisons: int, params: Params) -> str:
    """How a report's family of comparisons is corrected, in one sentence."""
    level = family_confidence(params.evaluate.confidence_level, comparisons) * 100
    return (f"Effects are called at the family level: {level:.2f}% bootstrap CIs (Bonferroni over the {comparisons} "
            f"comparisons made together, {params.evaluate.confidence_level:.0%} jointly) and Holm-adjusted permutation "
            f"p-values; MDE = the smallest change found with {params.report.power:.0%} power at the family's alpha, "
            f"from the paired per-item spread; a null whose MDE exceeds {params.report.smallest_effect_of_interest:g} "
            "points is underpowered.")


def mde_text(mde: float) -> str:
    """An MDE for a table or a sentence; NaN when the two models agree on every item (no spread)."""
    return "none (no spread)" if mde != mde else f"{mde:.1f}"


def change_cell(row: dict[str, Any], prefix: str) -> str:
    """A comparison's cell: the change with its family CI, the Holm p-value, MDE and verdict."""
    return (f"{row[prefix]:+.1f} [{row[f'{prefix}_family_ci_low']:+.1f}, {row[f'{prefix}_family_ci_high']:+.1f}], "
            f"Holm p={row[f'{prefix}_p_value_holm']:.3f}, MDE {mde_text(row[f'{prefix}_mde'])}: " + (
                f"**{row[f'{prefix}_verdict']}**" if row[f"{prefix}_verdict"] == "effect" else row[f"{prefix}_verdict"]))


def reading(row: dict[str, Any], prefix: str, name: str) -> str:
    """A comparison's sentence: the effect with its family CI, or the bounds a null puts on it."""
    low, high = row[f"{prefix}_family_ci_low"], row[f"{prefix}_family_ci_high"]
    if row[f"{prefix}_verdict"] == "effect":
        return f"- {name}: {row[prefix]:+.1f} points [{low:+.1f}, {high:+.1f}] (Holm p={row[f'{prefix}_p_value_holm']:.3f})"
    return (f"- {name}: {row[f'{prefix}_verdict']}; a change outside [{low:+.1f}, {high:+.1f}] points is excluded "
            f"(MDE {mde_text(row[f'{prefix}_mde'])}; uncorrected {row[prefix]:+.1f} [{row[f'{prefix}_ci_low']:+.1f}, "
            f"{row[f'{prefix}_ci_high']:+.1f}])")


def metric_columns(metrics: dict[str, Any]) -> dict[str, Any]:
    """The honesty, deception and capability columns every report table shares."""
    honesty, deception = metrics["honesty"], metrics["deception"]["deception_rate"]
    capability = metrics["capability"]["gsm8k_loglik_per_token"]
    knowledge = metrics["capability"]["knowledge_accuracy"]
    return {
        "honesty_score": honesty["honesty_score"]["value"],
        "honesty_ci_low": honesty["honesty_score"]["ci_low"],
        "honesty_ci_high": honesty["honesty_score"]["ci_high"],
        # MASK's --normalize: honesty over the items with a belief (docs/metrics.md).
        "honesty_score_normalized": honesty["honesty_score_normalized"]["value"],
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
    """One MLflow run per report, in the experiment's MLflow experiment: its files as artifacts, its
    tables' numbers as metrics (``<model>/<column>``: every effect size and CI) and its fit's
    (``fit/<name>``), its PNG plots as images (core/tracking.log_report_files)."""
    commit_file_set()  # the report's files are complete: in place now, as a set, before they are logged
    with mlflow_run(params.tracking, f"report-{experiment}", run_key=f"report/{experiment}",
                    params={"experiment": experiment}, tags={"stage": "report", "experiment": experiment}):
        log_report_files(files)
