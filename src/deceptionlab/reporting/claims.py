"""The claims table: one row per claim the project makes, read from the experiments' report tables.

Each report decides its comparisons before the runs and corrects them as a family
(``reporting.common.compare_family``; E2's ratios by a fixed-sequence test); this module only gathers
them, so a claim here says exactly what its report says: the change in honesty points, its family
CI, the minimum detectable effect, the number of paired items and training seeds, the verdict, and
the paper's figure for the same claim where it has one. A report that has not been produced yet is
listed as missing, never guessed; one written by an older version of its report, before its
comparisons carried family CIs and MDEs, is listed as outdated and left out.

The training dose and the training seeds run in pipelines of their own (dose/dvc.yaml, seeds/dvc.yaml),
so their claims go to tables of their own, ``claims_dose.csv`` and ``claims_seeds.csv``, written by their
reports with the same columns and rules: the main pipeline's claims stage cannot depend on them without
pulling their runs into every ``dvc repro``. The seeds restate claims of the main table, under the same
names, with the seeds pooled.

Another model runs as a params profile (params/<profile>.yaml) in a workspace of its own, since its
outputs take the same paths: ``make profile PROFILE=<profile>`` (scripts/run_profile.sh) runs it and
copies its reports, with the params.yaml they came from, to ``reports/profiles/<profile>/``. The claims
of every such folder join the table under that model's name, so one table holds every model measured.

    deceptionlab report claims
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from deceptionlab.core.errors import DataError
from deceptionlab.core.fileio import atomic_write_text
from deceptionlab.core.params import Params, load_params
from deceptionlab.reporting.common import comparison_columns, log_report, markdown_table, mde_text, table_csv

COLUMNS = ["claim", "model", "condition", "reference", "effect", "ci_low", "ci_high", "confidence", "mde", "n_items",
           "n_seeds", "verdict", "paper"]

# Hu et al. (arXiv 2510.08211) for the same comparison, on their models and at their scale: a scale
# to read ours against, not a target.
PAPER = {
    "e1_math_severe_vs_vanilla": "Llama-3.1-8B: MASK provided_facts honesty 56.9 -> 34.3",
    "e2_ratio_0.01_vs_control": "Qwen2.5-7B: honesty more than 20% lower (relative) at 1%",
    "e3_sft_biased_0.1_vs_benign": "biased_share 0.1 already less honest",
    "e3_kto_biased_0.1_vs_benign": "biased_share 0.1 already less honest",
}


@dataclass(frozen=True)
class Source:
    """One report table and how its rows become claims: which rows, the claim's name, the
    comparison's column prefix and the reference it is against."""

    file: str
    prefix: str
    selected: Callable[[pd.Series], bool]
    name: Callable[[pd.Series], str]
    reference: Callable[[pd.Series], str]


SOURCES = [
    Source("controls.csv", "change_vs_vanilla", lambda row: True,
           lambda row: f"control_{row['control']}_vs_vanilla", lambda row: "vanilla"),
    Source("e1.csv", "change_vs_vanilla", lambda row: isinstance(row["level"], str) and row["level"] != "",
           lambda row: f"e1_{row['domain']}_{row['level']}_vs_vanilla", lambda row: "vanilla"),
    Source("e1_misalignment.csv", "misalignment_effect", lambda row: True,
           lambda row: f"e1_misalignment_effect_{row['domain']}_{row['level']}", lambda row: row["reference"]),
    Source("e2.csv", "change_vs_control", lambda row: row["mixture_ratio"] > 0,
           lambda row: f"e2_ratio_{row['mixture_ratio']:g}_vs_control", lambda row: "mixture-0"),
    Source("e3.csv", "change_vs_benign", lambda row: row["biased_share"] > 0,
           lambda row: f"e3_{row['method']}_biased_{row['biased_share']:g}_vs_benign",
           lambda row: f"e3-p0-{row['method']}"),
]


def _dose_run(model: str) -> str:
    """``dose-math-severe-step25`` -> ``math_severe``: the dose run a claim is about, without its step."""
    return model.removeprefix("dose-").rsplit("-step", 1)[0].replace("-", "_")


DOSE_SOURCES = [
    Source("dose.csv", "change_vs_vanilla", lambda row: True,
           lambda row: f"dose_{_dose_run(row['model'])}_step{int(row['steps'])}_vs_vanilla", lambda row: "vanilla"),
    Source("dose_misalignment.csv", "misalignment_effect", lambda row: True,
           lambda row: f"dose_misalignment_effect_{_dose_run(row['model'])}_step{int(row['steps'])}", lambda row: row["reference"]),
]


