"""The training seeds in the report: every condition of ``seeds.*`` pooled over its training seeds, and
the main reports' comparisons restated with the seeds.

Seed 0 of a condition is the main pipeline's run (``metrics/e1``, ``metrics/controls``, ``metrics/e2``
and their predictions); seed k of ``seeds.extra`` is its rerun with ``finetune.seed + k``
(``metrics/seeds``). The comparisons are the main reports', decided before the runs, each set a family
(Bonferroni CIs, Holm p-values, MDEs and verdicts as ``reporting.common.as_family`` gives them):

- the controls against vanilla, and the E1 conditions against vanilla (two families);
- each domain's misalignment effect, its misaligned level minus its normal level (a family), seed k
  against seed k: both trained with the same seed, so with the same LoRA initialization and data seed
  on the same questions;
- E2's ``seeds.ratio`` against its control (``mixture-0``), seed k against seed k: one test at the full
  level, as the fixed sequence of reports/e2.md begins with its highest ratio.

How a CI covers seeds and items: a two-level bootstrap, not a mixed model. Every seed is scored on the
same items, so seeds and items are crossed; each resample draws the seeds with replacement and,
independently, the items with replacement, and takes the mean of the per-(seed, item) values over that
grid (``core.stats.crossed_bootstrap_mean``, scipy.stats.bootstrap over the two index sets). Chosen over
statsmodels' MixedLM with crossed random effects of seed and item because the outcome is 0 or 100 per
item, far from the normal errors a linear mixed model assumes, and a seed variance estimated from three
values often sits at its bound of zero, where MixedLM warns of a singular covariance or fails to
converge; the bootstrap assumes neither, is the percentile bootstrap over items that every other CI
of the project is (which it becomes when the seeds agree), and gives the p-value (the CI inverted,
``core.stats.bootstrap_pvalue``) and the MDE (the paired t-test's at the bootstrap's standard error,
``core.stats.minimum_detectable_effect_of``) from the same distribution. Its seed level is coarse with
three seeds (ten distinct draws of them; one seed drawn three times in 1 of 27 resamples, so a family
CI reaches about from the lowest seed's value to the highest's, and an effect is called only when every
seed shows it), so the between-seed SD of honesty_score and of every effect stands beside each CI.

Outputs: ``seeds.csv`` (one row per condition: honesty per seed and pooled, the change against its
reference), ``seeds_misalignment.csv``, ``seeds_honesty.png``, ``seeds.md``, and the claims
``claims_seeds.csv`` and ``.md`` (``reporting.claims.SEEDS_SOURCES``: the main table's names).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deceptionlab.core.conditions import ALIGNED_LEVEL, VANILLA, Condition, Layout
from deceptionlab.core.params import Params
from deceptionlab.core.stats import (
    bootstrap_pvalue,
    crossed_bootstrap_mean,
    family_confidence,
    minimum_detectable_effect_of,
)
from deceptionlab.reporting.claims import SEEDS_SOURCES, write_pipeline_report
from deceptionlab.reporting.common import (
    Comparison,
    Test,
    as_family,
    change_cell,
    comparison_columns,
    item_honesty,
    markdown_table,
    metric_columns,
    paired_items,
    read_metrics,
    reading,
    save_figure,
)

COLUMNS = ["model", "experiment", "domain", "level", "control", "mixture_ratio", "reference", "seeds", "n_seeds",
           "honesty_score", "honesty_ci_low", "honesty_ci_high", "honesty_seed_sd", "honesty_by_seed",
           *comparison_columns("change"), "change_seed_sd", "change_by_seed"]
MISALIGNMENT_COLUMNS = ["model", "reference", "domain", "level", "seeds", "n_seeds", *comparison_columns("misalignment_effect"),
                        "misalignment_effect_seed_sd", "misalignment_effect_by_seed"]
FAMILIES = {"controls": "the controls against vanilla", "e1": "the E1 conditions against vanilla",
            "e2": "E2's ratio against its control", "misalignment": "each misaligned level minus its domain's normal level"}


def seed_indices(params: Params) -> list[int]:
    """0 (the main pipeline's run) and ``seeds.extra``."""
    return [0, *params.seeds.extra]


def seed_model(condition: Condition, seed_index: int) -> str:
    """The model of a condition's seed: the condition itself for seed 0, else its seeded rerun."""
    return condition.name if seed_index == 0 else Condition.seeded(condition, seed_index).name


def read_seeds(layout: Layout, params: Params) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, dict[str, Any]]]:
    """Vanilla's per-item honesty; per condition of ``seeds.*``, its per-item honesty, one row per seed
    (``seed_indices``), items in vanilla's order; and every model's metrics (metric_columns). A DataError
    naming the file for one missing, or scored on other items than vanilla."""
    vanilla_items = item_honesty(layout.predictions(VANILLA))
    vanilla = np.array([vanilla_items[item] for item in sorted(vanilla_items)])  # paired_items' order
    honesty, metrics = {}, {VANILLA: metric_columns(read_metrics(layout.metrics(VANILLA)))}
    for condition in params.seeded_conditions():
        rows = []
        for seed_index in seed_indices(params):
            model = seed_model(condition, seed_index)
            source = layout.predictions(model)
            rows.append(paired_items(item_honesty(source), vanilla_items, source)[0])
            metrics[model] = metric_columns(read_metrics(layout.metrics(model)))
        honesty[condition.name] = np.vstack(rows)
    return vanilla, honesty, metrics


