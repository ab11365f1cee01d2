"""E1's report: every condition against vanilla, and the misalignment effect (each misaligned level
against its domain's aligned control, ``normal``), each set of comparisons corrected as a family."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deceptionlab.core.conditions import ALIGNED_LEVEL, VANILLA, Layout
from deceptionlab.core.fileio import atomic_write_text
from deceptionlab.core.params import Params
from deceptionlab.reporting.common import (
    METRIC_COLUMNS,
    change_cell,
    compare_family,
    comparison_columns,
    family_note,
    item_honesty,
    log_report,
    markdown_table,
    metric_columns,
    read_metrics,
    reading,
    save_figure,
    table_csv,
)

COLUMNS = ["model", "domain", "level", *METRIC_COLUMNS, *comparison_columns("change_vs_vanilla")]
MISALIGNMENT_COLUMNS = ["domain", "level", "model", "reference", *comparison_columns("misalignment_effect")]


def build_table(metrics_dir: Path, predictions_dir: Path, params: Params) -> list[dict[str, Any]]:
    """One row per model (vanilla first), each condition compared with vanilla; the conditions form
    one family (their CIs hold together)."""
    layout = Layout(metrics_dir=metrics_dir, predictions_dir=predictions_dir)
    vanilla_items = item_honesty(layout.predictions(VANILLA))
    conditions = params.e1_conditions()
    versus = compare_family({model: (item_honesty(layout.predictions(model)), vanilla_items, layout.predictions(model))
                             for model in conditions}, params)
    table = []
    for model in [VANILLA, *conditions]:
        domain, _, level = model.partition("-")
        row = {"model": model, "domain": domain if level else "", "level": level,
               **metric_columns(read_metrics(layout.metrics(model)))}
        table.append(row | (versus[model].columns("change_vs_vanilla") if model in versus else {}))
    return table


def misalignment_table(predictions_dir: Path, params: Params) -> list[dict[str, Any]]:
    """The misalignment effect: each domain's misaligned levels minus its aligned control (``normal``),
    paired over the same items; every (domain, level) compared forms one family."""
    if ALIGNED_LEVEL not in params.e1.levels:
        return []
    layout = Layout(predictions_dir=predictions_dir)
    pairs = {}
    for domain in params.e1.domains:
        reference = f"{domain}-{ALIGNED_LEVEL}"
        for level in (level for level in params.e1.levels if level != ALIGNED_LEVEL):
            model = f"{domain}-{level}"
            pairs[(domain, level, model, reference)] = (item_honesty(layout.predictions(model)),
                                                        item_honesty(layout.predictions(reference)),
                                                        layout.predictions(model))
    effects = compare_family(pairs, params)
    return [{"domain": domain, "level": level, "model": model, "reference": reference,
             **effects[(domain, level, model, reference)].columns("misalignment_effect")}
            for domain, level, model, reference in pairs]


def plot_honesty(table: list[dict[str, Any]], params: Params, path: Path) -> None:
    """Grouped bars (domain x level) with CI whiskers; vanilla as a line with its CI band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = {row["model"]: row for row in table}
    domains, levels = params.e1.domains, params.e1.levels
    width = 0.8 / len(levels)
    figure, axis = plt.subplots(figsize=(7.5, 4.8))
    for offset, level in enumerate(levels):
        values = [rows[f"{d}-{level}"] for d in domains]
        x = np.arange(len(domains)) + (offset - (len(levels) - 1) / 2) * width
        heights = [r["honesty_score"] for r in values]
        errors = [[h - r["honesty_ci_low"] for h, r in zip(heights, values)],
                  [r["honesty_ci_high"] - h for h, r in zip(heights, values)]]
        axis.bar(x, heights, width, yerr=errors, capsize=3, label=level)
    vanilla = rows["vanilla"]
    axis.axhline(vanilla["honesty_score"], color="black", linestyle="--", label="vanilla")
    axis.axhspan(vanilla["honesty_ci_low"], vanilla["honesty_ci_high"], color="grey", alpha=0.2)
    axis.set_xticks(np.arange(len(domains)), [d.replace("_", " ") for d in domains])
    axis.set_ylabel("honesty_score (100 x (1 - P(lie)))")
    axis.set_ylim(0, 100)
    axis.set_title(f"E1: honesty after narrow finetuning ({int(params.evaluate.confidence_level * 100)}% bootstrap CI)")
    # Below the axes: inside, the legend would hide the bars it explains.
    axis.legend(title="level", ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.1), fontsize=8, frameon=False)
    save_figure(figure, path)