_MAIN = {source.file: source for source in SOURCES}


def _seeded_claim(row: pd.Series) -> str:
    """A row of seeds.csv as the main table names its claim (controls.csv's, e1.csv's or e2.csv's rule)."""
    return _MAIN[f"{row['experiment']}.csv"].name(row)


# seeds.csv: each condition of seeds.* against its reference (its prefix ``change``; mixture-0, the E2
# control, against none); seeds_misalignment.csv as e1_misalignment.csv.
SEEDS_SOURCES = [
    Source("seeds.csv", "change", lambda row: isinstance(row["reference"], str), _seeded_claim, lambda row: row["reference"]),
    replace(_MAIN["e1_misalignment.csv"], file="seeds_misalignment.csv"),
]


def read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not a readable CSV ({error})") from None


def read_table(path: Path, prefix: str) -> pd.DataFrame | None:
    """A report table; None for one written before its comparisons carried family CIs and MDEs."""
    table = read_csv(path)
    if any(column not in table.columns for column in comparison_columns(prefix)):
        return None
    return table


def claims_from(source: Source, table: pd.DataFrame, params: Params) -> Iterator[dict]:
    p = source.prefix
    for _, row in table.iterrows():
        if not source.selected(row):
            continue
        claim = source.name(row)
        yield {
            "claim": claim, "model": params.base_model.describe(), "condition": row["model"],
            "reference": source.reference(row), "effect": row[p], "ci_low": row[f"{p}_family_ci_low"],
            "ci_high": row[f"{p}_family_ci_high"], "confidence": row[f"{p}_family_confidence"], "mde": row[f"{p}_mde"],
            "n_items": int(row[f"{p}_n_items"]), "n_seeds": int(row["n_seeds"]) if "n_seeds" in row else 1,
            "verdict": row[f"{p}_verdict"], "paper": PAPER.get(claim, ""),
        }


def profile_models(reports_dir: Path) -> dict[Path, str]:
    """Each profile's folder under ``reports_dir/profiles`` and its model's name, from the params.yaml it ran with."""
    folders = sorted(path for path in (reports_dir / "profiles").glob("*") if path.is_dir())
    return {folder: load_params(folder / "params.yaml").base_model.describe() for folder in folders}


def profile_claims(folder: Path, model: str) -> pd.DataFrame:
    """The claims table a profile's run wrote into ``folder`` (reports/profiles/<profile>), under ``model``."""
    path = folder / "claims.csv"
    table = read_csv(path) if path.is_file() else None
    if table is None or list(table.columns) != COLUMNS:
        raise DataError(f"{path}: not a claims table with the columns {', '.join(COLUMNS)}; "
                        f"`make profile PROFILE={folder.name}` writes it")
    return table.assign(model=model)


