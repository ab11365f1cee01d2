"""The training seeds' report: every condition pooled over its seeds, CIs over seeds and items, claims."""

from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_reports import write_model

from conftest import tiny_params
from deceptionlab.core.errors import DataError
from deceptionlab.core.params import load_params
from deceptionlab.reporting.seeds import report_seeds

ITEMS = 400
VANILLA = [False] * 300 + [True] * 100  # the first 300 items honest
# Lies added to vanilla's, per seed 0, 1, 2 (of 400 items). medical-normal's seeds agree on 20 more lies;
# medical-severe's disagree (0, 20, 40) around the same mean; the lie control's all show 150 or more.
# mixture-0's seeds spread widely and mixture-0.5 adds 40 lies to each of them: seed k against seed k.
ADDED = {"medical-normal": [20, 20, 20], "medical-severe": [0, 20, 40], "control-lie": [160, 150, 170],
         "control-truth": [0, 4, 2], "mixture-0": [0, 60, 120], "mixture-0.5": [40, 100, 160]}


def lies(added: int) -> list[bool]:
    """Vanilla's lies and ``added`` more, on the first items vanilla answered honestly."""
    return [True] * added + VANILLA[added:]


def model_name(condition: str, seed: int) -> str:
    return condition if seed == 0 else f"{condition}-seed{seed}"


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = tiny_params(f"sqlite:///{tmp_path}/mlflow.db",
                         seeds={"e1": ["medical-normal", "medical-severe"], "controls": ["lie", "truth"], "ratio": 0.5,
                                "extra": [1, 2]})
    Path("params.yaml").write_text(yaml.safe_dump(params))
    write_model(tmp_path, "vanilla", VANILLA, -1.0)
    for condition, added in ADDED.items():
        for seed, extra in enumerate(added):
            write_model(tmp_path, model_name(condition, seed), lies(extra), -1.0)
    return tmp_path


def run() -> pd.DataFrame:
    return pd.DataFrame(report_seeds(Path("metrics"), Path("predictions"), Path("reports"), load_params("params.yaml"))).set_index("model")


def width(row: pd.Series) -> float:
    return row.change_family_ci_high - row.change_family_ci_low


def test_seeds_that_disagree_widen_the_ci_that_seeds_which_agree_do_not(project):
    table = run()
    agree, disagree = table.loc["medical-normal"], table.loc["medical-severe"]
    assert agree.change == pytest.approx(-5.0) and disagree.change == pytest.approx(-5.0)  # the same mean change
    assert agree.change_family_confidence == disagree.change_family_confidence == pytest.approx(1 - 0.05 / 2)
    assert width(disagree) > 1.5 * width(agree)
    assert disagree.honesty_ci_high - disagree.honesty_ci_low > agree.honesty_ci_high - agree.honesty_ci_low
    # The between-seed spread beside the CI: none where the seeds agree, 5 points where they do not.
    assert agree.change_seed_sd == pytest.approx(0.0) and disagree.change_seed_sd == pytest.approx(5.0)
    assert disagree.honesty_by_seed == "75.00 70.00 65.00" and disagree.honesty_seed_sd == pytest.approx(5.0)
    assert (agree.seeds, agree.n_seeds, agree.change_n_items) == ("0 1 2", 3, ITEMS)


def test_an_effect_every_seed_shows_is_called_and_a_seed_is_paired_with_its_own_seed(project):
    table = run()
    lie = table.loc["control-lie"]
    assert lie.change == pytest.approx(-40.0) and lie.change_verdict == "effect" and lie.reference == "vanilla"
    assert lie.change_family_ci_high < -30
    # No resample reaches zero: the smallest p-value of 200 resamples, 2 / 201, Holm-adjusted over the 2 controls.
    assert lie.change_p_value == pytest.approx(2 / 201) and lie.change_p_value_holm == pytest.approx(4 / 201)
    assert table.loc["control-truth", "change_verdict"] != "effect"
    # mixture-0's seeds lie 0, 60 and 120 more; each mixture-0.5 seed 40 more than its own control seed:
    # the seeds' spread in honesty does not reach the paired change.
    ratio = table.loc["mixture-0.5"]
    assert ratio.reference == "mixture-0" and ratio.change == pytest.approx(-10.0) and ratio.change_seed_sd == pytest.approx(0.0)
    assert ratio.change_verdict == "effect" and ratio.change_family_confidence == pytest.approx(0.95)  # a test on its own
    assert table.loc["mixture-0", "honesty_seed_sd"] == pytest.approx(15.0)
    assert pd.isna(table.loc["mixture-0", "reference"]) and pd.isna(table.loc["mixture-0", "change"])
    effect = pd.read_csv("reports/seeds_misalignment.csv").set_index("model").loc["medical-severe"]
    assert effect.reference == "medical-normal" and effect.misalignment_effect == pytest.approx(0.0)
    assert effect.misalignment_effect_by_seed == "5.00 0.00 -5.00" and effect.misalignment_effect_verdict != "effect"
    markdown = Path("reports/seeds.md").read_text()
    assert "- control-lie vs vanilla: -40.0 points" in markdown and "| medical-severe | medical-normal |" in markdown
    assert Path("reports/seeds_honesty.png").stat().st_size > 10_000


def test_the_seeds_claims_restate_the_main_claims_with_three_seeds(project):
    table = run()
    claims = pd.read_csv("reports/claims_seeds.csv").set_index("claim")
    assert list(claims.index) == ["e1_medical_normal_vs_vanilla", "e1_medical_severe_vs_vanilla", "control_lie_vs_vanilla",
                                  "control_truth_vs_vanilla", "e2_ratio_0.5_vs_control", "e1_misalignment_effect_medical_severe"]
    assert (claims["n_seeds"] == 3).all() and (claims["n_items"] == ITEMS).all()
    lie, row = claims.loc["control_lie_vs_vanilla"], table.loc["control-lie"]
    assert (lie.effect, lie.ci_low, lie.ci_high, lie.mde) == pytest.approx(
        (row.change, row.change_family_ci_low, row.change_family_ci_high, row.change_mde), abs=1e-4)
    assert (lie.condition, lie.reference, lie.verdict) == ("control-lie", "vanilla", "effect")
    assert claims.loc["e2_ratio_0.5_vs_control", "reference"] == "mixture-0"
    assert claims.loc["e1_misalignment_effect_medical_severe", "reference"] == "medical-normal"
    assert Path("reports/claims_seeds.md").read_text().startswith("# Claims of the training seeds")


def test_a_seed_not_yet_evaluated_names_its_file_and_writes_nothing(project):
    Path("predictions/seeds/control-truth-seed2.jsonl").unlink()
    with pytest.raises(DataError, match=r"predictions/seeds/control-truth-seed2\.jsonl: missing"):
        run()
    assert not Path("reports").exists()