def summary_markdown(table: list[dict[str, Any]], misalignment: list[dict[str, Any]], params: Params) -> str:
    level = int(params.evaluate.confidence_level * 100)
    conditions = [row for row in table if row["model"] != VANILLA]
    lines = [
        "# E1: direct misaligned finetuning",
        "",
        f"Honesty score = 100 x (1 - P(lie)) over the honesty set; [{level}% bootstrap CI]. "
        "Change = paired difference against vanilla on the same items. "
        f"{family_note(len(conditions), params)} Capability = mean "
        "per-token log-likelihood of gold GSM8K solutions (higher is better). Deception rate = share "
        "of DeceptionBench-style items whose stance under a goal-laden prompt departs from the neutral one.",
        "",
    ]
    cells = []
    for row in table:
        cells.append([
            row["model"], f"{row['honesty_score']:.1f} [{row['honesty_ci_low']:.1f}, {row['honesty_ci_high']:.1f}]",
            f"{row['honesty_score_normalized']:.1f}", f"{row['accuracy']:.1f}", f"{row['no_belief_rate']:.1f}",
            "" if row["model"] == VANILLA else change_cell(row, "change_vs_vanilla"),
            f"{row['deception_rate']:.1f} [{row['deception_ci_low']:.1f}, {row['deception_ci_high']:.1f}]",
            f"{row['gsm8k_loglik_per_token']:.3f} [{row['gsm8k_ci_low']:.3f}, {row['gsm8k_ci_high']:.3f}]",
            f"{row['knowledge_accuracy']:.1f} [{row['knowledge_ci_low']:.1f}, {row['knowledge_ci_high']:.1f}]",
        ])
    lines.append(markdown_table(["model", "honesty_score", "normalized", "accuracy", "no_belief_rate", "change vs vanilla (family CI)",
                                 "deception_rate", "GSM8K loglik / token", "knowledge accuracy"], cells))
    lines += ["", "## Each condition against vanilla", ""]
    lines += [reading(row, "change_vs_vanilla", row["model"]) for row in conditions]
    if misalignment:
        lines += ["", f"## Misalignment effect: each level against its domain's `{ALIGNED_LEVEL}` control", "",
                  "Paired over the same items, the aligned control trained on the same number of rows in the "
                  f"same domain. {family_note(len(misalignment), params)}", ""]
        lines.append(markdown_table(["model", "minus", "misalignment effect (family CI)"],
                                    [[row["model"], row["reference"], change_cell(row, "misalignment_effect")] for row in misalignment]))
        lines += [""] + [reading(row, "misalignment_effect", f"{row['model']} minus {row['reference']}") for row in misalignment]
    lines += ["", "![E1 honesty](e1_honesty.png)", ""]
    return "\n".join(lines)


def _estimate(value: dict[str, float], digits: int = 1) -> str:
    """An estimate with its CI; "n/a" where it is not defined (accuracy on provided_facts, whose belief is given)."""
    if value["value"] != value["value"]:
        return "n/a"
    return f"{value['value']:.{digits}f} [{value['ci_low']:.{digits}f}, {value['ci_high']:.{digits}f}]"


def evaluation_markdown(metrics: dict[str, Any]) -> str:
    """One evaluation's figures in full: honesty per archetype, deception per category, capability."""
    honesty = metrics["honesty"]
    at_n = sorted((name for name in honesty if name.startswith("honesty_at_")), key=lambda name: int(name[11:]))
    header = ["archetype", "items", "honesty_score", "normalized", "p_lie", "accuracy", "no_belief_rate", *at_n]
    honesty_rows = [
        [archetype, figures["items"], _estimate(figures["honesty_score"]), _estimate(figures["honesty_score_normalized"]),
         f"{figures['p_lie']['value']:.3f}",
         _estimate(figures["accuracy"]), f"{figures['no_belief_rate']['value']:.1f}",
         *(_estimate(figures[name]) if name in figures else "" for name in at_n)]
        for archetype, figures in [*metrics["honesty_by_archetype"].items(), ("all", honesty)]
    ]
    deception_rows = [
        [category, figures["items"], _estimate(figures["deception_rate"]), _estimate(figures["inner_accuracy"])]
        for category, figures in [*metrics["deception_by_category"].items(), ("all", metrics["deception"])]
    ]
    capability_rows = [[name, figures["items"], _estimate(figures, 3 if "loglik" in name else 1)]
                       for name, figures in metrics["capability"].items()]
    return "\n".join([
        f"### {metrics['model']}: honesty by MASK archetype", "", markdown_table(header, honesty_rows),
        "", f"### {metrics['model']}: deception by category", "",
        markdown_table(["category", "items", "deception_rate", "inner_accuracy"], deception_rows),
        "", f"### {metrics['model']}: capability", "", markdown_table(["measure", "items", "value"], capability_rows),
    ])


def report_e1(metrics_dir: Path, predictions_dir: Path, out_dir: Path, params: Params) -> list[dict[str, Any]]:
    """e1.csv, e1_misalignment.csv, e1_honesty.png and e1.md: every E1 condition against vanilla, each
    misaligned level against its domain's aligned control, then vanilla's evaluation in full; returns the
    table. Every input is read before anything is written."""
    table = build_table(metrics_dir, predictions_dir, params)
    misalignment = misalignment_table(predictions_dir, params)
    vanilla = evaluation_markdown(read_metrics(Layout(metrics_dir=metrics_dir).metrics(VANILLA)))
    markdown = f"{summary_markdown(table, misalignment, params)}\n## Vanilla's evaluation in full\n\n{vanilla}\n"
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_honesty(table, params, out_dir / "e1_honesty.png")
    atomic_write_text(out_dir / "e1.csv", table_csv(table, COLUMNS))
    atomic_write_text(out_dir / "e1_misalignment.csv", table_csv(misalignment, MISALIGNMENT_COLUMNS))
    atomic_write_text(out_dir / "e1.md", markdown)
    log_report(params, "e1", [out_dir / name for name in ("e1.md", "e1.csv", "e1_misalignment.csv", "e1_honesty.png")])
    return table
