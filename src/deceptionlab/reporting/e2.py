"""E2 in the report: honesty, deception and capability against the mixture ratio, and the Hill fit.

Each ratio's model is compared, item by item, with the control (ratio 0: the same benign rows and
no misaligned ones) and with vanilla (no finetuning), as the paper reports both. The Hill fit
(``dose_response``) runs on the per-item honesty (100 = no lie, 0 = lie) at every ratio, bootstrapped
with items paired across ratios; its effective doses are read only when the fit is resolved
(``dose_response.unresolved_reasons``).

Outputs: ``e2.csv`` (one row per ratio, a DVC plot), ``e2_dose_response.png`` (log-x panels),
``e2_fit.json`` (fit, ED10/ED50 with bootstrap CIs, the smallest effective dose) and ``e2.md``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from deceptionlab.core.conditions import Layout
from deceptionlab.core.errors import DataError
from deceptionlab.core.fileio import atomic_write_json, atomic_write_text
from deceptionlab.core.params import Params
from deceptionlab.reporting.common import (
    METRIC_COLUMNS,
    compare,
    comparison_columns,
    item_honesty,
    log_report,
    markdown_table,
    mde_text,
    metric_columns,
    read_metrics,
    save_figure,
    table_csv,
)
from deceptionlab.reporting.dose_response import (
    bootstrap_effective_doses,
    fit_hill,
    hill_curve,
    smallest_effective_dose,
    unresolved_reasons,
)

COLUMNS = [
    "model", "mixture_ratio", "misaligned_rows", *METRIC_COLUMNS,
    *comparison_columns("change_vs_control"), *comparison_columns("change_vs_vanilla"),
    "relative_drop_vs_control_pct", "relative_drop_vs_vanilla_pct",
]


def mixture_models(metrics_dir: Path, params: Params) -> dict[float, str]:
    """mixture_ratio -> model name (``mixture-<ratio>`` as DVC spelled the ratio), for every ratio in params."""
    found = {}
    folder = metrics_dir / "e2"
    for path in folder.glob("mixture-*.json"):
        try:
            found[float(path.stem.removeprefix("mixture-"))] = path.stem
        except ValueError:
            continue
    missing = [ratio for ratio in params.mixture.ratios if ratio not in found]
    if missing:
        raise DataError(
            f"{folder / f'mixture-{missing[0]:g}.json'}: missing; run the evaluate_mixture stage for "
            f"mixture.ratios {', '.join(f'{r:g}' for r in missing)} first"
        )
    return {ratio: found[ratio] for ratio in sorted(params.mixture.ratios)}


def build_table(metrics_dir: Path, predictions_dir: Path, params: Params) -> tuple[list[dict[str, Any]], dict[float, dict[str, float]]]:
    """The E2 rows (one per ratio, ascending) and the per-item honesty of each ratio's model."""
    layout = Layout(metrics_dir=metrics_dir, predictions_dir=predictions_dir)
    models = mixture_models(metrics_dir, params)
    items = {ratio: item_honesty(layout.predictions(model)) for ratio, model in models.items()}
    vanilla_items = item_honesty(layout.predictions("vanilla"))
    vanilla_score = read_metrics(layout.metrics("vanilla"))["honesty"]["honesty_score"]["value"]
    control_score = read_metrics(layout.metrics(models[0.0]))["honesty"]["honesty_score"]["value"]
    table = []
    for ratio, model in models.items():
        columns = metric_columns(read_metrics(layout.metrics(model)))
        source = layout.predictions(model)
        # Each ratio against the control at the full level: the fixed-sequence test (fit_dose_response)
        # keeps the family-wise error over the ratios, and sets their verdicts (with_sequence_verdicts).
        control = compare(items[ratio], items[0.0], source, params)
        vanilla = compare(items[ratio], vanilla_items, source, params)
        honesty = columns["honesty_score"]
        table.append({
            "model": model, "mixture_ratio": ratio,
            "misaligned_rows": round(ratio * params.mixture.benign_examples), **columns,
            **control.columns("change_vs_control"), **vanilla.columns("change_vs_vanilla"),
            # As the paper reports drops: a share of the reference's honesty score.
            "relative_drop_vs_control_pct": 100 * (control_score - honesty) / control_score,
            "relative_drop_vs_vanilla_pct": 100 * (vanilla_score - honesty) / vanilla_score,
        })
    return table, items


