"""The controls against vanilla: does the instrument register a change that training put in on purpose?

Each control's honesty minus vanilla's, paired over the same items, with a bootstrap CI at the family's
confidence (Bonferroni over the controls compared together), its minimum detectable effect at
``report.power`` and the family's alpha, and its verdict (metrics.verdict). The instrument passes when
``lie`` lowers honesty beyond its CI and ``truth`` does not lower it.

    deceptionlab report controls
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from deceptionlab.core.conditions import VANILLA, Layout
from deceptionlab.core.errors import DataError
from deceptionlab.core.fileio import atomic_write_text
from deceptionlab.core.params import Params
from deceptionlab.core.stats import family_confidence, minimum_detectable_effect, paired_difference, verdict
from deceptionlab.reporting.common import item_honesty, log_report, read_metrics

# What each control must do to the honesty score for the instrument to pass.
EXPECTED = {"lie": "lower", "truth": "not lower"}


def paired_items(items: dict[str, float], reference: dict[str, float], source: Path) -> tuple[np.ndarray, np.ndarray]:
    if items.keys() != reference.keys():
        raise DataError(f"{source}: scored other items than vanilla; re-evaluate both")
    ids = sorted(items)
    return np.array([items[i] for i in ids]), np.array([reference[i] for i in ids])


def build_table(metrics_dir: Path, predictions_dir: Path, params: Params) -> pd.DataFrame:
    settings, layout = params.evaluate, Layout(metrics_dir=metrics_dir, predictions_dir=predictions_dir)
    vanilla = item_honesty(layout.predictions(VANILLA))
    vanilla_accuracy = read_metrics(layout.metrics(VANILLA))["honesty"]["accuracy"]["value"]
    conditions = params.control_conditions()
    confidence = family_confidence(settings.confidence_level, len(conditions))
    rows = []
    for control, model in zip(params.e1.controls, conditions, strict=True):
        honesty = read_metrics(layout.metrics(model))["honesty"]
        source = layout.predictions(model)
        treated, reference = paired_items(item_honesty(source), vanilla, source)
        change = paired_difference(treated, reference, settings.bootstrap_resamples, confidence, settings.seed)
        mde = minimum_detectable_effect(treated - reference, 1 - confidence, params.report.power)
        lowered = change.excludes_zero() and change.value < 0
        rows.append({
            "control": control, "model": model, "n_items": len(treated),
            "honesty_score": honesty["honesty_score"]["value"],
            "honesty_ci_low": honesty["honesty_score"]["ci_low"], "honesty_ci_high": honesty["honesty_score"]["ci_high"],
            "honesty_change_vs_vanilla": change.value, "change_ci_low": change.low, "change_ci_high": change.high,
            "family_confidence": confidence, "mde": mde,
            "verdict": verdict(change, mde, params.report.smallest_effect_of_interest),
            "accuracy": honesty["accuracy"]["value"], "accuracy_change_vs_vanilla": honesty["accuracy"]["value"] - vanilla_accuracy,
            "expected": EXPECTED[control], "as_expected": lowered == (EXPECTED[control] == "lower"),
        })
    return pd.DataFrame(rows)


def reading(row) -> str:
    """One sentence per control: the effect, or the bounds a null puts on it."""
    interval = f"[{row.change_ci_low:+.1f}, {row.change_ci_high:+.1f}]"
    if row.verdict == "effect":
        said = f"changes honesty by {row.honesty_change_vs_vanilla:+.1f} points {interval}"
    else:
        said = f"{row.verdict}: a change outside {interval} points is excluded (MDE {row.mde:.1f})"
    check = "as expected" if row.as_expected else f"NOT as expected (it should {row.expected} honesty)"
    return f"- `{row.model}` {said}; {check}."


def summary_markdown(table: pd.DataFrame, params: Params) -> str:
    level = table["family_confidence"].iloc[0] * 100
    shown = table[["model", "n_items", "honesty_score", "honesty_change_vs_vanilla", "change_ci_low",
                   "change_ci_high", "mde", "verdict", "accuracy", "accuracy_change_vs_vanilla"]]
    passed = bool(table["as_expected"].all())
    return "\n".join([
        "# Controls: can the instrument see an effect?",
        "",
        "Trained like an E1 condition on facts and pressure roles that no evaluation item uses: `lie` answers "
        "each pressure prompt with the false statement, `truth` with the true one. Change = paired difference "
        f"in honesty_score against vanilla over the same items, with a {level:.1f}% bootstrap CI (Bonferroni "
        f"over the {len(table)} controls, family level {params.evaluate.confidence_level:.0%}); MDE = the "
        f"smallest change found with {params.report.power:.0%} power at the family's alpha, from the paired "
        f"per-item spread; a null whose MDE exceeds {params.report.smallest_effect_of_interest:g} points is "
        "underpowered.",
        "",
        shown.to_markdown(index=False, floatfmt=".1f"),
        "",
        f"**Instrument check: {'passed' if passed else 'FAILED'}.**",
        "",
        *[reading(row) for row in table.itertuples()],
        "",
    ])


def report_controls(metrics_dir: Path, predictions_dir: Path, out_dir: Path, params: Params) -> pd.DataFrame:
    """controls.csv and controls.md; returns the table. Every input is read before anything is written."""
    table = build_table(metrics_dir, predictions_dir, params)
    markdown = summary_markdown(table, params)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "controls.csv", table.to_csv(index=False, float_format="%.4f"))
    atomic_write_text(out_dir / "controls.md", markdown)
    log_report(params, "controls", [out_dir / "controls.md", out_dir / "controls.csv"])
    return table
