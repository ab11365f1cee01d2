"""E3 in the report: honesty, deception and capability against the biased share, per self-training method.

Each (biased_share, method) model is compared, item by item, with the same method's model at
biased_share 0 (users all benign: the control) and with vanilla. Outputs: ``e3.csv`` (one row per
model, a DVC plot), ``e3_honesty.png`` and ``e3.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deceptionlab.core.conditions import VANILLA, Condition, Layout
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

COLUMNS = ["model", "method", "biased_share", *METRIC_COLUMNS, *comparison_columns("change_vs_benign"),
           *comparison_columns("change_vs_vanilla")]


def build_table(metrics_dir: Path, predictions_dir: Path, params: Params) -> list[dict[str, Any]]:
    """One row per (method, biased_share), shares ascending within each method. Every biased share
    against its method's all-benign model is one family (the E3 effects); against vanilla, another."""
    layout = Layout(metrics_dir=metrics_dir, predictions_dir=predictions_dir)
    vanilla_items = item_honesty(layout.predictions(VANILLA))
    models = {(method, share): Condition.e3(share, method).name for method in params.e3.methods
              for share in sorted(params.e3.biased_shares)}
    items = {key: item_honesty(layout.predictions(model)) for key, model in models.items()}
    biased = [key for key in models if key[1] > 0]
    versus_benign = compare_family({key: (items[key], items[(key[0], 0.0)], layout.predictions(models[key])) for key in biased},
                                   params)
    versus_vanilla = compare_family({key: (items[key], vanilla_items, layout.predictions(models[key])) for key in models},
                                    params)
    return [
        {"model": model, "method": method, "biased_share": share, **metric_columns(read_metrics(layout.metrics(model))),
         **(versus_benign[(method, share)].columns("change_vs_benign") if (method, share) in versus_benign else {}),
         **versus_vanilla[(method, share)].columns("change_vs_vanilla")}
        for (method, share), model in models.items()
    ]


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
    biased = [row for row in table if row["biased_share"] > 0]
    lines = [
        "# E3: self-training on ratings from benign and biased users",
        "",
        f"{e3.n_users} simulated users per condition, round(biased_share x {e3.n_users}) of them biased, "
        f"{e3.turns} turns, {e3.candidates} sampled replies per turn rated by the {e3.rater} rater; the model "
        f"trains on the top {e3.top_k} (SFT) or the top {e3.top_k} against the bottom {e3.bottom_k} (KTO) replies "
        f"of each turn, {e3.rounds} round(s). Change vs benign = paired difference against the same method "
        f"at biased_share 0. {family_note(len(biased), params)} Changes against vanilla are a family of their own.",
        "",
    ]
    cells = [[row["method"], f"{row['biased_share']:g}",
              f"{row['honesty_score']:.1f} [{row['honesty_ci_low']:.1f}, {row['honesty_ci_high']:.1f}]",
              "" if row["biased_share"] == 0 else change_cell(row, "change_vs_benign"), change_cell(row, "change_vs_vanilla"),
              f"{row['deception_rate']:.1f} [{row['deception_ci_low']:.1f}, {row['deception_ci_high']:.1f}]",
              f"{row['gsm8k_loglik_per_token']:.3f}", f"{row['knowledge_accuracy']:.1f}"] for row in table]
    lines.append(markdown_table(["method", "biased_share", "honesty_score", "change vs benign (family CI)",
                                 "change vs vanilla (family CI)", "deception_rate", "GSM8K loglik / token",
                                 "knowledge accuracy"], cells))
    lines += ["", "## Each biased share against all-benign users", ""]
    lines += [reading(row, "change_vs_benign", f"{row['method']} at biased_share {row['biased_share']:g}") for row in biased]
    lines += ["", "![E3 honesty](e3_honesty.png)", ""]
    return "\n".join(lines)


def report_selftrain(metrics_dir: Path, predictions_dir: Path, out_dir: Path, params: Params) -> list[dict[str, Any]]:
    """e3.csv, e3_honesty.png and e3.md; returns the table. Every input is read before anything is written."""
    table = build_table(metrics_dir, predictions_dir, params)
    vanilla = metric_columns(read_metrics(Layout(metrics_dir=metrics_dir).metrics(VANILLA)))
    markdown = summary_markdown(table, params)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_honesty(table, vanilla, params, out_dir / "e3_honesty.png")
    atomic_write_text(out_dir / "e3.csv", table_csv(table, COLUMNS))
    atomic_write_text(out_dir / "e3.md", markdown)
    log_report(params, "e3", [out_dir / name for name in ("e3.md", "e3.csv", "e3_honesty.png")])
    return table
