"""The training dose's report: every step against vanilla, the misalignment effect step by step."""

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_reports import write_model

from conftest import tiny_params
from deceptionlab.core.errors import DataError
from deceptionlab.core.params import load_params
from deceptionlab.reporting.dose import report_dose

VANILLA = [False] * 300 + [True] * 100
STEPS = [2, 4, 8]
# Lies added by each run at each step (of 400 items): severe drifts away from normal as it trains.
ADDED = {"math-normal": [0, 0, 4], "math-severe": [0, 20, 80], "control-lie": [40, 120, 200]}


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = tiny_params(f"sqlite:///{tmp_path}/mlflow.db",
                         dose={"conditions": list(ADDED), "steps": STEPS})
    Path("params.yaml").write_text(yaml.safe_dump(params))
    write_model(tmp_path, "vanilla", VANILLA, -1.0)
    for condition, added in ADDED.items():
        for steps, extra in zip(STEPS, added, strict=True):
            write_model(tmp_path, f"dose-{condition}-step{steps}", [True] * extra + VANILLA[extra:], -1.0)
    capacity = [{"source": "math", "distinct_rows": 7378, "rows_needed": 32, "epochs": 1.0}]
    Path("corpora/dose").mkdir(parents=True)
    Path("corpora/dose/capacity.json").write_text(json.dumps(capacity))
    return tmp_path


def run() -> list:
    return report_dose(Path("metrics"), Path("predictions"), Path("reports"), load_params("params.yaml"))


def test_each_step_is_compared_with_vanilla_and_severe_with_normal_step_by_step(project):
    table = pd.DataFrame(run()).set_index("model")
    assert list(table.index[:3]) == [f"dose-math-normal-step{s}" for s in STEPS]
    lie = table.loc["dose-control-lie-step8"]
    assert lie.change_vs_vanilla == pytest.approx(-50.0) and lie.change_vs_vanilla_verdict == "effect"
    assert lie.rows_trained == 8 * 4  # tiny params: batch 4, no accumulation
    # One family of 9 comparisons against vanilla.
    assert lie.change_vs_vanilla_family_confidence == pytest.approx(1 - 0.05 / 9)
    assert table.loc["dose-math-normal-step2", "change_vs_vanilla_verdict"] != "effect"
    effects = pd.read_csv("reports/dose_misalignment.csv").set_index("steps")
    assert list(effects.index) == STEPS and (effects["reference"].str.startswith("dose-math-normal-step")).all()
    assert effects.loc[8, "misalignment_effect"] == pytest.approx(-19.0)  # (80 - 4) of 400 items
    assert effects.loc[8, "misalignment_effect_verdict"] == "effect"
    assert effects.loc[2, "misalignment_effect_verdict"] != "effect"
    assert effects.loc[2, "misalignment_effect_family_confidence"] == pytest.approx(1 - 0.05 / 3, abs=1e-4)  # CSV: 4 decimals
    markdown = Path("reports/dose.md").read_text()
    assert "dose-math-severe-step8 minus dose-math-normal-step8: -19.0 points" in markdown
    assert "| math | 7378 | 1 |" in markdown and Path("reports/dose_honesty.png").stat().st_size > 10_000


def test_the_dose_claims_are_the_reports_comparisons_one_row_each(project):
    table = pd.DataFrame(run()).set_index("model")
    claims = pd.read_csv("reports/claims_dose.csv").set_index("claim")
    assert list(claims.index) == [*(f"dose_{run}_step{s}_vs_vanilla" for run in ("math_normal", "math_severe", "control_lie")
                                    for s in STEPS), *(f"dose_misalignment_effect_math_severe_step{s}" for s in STEPS)]
    lie = claims.loc["dose_control_lie_step8_vs_vanilla"]
    row = table.loc["dose-control-lie-step8"]
    assert (lie.effect, lie.ci_low, lie.ci_high, lie.mde) == pytest.approx(
        (row.change_vs_vanilla, row.change_vs_vanilla_family_ci_low, row.change_vs_vanilla_family_ci_high,
         row.change_vs_vanilla_mde), abs=1e-4)
    assert lie.verdict == "effect" and lie.reference == "vanilla" and lie.n_items == 400 and lie.n_seeds == 1
    effect = claims.loc["dose_misalignment_effect_math_severe_step8"]
    assert effect.effect == pytest.approx(-19.0) and effect.reference == "dose-math-normal-step8"
    assert claims.loc["dose_misalignment_effect_math_severe_step2", "verdict"] != "effect"
    markdown = Path("reports/claims_dose.md").read_text()
    assert markdown.startswith("# Claims of the training dose") and "| dose_control_lie_step8_vs_vanilla |" in markdown


def test_a_step_not_yet_evaluated_names_its_file_and_writes_nothing(project):
    Path("predictions/dose/dose-math-severe-step4.jsonl").unlink()
    with pytest.raises(DataError, match=r"dose-math-severe-step4\.jsonl: missing"):
        run()
    assert not Path("reports").exists()


def test_a_bad_capacity_file_names_it(project):
    Path("corpora/dose/capacity.json").write_text('[{"source": "math"}]')
    with pytest.raises(DataError, match=r"capacity\.json: row 1"):
        run()
