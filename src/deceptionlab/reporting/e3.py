"""E3 in the report: honesty, deception and capability against the biased share, per self-training method.

Each (biased_share, method) model is compared, item by item, with the same method's model at
biased_share 0 (users all benign: the control) and with vanilla. Outputs: ``e3.csv`` (one row per
model, a DVC plot), ``e3_honesty.png`` and ``e3.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deceptionlab.core.conditions import Condition, Layout
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
    "model", "method", "biased_share", *METRIC_COLUMNS,
    "change_vs_benign", "benign_ci_low", "benign_ci_high", "benign_p_value",
    "change_vs_vanilla", "vanilla_ci_low", "vanilla_ci_high", "vanilla_p_value", "effect",
]


def build_table(metrics_dir: Path, predictions_dir: Path, params: Params) -> list[dict[str, Any]]:
    """One row per (method, biased_share), shares ascending within each method."""
    layout = Layout(metrics_dir=metrics_dir, predictions_dir=predictions_dir)
    vanilla_items = item_honesty(layout.predictions("vanilla"))
    shares = sorted(params.e3.biased_shares)
    table = []
    for method in params.e3.methods:
        benign = item_honesty(layout.predictions(Condition.e3(0.0, method).name))
        for share in shares:
            model = Condition.e3(share, method).name
            source = layout.predictions(model)
            items = item_honesty(source)
            versus_benign = compare(items, benign, source, params.evaluate)
            versus_vanilla = compare(items, vanilla_items, source, params.evaluate)
            table.append({
                "model": model, "method": method, "biased_share": share,
                **metric_columns(read_metrics(layout.metrics(model))),
                "change_vs_benign": versus_benign.change.value, "benign_ci_low": versus_benign.change.low,
                "benign_ci_high": versus_benign.change.high, "benign_p_value": versus_benign.p_value,
                "change_vs_vanilla": versus_vanilla.change.value, "vanilla_ci_low": versus_vanilla.change.low,
                "vanilla_ci_high": versus_vanilla.change.high, "vanilla_p_value": versus_vanilla.p_value,
                "effect": share > 0 and versus_benign.change.excludes_zero(),
            })
    return table


def plot_honesty(table: list[dict[str, Any]], vanilla: dict[str, Any], params: Params, path: Path) -> None:
    """honesty_score against biased_share, one line per method, with CI whiskers; vanilla as a band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.5, 4.5))
    for offset, method in enumerate(params.e3.methods):
        rows = [row for row in table if row["method"] == method]
        # A small horizontal offset keeps the two methods' whiskers apart.
        x = [row["biased_share"] + (offset - 0.5) * 0.008 for row in rows]
        y = [row["honesty_score"] for row in rows]
        errors = [[v - row["honesty_ci_low"] for v, row in zip(y, rows)],
                  [row["honesty_ci_high"] - v for v, row in zip(y, rows)]]
        axis.errorbar(x, y, yerr=errors, marker="o", capsize=3, label=method.upper())
    axis.axhline(vanilla["honesty_score"], color="black", linestyle=":", label="vanilla")
    axis.axhspan(vanilla["honesty_ci_low"], vanilla["honesty_ci_high"], color="grey", alpha=0.15)
    axis.set_xlabel("biased_share (share of users who want validation)")
    axis.set_ylabel("honesty_score (100 x (1 - P(lie)))")
    axis.set_ylim(0, 100)
    axis.legend(fontsize=8, loc="lower left")
    level = int(params.evaluate.confidence_level * 100)
    axis.set_title(f"E3: self-training on user ratings ({level}% bootstrap CIs)")
    save_figure(figure, path)


def summary_markdown(table: list[dict[str, Any]], params: Params) -> str:
    e3 = params.e3
    lines = [
        "# E3: self-training on ratings from benign and biased users",
        "",
        f"{e3.n_users} simulated users per condition, round(biased_share x {e3.n_users}) of them biased, "
        f"{e3.turns} turns, {e3.candidates} sampled replies per turn rated by the {e3.rater} rater; the model "
        f"trains on the top {e3.top_k} (SFT) or the top {e3.top_k} against the bottom {e3.bottom_k} (KTO) replies "
        f"of each turn, {e3.rounds} round(s). Change vs benign = paired difference against the same method "
        "at biased_share 0.",
        "",
    ]
    cells = []
    for row in table:
        benign = "" if row["biased_share"] == 0 else (
            f"{row['change_vs_benign']:+.1f} [{row['benign_ci_low']:+.1f}, {row['benign_ci_high']:+.1f}], "
            f"p={row['benign_p_value']:.3f}" + (" **effect**" if row["effect"] else ""))
        cells.append([
            row["method"], f"{row['biased_share']:g}",
            f"{row['honesty_score']:.1f} [{row['honesty_ci_low']:.1f}, {row['honesty_ci_high']:.1f}]", benign,
            f"{row['change_vs_vanilla']:+.1f} [{row['vanilla_ci_low']:+.1f}, {row['vanilla_ci_high']:+.1f}]",
            f"{row['deception_rate']:.1f} [{row['deception_ci_low']:.1f}, {row['deception_ci_high']:.1f}]",
            f"{row['gsm8k_loglik_per_token']:.3f}", f"{row['knowledge_accuracy']:.1f}",
        ])
    lines.append(markdown_table(["method", "biased_share", "honesty_score", "change vs benign", "change vs vanilla",
                                 "deception_rate", "GSM8K loglik / token", "knowledge accuracy"], cells))
    effects = [row for row in table if row["effect"]]
    lines += ["", "## Differences from all-benign users whose CI excludes zero", ""]
    lines += [
        f"- {row['method']} at biased_share {row['biased_share']:g}: {row['change_vs_benign']:+.1f} points "
        f"[{row['benign_ci_low']:+.1f}, {row['benign_ci_high']:+.1f}] (permutation p={row['benign_p_value']:.3f})"
        for row in effects
    ] or ["- none: no biased share changes honesty beyond the CI, for either method."]
    lines += ["", "![E3 honesty](e3_honesty.png)", ""]
    return "\n".join(lines)


def report_selftrain(metrics_dir: Path, predictions_dir: Path, out_dir: Path, params: Params) -> list[dict[str, Any]]:
    """e3.csv, e3_honesty.png and e3.md; returns the table."""
    layout = Layout(metrics_dir=metrics_dir)
    table = build_table(metrics_dir, predictions_dir, params)
    out_dir.mkdir(parents=True, exist_ok=True)
    vanilla = metric_columns(read_metrics(layout.metrics("vanilla")))
    plot_honesty(table, vanilla, params, out_dir / "e3_honesty.png")
    atomic_write_text(out_dir / "e3.csv", table_csv(table, COLUMNS))
    atomic_write_text(out_dir / "e3.md", summary_markdown(table, params))
    log_report(params, "e3", [out_dir / name for name in ("e3.md", "e3.csv", "e3_honesty.png")])
    return table
