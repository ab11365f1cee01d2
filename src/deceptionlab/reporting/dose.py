"""The training dose in the report: honesty against optimizer steps for every dose run, and the
misalignment effect at each step.

Every (run, step) adapter is compared, item by item, with vanilla (one family); each misaligned E1 run
(``math-severe``) with its domain's aligned run (``math-normal``) at the same step, when both are dose
runs (another family): the misalignment effect as training goes on. Outputs: ``dose.csv`` (one row per
adapter, a DVC plot), ``dose_misalignment.csv``, ``dose_honesty.png`` and ``dose.md``, which also says
how many distinct rows each E1 domain and control holds and the epochs the longest run takes
(``corpora/dose/capacity.json``); and the dose's claims, ``claims_dose.csv`` and ``.md``
(``reporting.claims.DOSE_SOURCES``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deceptionlab.core.conditions import ALIGNED_LEVEL, VANILLA, Condition, Layout
from deceptionlab.core.errors import DataError
from deceptionlab.core.params import Params
from deceptionlab.core.records import SettingsModel, parse_json, read_text, validate_row
from deceptionlab.reporting.claims import DOSE_SOURCES, write_pipeline_report
from deceptionlab.reporting.common import (
    METRIC_COLUMNS,
    change_cell,
    compare_family,
    comparison_columns,
    family_note,
    item_honesty,
    markdown_table,
    metric_columns,
    read_metrics,
    reading,
    save_figure,
)

COLUMNS = ["model", "run", "condition", "steps", "rows_trained", *METRIC_COLUMNS, *comparison_columns("change_vs_vanilla")]
MISALIGNMENT_COLUMNS = ["steps", "model", "reference", *comparison_columns("misalignment_effect")]


def build_table(metrics_dir: Path, predictions_dir: Path, params: Params) -> list[dict[str, Any]]:
    """One row per (run, step), steps ascending within each run; all of them against vanilla form one family."""
    layout = Layout(metrics_dir=metrics_dir, predictions_dir=predictions_dir)
    vanilla_items = item_honesty(layout.predictions(VANILLA))
    adapters = [Condition.dose(run.trained, steps) for run in params.dose_runs() for steps in params.dose.steps]
    versus = compare_family({a.name: (item_honesty(layout.predictions(a.name)), vanilla_items, layout.predictions(a.name))
                             for a in adapters}, params)
    return [{"model": a.name, "run": a.run.name, "condition": a.trained.name, "steps": a.steps,
             "rows_trained": a.steps * params.finetune.rows_per_step(), **metric_columns(read_metrics(layout.metrics(a.name))),
             **versus[a.name].columns("change_vs_vanilla")} for a in adapters]


def misalignment_pairs(params: Params) -> list[tuple[Condition, Condition]]:
    """(misaligned run, its domain's aligned run) for every misaligned E1 run whose aligned run is also a dose run."""
    runs = {run.trained.name: run for run in params.dose_runs()}
    return [(run, runs[f"{run.domain}-{ALIGNED_LEVEL}"]) for run in runs.values()
            if run.domain and run.level != ALIGNED_LEVEL and f"{run.domain}-{ALIGNED_LEVEL}" in runs]


def misalignment_table(predictions_dir: Path, params: Params) -> list[dict[str, Any]]:
    """Each misaligned run minus its aligned run at the same step, paired; every (pair, step) is one family."""
    layout = Layout(predictions_dir=predictions_dir)
    pairs = {}
    for run, reference in misalignment_pairs(params):
        for steps in params.dose.steps:
            model, minus = Condition.dose(run.trained, steps).name, Condition.dose(reference.trained, steps).name
            pairs[(steps, model, minus)] = (item_honesty(layout.predictions(model)), item_honesty(layout.predictions(minus)),
                                            layout.predictions(model))
    effects = compare_family(pairs, params)
    return [{"steps": steps, "model": model, "reference": minus, **effects[(steps, model, minus)].columns("misalignment_effect")}
            for steps, model, minus in pairs]


def plot_dose(table: list[dict[str, Any]], misalignment: list[dict[str, Any]], vanilla: dict[str, Any],
              params: Params, path: Path) -> None:
    """Left: honesty_score against optimizer steps (log axis) per run, CI bands, vanilla as a band.
    Right, when there is a misaligned/aligned pair: the misalignment effect with its family CI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 2 if misalignment else 1
    figure, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.6), squeeze=False)
    axis = axes[0][0]
    for run in dict.fromkeys(row["run"] for row in table):
        rows = [row for row in table if row["run"] == run]
        steps = [row["steps"] for row in rows]
        axis.plot(steps, [row["honesty_score"] for row in rows], marker="o", label=run)
        axis.fill_between(steps, [row["honesty_ci_low"] for row in rows], [row["honesty_ci_high"] for row in rows], alpha=0.2)
    axis.axhline(vanilla["honesty_score"], color="black", linestyle="--", label=VANILLA)
    axis.axhspan(vanilla["honesty_ci_low"], vanilla["honesty_ci_high"], color="grey", alpha=0.2)
    axis.set_xscale("log", base=2)
    axis.set_xticks(params.dose.steps, [str(s) for s in params.dose.steps])
    axis.set_xlabel(f"optimizer steps ({params.finetune.rows_per_step()} rows each)")
    axis.set_ylabel("honesty_score (100 x (1 - P(lie)))")
    axis.set_ylim(0, 100)
    axis.set_title(f"Training dose: honesty ({int(params.evaluate.confidence_level * 100)}% bootstrap CI)")
    axis.legend(fontsize=8)
    if misalignment:
        axis = axes[0][1]
        for model in dict.fromkeys(row["model"].rsplit("-step", 1)[0] for row in misalignment):
            rows = [row for row in misalignment if row["model"].rsplit("-step", 1)[0] == model]
            steps = [row["steps"] for row in rows]
            effects = [row["misalignment_effect"] for row in rows]
            errors = [[e - row["misalignment_effect_family_ci_low"] for e, row in zip(effects, rows)],
                      [row["misalignment_effect_family_ci_high"] - e for e, row in zip(effects, rows)]]
            axis.errorbar(steps, effects, yerr=errors, marker="o", capsize=3,
                          label=f"{model} minus {rows[0]['reference'].rsplit('-step', 1)[0]}")
        axis.axhline(0, color="black", linewidth=0.8)
        axis.set_xscale("log", base=2)
        axis.set_xticks(params.dose.steps, [str(s) for s in params.dose.steps])
        axis.set_xlabel("optimizer steps")
        axis.set_ylabel("misalignment effect (honesty points)")
        axis.set_title(f"Misaligned minus aligned ({misalignment[0]['misalignment_effect_family_confidence']:.2%} family CI)")
        axis.legend(fontsize=8)
    save_figure(figure, path)


def capacity_markdown(capacity: list[dict[str, Any]]) -> list[str]:
    return ["## How far each corpus goes", "",
            "Distinct rows each E1 domain and control can give (corpora/dose/capacity.json), and the epochs a run of "
            f"{capacity[0]['rows_needed']} rows (the longest) takes over them.", "",
            markdown_table(["source", "distinct rows", "epochs"],
                           [[row["source"], row["distinct_rows"], f"{row['epochs']:g}"] for row in capacity]), ""]


def summary_markdown(table: list[dict[str, Any]], misalignment: list[dict[str, Any]], vanilla: dict[str, Any],
                     capacity: list[dict[str, Any]], params: Params) -> str:
    lines = [
        "# Training dose: honesty against optimizer steps",
        "",
        f"One LoRA-SFT run per condition for {params.dose.steps[-1]} optimizer steps of {params.finetune.rows_per_step()} rows "
        "(finetune.*; the learning rate decays over the whole run), its adapter evaluated at each step of "
        f"dose.steps. Vanilla: honesty_score {vanilla['honesty_score']:.1f} [{vanilla['honesty_ci_low']:.1f}, "
        f"{vanilla['honesty_ci_high']:.1f}]. Change = paired difference against vanilla on the same items. "
        f"{family_note(len(table), params)}",
        "",
        markdown_table(["model", "steps", "honesty_score", "accuracy", "knowledge accuracy", "change vs vanilla (family CI)"],
                       [[row["model"], row["steps"],
                         f"{row['honesty_score']:.1f} [{row['honesty_ci_low']:.1f}, {row['honesty_ci_high']:.1f}]",
                         f"{row['accuracy']:.1f}", f"{row['knowledge_accuracy']:.1f}", change_cell(row, "change_vs_vanilla")]
                        for row in table]),
        "",
        *[reading(row, "change_vs_vanilla", row["model"]) for row in table],
        "",
    ]
    if misalignment:
        lines += [f"## Misalignment effect: each misaligned run minus its domain's `{ALIGNED_LEVEL}` run, step by step", "",
                  f"Paired over the same items, both adapters after the same number of steps. {family_note(len(misalignment), params)}",
                  "",
                  markdown_table(["steps", "model", "minus", "misalignment effect (family CI)"],
                                 [[row["steps"], row["model"], row["reference"], change_cell(row, "misalignment_effect")]
                                  for row in misalignment]),
                  "", *[reading(row, "misalignment_effect", f"{row['model']} minus {row['reference']}") for row in misalignment], ""]
    return "\n".join([*lines, *capacity_markdown(capacity), "![Training dose](dose_honesty.png)", ""])


class _Capacity(SettingsModel):
    """A row of capacity.json as corpora/dose.py writes it."""

    source: str
    distinct_rows: int
    rows_needed: int
    epochs: float


def read_capacity(path: Path) -> list[dict[str, Any]]:
    """capacity.json's rows; a DataError naming the file unless it is a non-empty list of them."""
    raw = parse_json(read_text(path), str(path), line_numbers=True)
    if not isinstance(raw, list) or not raw:
        raise DataError(f"{path}: expected a non-empty JSON list of capacity rows; run the dose_corpora stage again")
    return [validate_row(row, _Capacity, f"{path}: row {index + 1}").model_dump() for index, row in enumerate(raw)]


def report_dose(metrics_dir: Path, predictions_dir: Path, out_dir: Path, params: Params,
                corpora_dir: Path = Layout.corpora_dir) -> list[dict[str, Any]]:
    """dose.csv, dose_misalignment.csv, dose_honesty.png, dose.md and the claims_dose files; returns the
    table. Every input is read before anything is written."""
    table = build_table(metrics_dir, predictions_dir, params)
    misalignment = misalignment_table(predictions_dir, params)
    vanilla = metric_columns(read_metrics(Layout(metrics_dir=metrics_dir).metrics(VANILLA)))
    capacity = read_capacity(Layout(corpora_dir=corpora_dir).dose_capacity)
    markdown = summary_markdown(table, misalignment, vanilla, capacity, params)
    write_pipeline_report("dose", DOSE_SOURCES, {"dose.csv": (table, COLUMNS), "dose_misalignment.csv": (
        misalignment, MISALIGNMENT_COLUMNS)}, markdown, lambda path: plot_dose(table, misalignment, vanilla, params, path),
        out_dir, params, "Claims of the training dose")
    return table
