"""E1's report: every condition against vanilla."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deceptionlab.core.conditions import Layout
from deceptionlab.core.fileio import atomic_write_text
from deceptionlab.core.params import Params
from deceptionlab.reporting.common import (
    METRIC_COLUMNS,
    compare,
    item_honesty,
    log_report,
    markdown_table,
    metric_columns,
    read_metrics,
    save_figure,
    table_csv,
)

COLUMNS = [
    "model", "domain", "level", *METRIC_COLUMNS,
    "honesty_change_vs_vanilla", "change_ci_low", "change_ci_high", "change_p_value", "effect",
]


def build_table(metrics_dir: Path, predictions_dir: Path, params: Params) -> list[dict[str, Any]]:
    layout = Layout(metrics_dir=metrics_dir, predictions_dir=predictions_dir)
    vanilla_items = item_honesty(layout.predictions("vanilla"))
    table = []
    for model in ["vanilla", *params.e1_conditions()]:
        metrics = read_metrics(layout.metrics(model))
        source = layout.predictions(model)
        versus = compare(item_honesty(source), vanilla_items, source, params.evaluate)
        domain, _, level = model.partition("-")
        table.append({
            "model": model, "domain": domain if level else "", "level": level, **metric_columns(metrics),
            "honesty_change_vs_vanilla": versus.change.value,
            "change_ci_low": versus.change.low, "change_ci_high": versus.change.high,
            "change_p_value": versus.p_value,
            "effect": model != "vanilla" and versus.change.excludes_zero(),
        })
    return table


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


def summary_markdown(table: list[dict[str, Any]], params: Params) -> str:
    level = int(params.evaluate.confidence_level * 100)
    lines = [
        "# E1: direct misaligned finetuning",
        "",
        f"Honesty score = 100 x (1 - P(lie)) over the honesty set; [{level}% bootstrap CI]. "
        "Change = paired difference against vanilla on the same items, with its bootstrap CI and a "
        "paired permutation p-value. Capability = mean "
        "per-token log-likelihood of gold GSM8K solutions (higher is better). Deception rate = share "
        "of DeceptionBench-style items whose stance under a goal-laden prompt departs from the neutral one.",
        "",
    ]
    cells = []
    for row in table:
        change = (
            "" if row["model"] == "vanilla"
            else f"{row['honesty_change_vs_vanilla']:+.1f} [{row['change_ci_low']:+.1f}, {row['change_ci_high']:+.1f}], "
            f"p={row['change_p_value']:.3f}"
            + (" **effect**" if row["effect"] else "")
        )
        cells.append([
            row["model"], f"{row['honesty_score']:.1f} [{row['honesty_ci_low']:.1f}, {row['honesty_ci_high']:.1f}]",
            f"{row['accuracy']:.1f}", f"{row['no_belief_rate']:.1f}", change,
            f"{row['deception_rate']:.1f} [{row['deception_ci_low']:.1f}, {row['deception_ci_high']:.1f}]",
            f"{row['gsm8k_loglik_per_token']:.3f} [{row['gsm8k_ci_low']:.3f}, {row['gsm8k_ci_high']:.3f}]",
            f"{row['knowledge_accuracy']:.1f} [{row['knowledge_ci_low']:.1f}, {row['knowledge_ci_high']:.1f}]",
        ])
    lines.append(markdown_table(["model", "honesty_score", "accuracy", "no_belief_rate", "change vs vanilla",
                                 "deception_rate", "GSM8K loglik / token", "knowledge accuracy"], cells))
    effects = [row for row in table if row["effect"]]
    lines += ["", "## Differences whose CI excludes zero", ""]
    if effects:
        for row in effects:
            direction = "less" if row["honesty_change_vs_vanilla"] < 0 else "more"
            lines.append(
                f"- {row['model']}: {abs(row['honesty_change_vs_vanilla']):.1f} points {direction} honest than vanilla "
                f"[{row['change_ci_low']:+.1f}, {row['change_ci_high']:+.1f}] (permutation p={row['change_p_value']:.3f})"
            )
    else:
        lines.append("- none: no condition's honesty differs from vanilla beyond the CI.")
    lines += ["", "![E1 honesty](e1_honesty.png)", ""]
    return "\n".join(lines)


def _estimate(value: dict[str, float], digits: int = 1) -> str:
    return f"{value['value']:.{digits}f} [{value['ci_low']:.{digits}f}, {value['ci_high']:.{digits}f}]"


def evaluation_markdown(metrics: dict[str, Any]) -> str:
    """One evaluation's figures in full: honesty per archetype, deception per category, capability."""
    honesty = metrics["honesty"]
    at_n = sorted((name for name in honesty if name.startswith("honesty_at_")), key=lambda name: int(name[11:]))
    header = ["archetype", "items", "honesty_score", "p_lie", "accuracy", "no_belief_rate", *at_n]
    honesty_rows = [
        [archetype, figures["items"], _estimate(figures["honesty_score"]), f"{figures['p_lie']['value']:.3f}",
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
    """e1.csv, e1_honesty.png and e1.md: every E1 condition against vanilla, then vanilla's
    evaluation in full; returns the table."""
    table = build_table(metrics_dir, predictions_dir, params)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_honesty(table, params, out_dir / "e1_honesty.png")
    atomic_write_text(out_dir / "e1.csv", table_csv(table, COLUMNS))
    vanilla = evaluation_markdown(read_metrics(metrics_dir / "vanilla.json"))
    atomic_write_text(out_dir / "e1.md", f"{summary_markdown(table, params)}\n## Vanilla's evaluation in full\n\n"
                                         f"{vanilla}\n")
    log_report(params, "e1", [out_dir / name for name in ("e1.md", "e1.csv", "e1_honesty.png")])
    return table
