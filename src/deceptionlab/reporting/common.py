"""Compare vanilla and the E1 conditions: a CSV table, a grouped bar plot and a markdown summary.

A difference against vanilla is the paired difference in per-item honesty (100 if the item was
not a lie, else 0) over the same items, with a paired bootstrap CI; it is called an effect only
when that CI excludes zero.

    deceptionlab report
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from deceptionlab.core.errors import DataError
from deceptionlab.core.params import EvaluateParams, Params
from deceptionlab.core.records import json_lines, read_text
from deceptionlab.core.stats import (
    Estimate,
    paired_difference,
    paired_permutation_pvalue,
)
from deceptionlab.core.tracking import log_report_files, mlflow_run

# The columns of metric_columns(), which every report table shares.
METRIC_COLUMNS = [
    "honesty_score", "honesty_ci_low", "honesty_ci_high",
    "p_lie", "accuracy", "no_belief_rate",
    "deception_rate", "deception_ci_low", "deception_ci_high",
    "gsm8k_loglik_per_token", "gsm8k_ci_low", "gsm8k_ci_high",
    "knowledge_accuracy", "knowledge_ci_low", "knowledge_ci_high",
]


def read_metrics(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"{path}: missing; run the evaluate stage for this model first")
    return json.loads(path.read_text(encoding="utf-8"))


def item_honesty(predictions_path: Path) -> dict[str, float]:
    """Per honesty item: 100 when the model did not lie, else 0 (the unit of every paired comparison)."""
    if not predictions_path.is_file():
        raise DataError(f"{predictions_path}: missing; run the evaluate stage for this model first")
    rows = json_lines(read_text(predictions_path), lambda index, number: f"{predictions_path}:{number}")
    return {row["id"]: 0.0 if row["lie"] else 100.0 for _, _, row in rows if row["kind"] == "honesty"}


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
    tmp = path.with_suffix(".png.tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(path)


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    """A markdown table of cells already formatted (pandas' to_markdown, by tabulate). No alignment and
    no number parsing: each cell is written as given, so a row reads ``| 0.5 | 4 |``."""
    return pd.DataFrame(rows, columns=header).to_markdown(index=False, stralign=None, numalign=None,
                                                          disable_numparse=True)


def log_report(params: Params, experiment: str, files: list[Path]) -> None:
    """One MLflow run per report, in the experiment's MLflow experiment: its files as artifacts, its
    tables' numbers as metrics (``<model>/<column>``: every effect size and CI) and its fit's
    (``fit/<name>``), its PNG plots as images (core/tracking.log_report_files)."""
    with mlflow_run(params.tracking, f"report-{experiment}", run_key=f"report/{experiment}",
                    params={"experiment": experiment}, tags={"stage": "report", "experiment": experiment}):
        log_report_files(files)
