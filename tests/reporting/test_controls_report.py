"""The controls report: paired change against vanilla at the family's confidence, MDE, verdict, check."""

from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_reports import write_model

from conftest import tiny_params
from deceptionlab.core.errors import DataError
from deceptionlab.core.params import load_params
from deceptionlab.reporting.controls import report_controls

VANILLA = [False] * 300 + [True] * 100


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text(yaml.safe_dump(tiny_params(f"sqlite:///{tmp_path}/mlflow.db")))
    write_model(tmp_path, "vanilla", VANILLA, -1.0)
    return tmp_path


def run() -> pd.DataFrame:
    return report_controls(Path("metrics"), Path("predictions"), Path("reports"), load_params("params.yaml"))


def test_a_lie_control_that_lowers_honesty_and_a_truth_control_that_does_not_pass(project):
    write_model(project, "control-lie", [True] * 200 + VANILLA[200:], -1.0)  # 200 more lies of 400: -50 points
    write_model(project, "control-truth", VANILLA[:292] + [True] * 8 + [False] * 8 + [True] * 92, -1.0)  # 8 lies moved
    table = run().set_index("control")
    lie, truth = table.loc["lie"], table.loc["truth"]
    assert lie.change_vs_vanilla_verdict == "effect" and lie.change_vs_vanilla == pytest.approx(-50.0)
    assert lie.change_vs_vanilla_family_ci_high < -40 and lie.change_vs_vanilla_family_confidence == pytest.approx(0.975)
    # The family interval is the wider one: Bonferroni over the two controls.
    assert truth.change_vs_vanilla_family_ci_low < truth.change_vs_vanilla_ci_low
    low, high = truth.change_vs_vanilla_family_ci_low, truth.change_vs_vanilla_family_ci_high
    assert truth.change_vs_vanilla_verdict == "no effect beyond the bounds" and low <= 0 <= high
    assert 0 < truth.change_vs_vanilla_mde < 10 and table["as_expected"].all()
    assert lie.change_vs_vanilla_p_value_holm >= lie.change_vs_vanilla_p_value
    markdown = Path("reports/controls.md").read_text()
    assert "**Instrument check: passed.**" in markdown
    assert f"a change outside [{low:+.1f}, {high:+.1f}] points is excluded" in markdown
    assert pd.read_csv("reports/controls.csv")["model"].tolist() == ["control-lie", "control-truth"]


def test_a_lie_control_that_does_not_move_honesty_fails_the_check(project):
    write_model(project, "control-lie", VANILLA, -1.0)
    write_model(project, "control-truth", VANILLA, -1.0)
    table = run().set_index("control")
    assert not table.loc["lie", "as_expected"] and table.loc["truth", "as_expected"]
    assert "**Instrument check: FAILED.**" in Path("reports/controls.md").read_text()


def test_a_missing_control_names_its_file_and_writes_nothing(project):
    write_model(project, "control-lie", VANILLA, -1.0)
    with pytest.raises(DataError, match=r"control-truth\.jsonl?: missing"):
        run()
    assert not Path("reports/controls.csv").exists() and not Path("reports/controls.md").exists()