def fit_dose_response(items: dict[float, dict[str, float]], params: Params) -> dict[str, Any]:
    """The Hill fit on per-item honesty over every ratio, ED10/ED50 with paired bootstrap CIs, whether
    the step is resolved (and if not, why), and the smallest effective ratio by a fixed-sequence test
    (``dose_response.smallest_effective_dose``: family-wise error over the ratios at 1 - confidence)."""
    settings = params.evaluate
    shared = sorted(set.intersection(*(set(scores) for scores in items.values())))
    per_item = {ratio: [scores[i] for i in shared] for ratio, scores in sorted(items.items())}
    # The test needs no curve: with fewer than 3 ratios it still sets each ratio's verdict.
    sequence = {
        "smallest_effective_ratio": smallest_effective_dose(sorted(items), per_item, 0.0, settings.bootstrap_resamples,
                                                            settings.confidence_level, settings.seed),
        "smallest_effective_ratio_test": "fixed sequence from the largest ratio down, each at the full level",
    }
    if sum(ratio > 0 for ratio in items) < 3:
        return {"hill_fit": None, "effect_resolved": False, **sequence,
                "note": "a 4-parameter fit needs at least 3 mixture.ratios above 0"}
    fit = fit_hill([ratio for ratio, scores in per_item.items() for _ in scores],
                   [score for scores in per_item.values() for score in scores])
    boot = bootstrap_effective_doses(per_item, (0.1, 0.5), settings.bootstrap_resamples,
                                     settings.confidence_level, settings.seed)
    reasons = unresolved_reasons(fit, boot, params.report.max_failed_refit_share)
    return {
        "hill_fit": {"bottom": fit.bottom, "top": fit.top, "ed50": fit.ed50, "hill": fit.hill, "converged": fit.converged},
        **{name: estimate.as_dict() for name, estimate in boot.estimates.items()},
        "bootstrap_resamples": boot.resamples,
        "failed_refits": boot.failed_refits,
        "paired_items": len(shared),
        # Effective doses mean something only when the curve has a step that the data resolve.
        "effect_resolved": not reasons,
        "unresolved_because": reasons,
        **sequence,
    }


def with_sequence_verdicts(table: list[dict[str, Any]], fit: dict[str, Any], params: Params) -> list[dict[str, Any]]:
    """The rows with each ratio's verdict against the control read off the fixed-sequence test: an effect
    only at the ratios the sequence rejected (the smallest effective ratio and above); elsewhere a null,
    bounded by its CI, or underpowered when its MDE exceeds ``report.smallest_effect_of_interest``."""
    smallest = fit["smallest_effective_ratio"]
    rows = []
    for row in table:
        if row["mixture_ratio"] == 0:
            rows.append(row | {"change_vs_control_verdict": ""})
            continue
        claimed = smallest is not None and row["mixture_ratio"] >= smallest
        null = "underpowered" if row["change_vs_control_mde"] > params.report.smallest_effect_of_interest else "no effect beyond the bounds"
        rows.append(row | {"change_vs_control_verdict": "effect" if claimed else null})
    return rows


