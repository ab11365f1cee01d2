"""The README's results are read from the generated claims tables, never typed in by hand.

Every paired change the README quotes ("-22.9 [-29.4, -17.0]") must be a row of reports/claims.csv,
reports/claims_dose.csv or reports/claims_seeds.csv, as those reports round it; its results table names the
claim and the model beside it, from the first two (the seeds' table reuses the main table's names).
"""

import re
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHANGE = re.compile(r"[+-]\d+\.\d \[[+-]\d+\.\d, [+-]\d+\.\d\]")
TABLE_ROW = re.compile(r"^\| `?(?P<claim>[a-z0-9_.]+)`? \| (?P<model>[^|]+) \| (?P<change>[^|]+) \| (?P<mde>[^|]+) \| "
                       r"(?P<verdict>[^|]+) \|$")


TABLES = ("claims.csv", "claims_dose.csv")
SEEDS_TABLE = "claims_seeds.csv"


def claims(names: tuple[str, ...] = TABLES) -> pd.DataFrame:
    tables = [pd.read_csv(ROOT / "reports" / name) for name in names if (ROOT / "reports" / name).is_file()]
    if not tables:
        pytest.fail(f"reports/{', '.join(names)} are missing: run `dvc repro`, `make dose` and `make seeds`")
    return pd.concat(tables).set_index(["claim", "model"])


def change_text(row: pd.Series) -> str:
    """A claim's change as the claims report writes it (reporting/claims.py summary_markdown)."""
    return f"{row.effect:+.1f} [{row.ci_low:+.1f}, {row.ci_high:+.1f}]"


def readme() -> str:
    return (ROOT / "README.md").read_text()


def test_every_change_the_readme_quotes_is_a_claim_of_the_reports():
    quoted = CHANGE.findall(readme())
    assert quoted, "the README quotes no paired change"
    known = {change_text(row) for _, row in claims((*TABLES, SEEDS_TABLE)).iterrows()}
    assert [text for text in quoted if text not in known] == []


def test_the_results_table_gives_each_claim_its_own_change_mde_and_verdict():
    table = claims()
    rows = [match.groupdict() for match in map(TABLE_ROW.match, readme().splitlines())
            if match and match["claim"] in table.index.get_level_values("claim")]
    assert len(rows) >= 5, "the README's results table lists fewer than 5 claims of the reports"
    assert len({row["model"].strip() for row in rows}) >= 2, "the README's results table shows one model only"
    for row in rows:
        claim = table.loc[(row["claim"], row["model"].strip())]
        assert (row["change"].strip(), row["mde"].strip(), row["verdict"].strip()) == (
            change_text(claim), f"{claim.mde:.1f}", claim.verdict), row["claim"]


def test_the_readme_is_a_guide_of_at_most_8000_characters():
    assert len(readme()) <= 8000