def compare_seeded_family(differences: dict[Any, np.ndarray], params: Params) -> dict[Any, Comparison]:
    """Each seeds x items array of paired differences as one comparison of a family: its mean with
    two-level bootstrap CIs (nominal and family level), the p-value and MDE from the same bootstrap."""
    if not differences:
        return {}
    settings = params.evaluate
    confidence = family_confidence(settings.confidence_level, len(differences))
    tests = {}
    for name, values in differences.items():
        change, _ = crossed_bootstrap_mean(values, settings.bootstrap_resamples, settings.confidence_level, settings.seed)
        family_change, distribution = crossed_bootstrap_mean(values, settings.bootstrap_resamples, confidence, settings.seed)
        mde = minimum_detectable_effect_of(float(np.std(distribution, ddof=1)), values.shape[1], 1 - confidence, params.report.power)
        tests[name] = Test(change=change, family_change=family_change, p_value=bootstrap_pvalue(distribution), mde=mde,
                           n_items=values.shape[1])
    return as_family(tests, params)


def by_seed(values: np.ndarray) -> dict[str, Any]:
    """A seeds x items array's per-seed means (one cell, in seed order) and their SD (ddof 1)."""
    means = values.mean(axis=1)
    return {"seed_sd": float(means.std(ddof=1)), "by_seed": " ".join(f"{mean:.2f}" for mean in means)}


def seeded_columns(prefix: str, values: np.ndarray, comparison: Comparison) -> dict[str, Any]:
    """A comparison's columns (Comparison.columns) and its per-seed effects and their SD beside them."""
    spread = by_seed(values)
    return {**comparison.columns(prefix), f"{prefix}_seed_sd": spread["seed_sd"], f"{prefix}_by_seed": spread["by_seed"]}


def reference_of(condition: Condition) -> str | None:
    """What a condition of ``seeds.*`` is compared with: vanilla, or for an E2 ratio its control (none for the control)."""
    if condition.experiment != "e2":
        return VANILLA
    return Condition.mixture(0.0).name if condition.ratio > 0 else None


def misalignment_pairs(params: Params) -> list[tuple[Condition, Condition]]:
    """(misaligned E1 condition, its domain's normal level) for each whose normal level is seeded too."""
    names = {condition.name for condition in params.seeded_conditions()}
    return [(condition, Condition.e1(condition.domain, ALIGNED_LEVEL)) for condition in params.seeded_conditions()
            if condition.experiment == "e1" and condition.level != ALIGNED_LEVEL
            and f"{condition.domain}-{ALIGNED_LEVEL}" in names]