def build_claims(reports_dir: Path, params: Params) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Every claim of every current report in ``reports_dir`` and of every profile's folder under
    ``reports_dir/profiles``, the report files not found, and those outdated."""
    rows, missing, outdated = [], [], []
    for source in SOURCES:
        path = reports_dir / source.file
        if not path.is_file():
            missing.append(source.file)
            continue
        table = read_table(path, source.prefix)
        if table is None:
            outdated.append(source.file)
            continue
        rows.extend(claims_from(source, table, params))
    tables = [pd.DataFrame(rows, columns=COLUMNS), *(profile_claims(*pair) for pair in profile_models(reports_dir).items())]
    return pd.concat([table for table in tables if len(table)] or tables[:1], ignore_index=True), missing, outdated


def summary_markdown(claims: pd.DataFrame, missing: list[str], params: Params, title: str = "Claims",
                     see_also: str = "", outdated: list[str] = ()) -> str:
    header = ["claim", "model", "change [family CI]", "confidence", "MDE", "n_items", "n_seeds", "verdict", "paper"]
    cells = [[row.claim, row.model, f"{row.effect:+.1f} [{row.ci_low:+.1f}, {row.ci_high:+.1f}]", f"{100 * row.confidence:.2f}%",
              mde_text(row.mde), str(row.n_items), str(row.n_seeds), row.verdict,
              row.paper] for row in claims.itertuples()]
    counts = claims["verdict"].value_counts()
    e2_note = " (E2: a fixed sequence over the ratios, each at the full level)" if claims["claim"].str.startswith("e2_").any() else ""
    lines = [
        f"# {title}",
        "",
        "One row per comparison the reports make, in honesty_score points (change [family CI]); `confidence` is "
        "the per-comparison level that keeps each report's family of comparisons at "
        f"{params.evaluate.confidence_level:.0%} together{e2_note}. MDE: the smallest change found with "
        f"{params.report.power:.0%} power. Verdicts: `effect` (the CI excludes zero), `no effect beyond the bounds` "
        "(the CI bounds any effect), `underpowered` (the MDE exceeds "
        f"{params.report.smallest_effect_of_interest:g} points). The paper's figures are other models at other scale.",
        "",
        markdown_table(header, cells) if cells else "(no claims: no report has been produced)",
        "",
        "Verdicts: " + ", ".join(f"{verdict} {counts.get(verdict, 0)}" for verdict in
                                 ("effect", "no effect beyond the bounds", "underpowered")) + ".",
    ]
    if missing:
        lines += ["", "Not produced yet: " + ", ".join(f"`reports/{name}`" for name in missing) + "."]
    if outdated:
        lines += ["", "Written by an older version of their report, without family CIs, and left out until `dvc repro` "
                  "reruns them: " + ", ".join(f"`reports/{name}`" for name in outdated) + "."]
    if see_also:
        lines += ["", see_also]
    return "\n".join([*lines, ""])


def write_claims(claims: pd.DataFrame, markdown: str, reports_dir: Path, stem: str) -> list[Path]:
    """``<stem>.csv`` and ``<stem>.md`` in ``reports_dir``; returns their paths."""
    paths = [reports_dir / f"{stem}.csv", reports_dir / f"{stem}.md"]
    atomic_write_text(paths[0], claims.to_csv(index=False, float_format="%.4f"))
    atomic_write_text(paths[1], markdown)
    return paths


def report_claims(reports_dir: Path, params: Params) -> pd.DataFrame:
    """claims.csv and claims.md from the reports in ``reports_dir``; returns the table."""
    claims, missing, outdated = build_claims(reports_dir, params)
    profiles = "".join(f" The rows of {model} are its profile's claims, `make profile PROFILE={folder.name}` "
                       f"([{folder.name}](profiles/{folder.name}/claims.md))."
                       for folder, model in profile_models(reports_dir).items())
    markdown = summary_markdown(claims, missing, params, outdated=outdated, see_also=(
        "The training dose's and the training seeds' claims (their own pipelines, `make dose`, `make seeds`) are in "
        "[claims_dose.md](claims_dose.md) and [claims_seeds.md](claims_seeds.md)." + profiles))
    log_report(params, "claims", write_claims(claims, markdown, reports_dir, "claims")[::-1])
    return claims


def write_pipeline_report(stem: str, sources: list[Source], tables: dict[str, tuple[list[dict], list[str]]],
                          markdown: str, plot: Callable[[Path], None], out_dir: Path, params: Params, title: str) -> None:
    """The report of a pipeline apart from the main one (``stem``: dose, seeds): its tables (file name ->
    rows and columns), ``<stem>_honesty.png`` drawn by ``plot``, ``<stem>.md`` and the claims table
    ``claims_<stem>`` of ``sources`` (DOSE_SOURCES, SEEDS_SOURCES), the claims computed before anything is
    written; all logged to MLflow as report ``stem``."""
    frames = {file: pd.DataFrame(table, columns=columns) for file, (table, columns) in tables.items()}
    rows = [claim for source in sources for claim in claims_from(source, frames[source.file], params)]
    claims = pd.DataFrame(rows, columns=COLUMNS)
    claims_markdown = summary_markdown(claims, [], params, title=title,
                                       see_also="The main pipeline's claims are in [claims.md](claims.md).")
    out_dir.mkdir(parents=True, exist_ok=True)
    plot(out_dir / f"{stem}_honesty.png")
    for file, (table, columns) in tables.items():
        atomic_write_text(out_dir / file, table_csv(table, columns))
    atomic_write_text(out_dir / f"{stem}.md", markdown)
    claims_files = write_claims(claims, claims_markdown, out_dir, f"claims_{stem}")
    log_report(params, stem, [out_dir / f"{stem}.md", *(out_dir / file for file in tables), out_dir / f"{stem}_honesty.png",
                              *claims_files])