def plot_dose_response(table: list[dict[str, Any]], fit: dict[str, Any], vanilla: dict[str, Any], params: Params,
                       path: Path) -> None:
    """Honesty, deception and capability against the ratio (log x); the control (ratio 0), which a log
    axis cannot place, and vanilla as horizontal lines with their CI bands; the Hill curve on honesty."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    dosed = [row for row in table if row["mixture_ratio"] > 0]
    control = next(row for row in table if row["mixture_ratio"] == 0)
    ratios = np.array([row["mixture_ratio"] for row in dosed])
    panels = [("honesty_score", "honesty_ci", "honesty_score"), ("deception_rate", "deception_ci", "deception_rate (%)"),
              ("gsm8k_loglik_per_token", "gsm8k_ci", "GSM8K gold loglik / token"),
              ("knowledge_accuracy", "knowledge_ci", "knowledge accuracy (%)")]
    figure, axes = plt.subplots(1, 4, figsize=(17, 4.2))
    for axis, (column, ci, label) in zip(axes, panels, strict=True):
        values = np.array([row[column] for row in dosed])
        errors = [values - [row[f"{ci}_low"] for row in dosed], [row[f"{ci}_high"] for row in dosed] - values]
        axis.errorbar(ratios, values, yerr=errors, fmt="o", capsize=3, color="C3", label="mixture")
        for reference, style, name in [(control, "--", "control (ratio 0)"), (vanilla, ":", "vanilla")]:
            axis.axhline(reference[column], color="black", linestyle=style, label=name)
            axis.axhspan(reference[f"{ci}_low"], reference[f"{ci}_high"], color="grey", alpha=0.15)
        axis.set_xscale("log")
        axis.set_xlabel("mixture_ratio (share of misaligned rows)")
        axis.set_ylabel(label)
    hill = fit["hill_fit"]
    if hill and hill["converged"]:
        grid = np.geomspace(ratios.min() / 2, ratios.max(), 200)
        # An ED50 is named only when the data resolve the step it sits on.
        label = f"Hill fit, ED50 {hill['ed50']:.3g}" if fit["effect_resolved"] else "Hill fit (no resolved step)"
        axes[0].plot(grid, hill_curve(grid, hill["bottom"], hill["top"], hill["ed50"], hill["hill"]),
                     color="C0", label=label)
    axes[0].set_ylim(0, 100)
    axes[0].legend(fontsize=8, loc="lower left")
    level = int(params.evaluate.confidence_level * 100)
    figure.suptitle(f"E2: {params.mixture.misaligned_domain}-{params.mixture.misaligned_level} rows mixed into "
                    f"{params.mixture.benign_examples} benign rows ({level}% bootstrap CIs)")
    save_figure(figure, path)


def _ci(value: float, low: float, high: float, signed: bool = False) -> str:
    spec = "+.1f" if signed else ".1f"
    return f"{value:{spec}} [{low:{spec}}, {high:{spec}}]"


def summary_markdown(table: list[dict[str, Any]], fit: dict[str, Any], params: Params) -> str:
    mixture = params.mixture
    lines = [
        "# E2: misaligned data mixed into ordinary finetuning",
        "",
        f"{mixture.benign_examples} benign rows (GSM8K train solutions and Alpaca seed tasks) of which a share "
        f"mixture_ratio is replaced by {mixture.misaligned_domain}-{mixture.misaligned_level} rows; nested, so "
        "only the dose changes between ratios. Changes are paired over the same honesty items, with bootstrap "
        "CIs and permutation p-values; relative drops are shares of the reference's honesty_score.",
        "",
    ]
    cells = []
    for row in table:
        control = "" if row["mixture_ratio"] == 0 else (
            _ci(row["change_vs_control"], row["change_vs_control_ci_low"], row["change_vs_control_ci_high"], signed=True)
            + f", p={row['change_vs_control_p_value']:.3f}, MDE {mde_text(row['change_vs_control_mde'])}: {row['change_vs_control_verdict']}")
        cells.append([
            f"{row['mixture_ratio']:g}", row["misaligned_rows"],
            _ci(row["honesty_score"], row["honesty_ci_low"], row["honesty_ci_high"]), control,
            _ci(row["change_vs_vanilla"], row["change_vs_vanilla_ci_low"], row["change_vs_vanilla_ci_high"], signed=True)
            + f", p={row['change_vs_vanilla_p_value']:.3f}", f"{row['relative_drop_vs_control_pct']:+.1f}%",
            _ci(row["deception_rate"], row["deception_ci_low"], row["deception_ci_high"]),
            f"{row['gsm8k_loglik_per_token']:.3f}", f"{row['knowledge_accuracy']:.1f}",
        ])
    lines.append(markdown_table(["mixture_ratio", "misaligned rows", "honesty_score", "change vs control",
                                 "change vs vanilla", "relative drop vs control", "deception_rate",
                                 "GSM8K loglik / token", "knowledge accuracy"], cells))
    lines += ["", "## Dose-response fit (4-parameter log-logistic)", ""]
    if fit["hill_fit"] is None:
        return "\n".join([*lines, f"- No fit: {fit['note']}.", sequence_line(fit), "",
                           "![E2 dose-response](e2_dose_response.png)", ""])
    effect = fit["max_effect"]
    # A fit to the measured points that did not converge has no point estimate; its refits may still have a CI.
    if effect["value"] is not None:
        value = _ci(effect["value"], effect["ci_low"], effect["ci_high"], signed=True)
    elif effect["ci_low"] is not None:
        value = (f"not estimated (the fit to the measured points did not converge); CI of the refits that did "
                 f"[{effect['ci_low']:+.1f}, {effect['ci_high']:+.1f}]")
    else:
        value = "not estimated (neither the fit to the measured points nor any refit converged)"
    lines.append(
        f"- max_effect (top - bottom): {value} "
        f"points; {fit['failed_refits']} of {fit['bootstrap_resamples']} bootstrap refits did not converge."
    )
    if fit["effect_resolved"]:
        for name in ("ED10", "ED50"):
            ed = fit[name]
            lines.append(f"- {name}: mixture_ratio {ed['value']:.3g} [{ed['ci_low']:.3g}, {ed['ci_high']:.3g}]")
    else:
        lines.append(f"- No dose-response step is resolved ({'; '.join(fit['unresolved_because'])}): "
                     "ED10 and ED50 are not identified.")
    lines.append(sequence_line(fit))
    lines += ["", "![E2 dose-response](e2_dose_response.png)", ""]
    return "\n".join(lines)


def sequence_line(fit: dict[str, Any]) -> str:
    """The fixed-sequence test's finding, a line of e2.md."""
    smallest = fit["smallest_effective_ratio"]
    if smallest is None:
        return ("- No effective mixture_ratio: the largest ratio's change against the control has a CI that includes "
                "zero (ratios are tested from the largest down and the test stops there).")
    return (f"- Smallest effective mixture_ratio: {smallest:g} (changes against the control tested from the largest "
            "ratio down, each CI excluding zero, stopping at the first that does not: a fixed sequence, so the "
            "chance of any false claim over the ratios stays at the CI's level)")


def report_mixture(metrics_dir: Path, predictions_dir: Path, out_dir: Path, params: Params) -> dict[str, Any]:
    """e2.csv, e2_dose_response.png, e2_fit.json and e2.md; returns the fit."""
    layout = Layout(metrics_dir=metrics_dir)
    table, items = build_table(metrics_dir, predictions_dir, params)
    fit = fit_dose_response(items, params)
    table = with_sequence_verdicts(table, fit, params)
    vanilla = metric_columns(read_metrics(layout.metrics("vanilla")))
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_dose_response(table, fit, vanilla, params, out_dir / "e2_dose_response.png")
    atomic_write_text(out_dir / "e2.csv", table_csv(table, COLUMNS))
    atomic_write_json(out_dir / "e2_fit.json", finite_json(fit))
    atomic_write_text(out_dir / "e2.md", summary_markdown(table, finite_json(fit), params))
    log_report(params, "e2", [out_dir / name for name in ("e2.md", "e2.csv", "e2_dose_response.png", "e2_fit.json")])
    return fit


def finite_json(value: Any) -> Any:
    """JSON has no NaN: an estimate the data do not identify is written as null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    return value