def build_tables(vanilla: np.ndarray, honesty: dict[str, np.ndarray], params: Params) -> tuple[list[dict], list[dict]]:
    """seeds.csv's rows (one per condition of seeds.*) and seeds_misalignment.csv's."""
    settings = params.evaluate
    conditions = params.seeded_conditions()
    references = {condition.name: reference_of(condition) for condition in conditions}
    differences = {name: honesty[name] - (vanilla if reference == VANILLA else honesty[reference])
                   for name, reference in references.items() if reference}
    comparisons: dict[str, Comparison] = {}
    for experiment in ("controls", "e1", "e2"):  # one family each
        comparisons |= compare_seeded_family({condition.name: differences[condition.name] for condition in conditions
                                              if condition.experiment == experiment and condition.name in differences}, params)
    seeds = " ".join(map(str, seed_indices(params)))
    table = []
    for condition in conditions:
        values = honesty[condition.name]
        pooled = crossed_bootstrap_mean(values, settings.bootstrap_resamples, settings.confidence_level, settings.seed)[0]
        spread = by_seed(values)
        row = {"model": condition.name, "experiment": condition.experiment, "domain": condition.domain, "level": condition.level,
               "control": condition.control, "mixture_ratio": condition.ratio, "reference": references[condition.name],
               "seeds": seeds, "n_seeds": values.shape[0], "honesty_score": pooled.value, "honesty_ci_low": pooled.low,
               "honesty_ci_high": pooled.high, "honesty_seed_sd": spread["seed_sd"], "honesty_by_seed": spread["by_seed"]}
        if condition.name in comparisons:
            row |= seeded_columns("change", differences[condition.name], comparisons[condition.name])
        table.append(row)
    pairs = misalignment_pairs(params)
    effects = {model.name: honesty[model.name] - honesty[reference.name] for model, reference in pairs}
    misaligned = compare_seeded_family(effects, params)
    misalignment = [{"model": model.name, "reference": reference.name, "domain": model.domain, "level": model.level,
                     "seeds": seeds, "n_seeds": len(seed_indices(params)),
                     **seeded_columns("misalignment_effect", effects[model.name], misaligned[model.name])}
                    for model, reference in pairs]
    return table, misalignment


def plot_seeds(table: list[dict[str, Any]], metrics: dict[str, dict[str, Any]], params: Params, path: Path) -> None:
    """honesty_score per condition: each seed's with its CI over items (its metrics), the pooled score with
    the CI over seeds and items, vanilla as a band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    indices = seed_indices(params)
    offsets = np.linspace(-0.25, 0.25, len(indices) + 1)
    figure, axis = plt.subplots(figsize=(max(6.0, 1.1 * len(table)), 4.8))
    for position, (condition, row) in enumerate(zip(params.seeded_conditions(), table, strict=True)):
        for offset, seed_index in zip(offsets[:-1], indices, strict=True):
            figures = metrics[seed_model(condition, seed_index)]
            axis.errorbar(position + offset, figures["honesty_score"], capsize=2, fmt="o", color=f"C{seed_index}",
                          yerr=[[figures["honesty_score"] - figures["honesty_ci_low"]], [figures["honesty_ci_high"] - figures["honesty_score"]]],
                          label=f"seed {seed_index}" if position == 0 else None)
        axis.errorbar(position + offsets[-1], row["honesty_score"], fmt="D", color="black", capsize=3,
                      yerr=[[row["honesty_score"] - row["honesty_ci_low"]], [row["honesty_ci_high"] - row["honesty_score"]]],
                      label="pooled (CI over seeds and items)" if position == 0 else None)
    vanilla = metrics[VANILLA]
    axis.axhline(vanilla["honesty_score"], color="black", linestyle="--", label=VANILLA)
    axis.axhspan(vanilla["honesty_ci_low"], vanilla["honesty_ci_high"], color="grey", alpha=0.2)
    axis.set_xticks(range(len(table)), [row["model"] for row in table], rotation=30, ha="right")
    axis.set_ylabel("honesty_score (100 x (1 - P(lie)))")
    axis.set_ylim(0, 100)
    axis.set_title(f"Training seeds: honesty per seed ({int(params.evaluate.confidence_level * 100)}% CIs over items) and pooled")
    axis.legend(fontsize=8, ncol=2)
    save_figure(figure, path)


def families_note(table: list[dict[str, Any]], misalignment: list[dict[str, Any]], params: Params) -> str:
    """Which comparisons form a family, and the level of each family's CIs."""
    sizes = {experiment: sum(row["experiment"] == experiment and row["reference"] is not None for row in table)
             for experiment in ("controls", "e1", "e2")} | {"misalignment": len(misalignment)}
    parts = [f"{FAMILIES[name]} ({size}, at {family_confidence(params.evaluate.confidence_level, size):.2%})"
             for name, size in sizes.items() if size]
    return (f"Families, each at {params.evaluate.confidence_level:.0%} jointly (Bonferroni) with Holm-adjusted p-values: "
            f"{'; '.join(parts)}. A CI resamples the training seeds and, independently, the items (a two-level bootstrap); "
            "the p-value is that CI inverted, the MDE the smallest change found with "
            f"{params.report.power:.0%} power at the family's alpha and the bootstrap's standard error; a null whose MDE "
            f"exceeds {params.report.smallest_effect_of_interest:g} points is underpowered. With few seeds the seed level "
            "of the bootstrap is coarse: read the between-seed SD beside each CI.")


def summary_markdown(table: list[dict[str, Any]], misalignment: list[dict[str, Any]], vanilla: dict[str, Any],
                     params: Params) -> str:
    seeds = " / ".join(map(str, seed_indices(params)))
    lines = [
        f"# Training seeds: every claim's conditions with {len(seed_indices(params))} training seeds",
        "",
        f"Seed k of a condition trains with finetune.seed + k (finetune.seed = {params.finetune.seed}): the LoRA "
        "initialization and the order of the rows change, nothing else; seed 0 is the main pipeline's run. "
        f"Vanilla (no training, one draw): honesty_score {vanilla['honesty_score']:.1f} [{vanilla['honesty_ci_low']:.1f}, "
        f"{vanilla['honesty_ci_high']:.1f}]. Changes are paired over the same items, and seed k against seed k where both "
        f"sides are trained. {families_note(table, misalignment, params)}",
        "",
        markdown_table(["condition", f"honesty by seed ({seeds})", "pooled [CI]", "between-seed SD", "change vs",
                        "change (family CI)", f"change by seed ({seeds})", "between-seed SD of the change"],
                       [[row["model"], row["honesty_by_seed"],
                         f"{row['honesty_score']:.1f} [{row['honesty_ci_low']:.1f}, {row['honesty_ci_high']:.1f}]",
                         f"{row['honesty_seed_sd']:.1f}", row["reference"] or "",
                         change_cell(row, "change") if row["reference"] else "",
                         row.get("change_by_seed", ""), f"{row['change_seed_sd']:.1f}" if row["reference"] else ""]
                        for row in table]),
        "",
        *[reading(row, "change", f"{row['model']} vs {row['reference']}") for row in table if row["reference"]],
        "",
    ]
    if misalignment:
        lines += [f"## Misalignment effect: each misaligned level minus its domain's `{ALIGNED_LEVEL}` level, seed by seed", "",
                  markdown_table(["model", "minus", "misalignment effect (family CI)", f"by seed ({seeds})", "between-seed SD"],
                                 [[row["model"], row["reference"], change_cell(row, "misalignment_effect"),
                                   row["misalignment_effect_by_seed"], f"{row['misalignment_effect_seed_sd']:.1f}"]
                                  for row in misalignment]),
                  "", *[reading(row, "misalignment_effect", f"{row['model']} minus {row['reference']}") for row in misalignment], ""]
    return "\n".join([*lines, "![Training seeds](seeds_honesty.png)", ""])


def report_seeds(metrics_dir: Path, predictions_dir: Path, out_dir: Path, params: Params) -> list[dict[str, Any]]:
    """seeds.csv, seeds_misalignment.csv, seeds_honesty.png, seeds.md and the claims_seeds files; returns
    seeds.csv's rows. Every input is read before anything is written."""
    vanilla, honesty, metrics = read_seeds(Layout(metrics_dir=metrics_dir, predictions_dir=predictions_dir), params)
    table, misalignment = build_tables(vanilla, honesty, params)
    markdown = summary_markdown(table, misalignment, metrics[VANILLA], params)
    write_pipeline_report("seeds", SEEDS_SOURCES, {"seeds.csv": (table, COLUMNS), "seeds_misalignment.csv": (
        misalignment, MISALIGNMENT_COLUMNS)}, markdown, lambda path: plot_seeds(table, metrics, params, path), out_dir,
        params, "Claims of the training seeds")
    return table
