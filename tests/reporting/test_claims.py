"""The claims table: every comparison of every report, read from the report tables, missing ones named."""

from pathlib import Path

import pandas as pd
import pytest
from test_reports import (
    project,  # noqa: F401  (the fixture: vanilla, E1, E2 and E3 models)
    write_model,
)

from deceptionlab.core.errors import DataError
from deceptionlab.core.params import load_params
from deceptionlab.reporting.claims import report_claims
from deceptionlab.reporting.controls import report_controls
from deceptionlab.reporting.e1 import report_e1
from deceptionlab.reporting.e2 import report_mixture
from deceptionlab.reporting.e3 import report_selftrain


def all_reports(folder: Path) -> None:
    params = load_params("params.yaml")
    # The controls need vanilla's items: the same 60 as the fixture's vanilla, lie control 40 more lies.
    write_model(folder, "control-lie", [True] * 50 + [False] * 10, -1.0)
    write_model(folder, "control-truth", [False] * 50 + [True] * 10, -1.0)
    for report in (report_controls, report_e1, report_mixture, report_selftrain):
        report(Path("metrics"), Path("predictions"), Path("reports"), params)


def test_every_comparison_becomes_one_claim_with_its_family_ci_mde_and_verdict(project):  # noqa: F811
    all_reports(project)
    claims = report_claims(Path("reports"), load_params("params.yaml")).set_index("claim")
    assert list(claims.index) == [
        "control_lie_vs_vanilla", "control_truth_vs_vanilla",
        "e1_medical_normal_vs_vanilla", "e1_medical_severe_vs_vanilla", "e1_misalignment_effect_medical_severe",
        *(f"e2_ratio_{r}_vs_control" for r in ("0.01", "0.02", "0.05", "0.1", "0.5")),
        "e3_sft_biased_0.1_vs_benign", "e3_sft_biased_0.5_vs_benign",
        "e3_kto_biased_0.1_vs_benign", "e3_kto_biased_0.5_vs_benign",
    ]
    lie = claims.loc["control_lie_vs_vanilla"]
    assert lie.effect == pytest.approx(-100 * 40 / 60) and lie.ci_high < 0 and lie.verdict == "effect"
    assert lie.confidence == pytest.approx(0.975) and lie.n_items == 60 and lie.n_seeds == 1
    assert claims.loc["control_truth_vs_vanilla", "verdict"] != "effect"
    # The claims say what the reports say: the same numbers as e1.csv's family columns.
    e1 = pd.read_csv("reports/e1.csv").set_index("model").loc["medical-severe"]
    severe = claims.loc["e1_medical_severe_vs_vanilla"]
    assert (severe.ci_low, severe.ci_high, severe.mde) == pytest.approx(
        (e1.change_vs_vanilla_family_ci_low, e1.change_vs_vanilla_family_ci_high, e1.change_vs_vanilla_mde), abs=1e-3)
    assert claims.loc["e2_ratio_0.5_vs_control", "verdict"] == "effect"
    assert claims.loc["e2_ratio_0.01_vs_control", "verdict"] != "effect"
    assert claims.loc["e2_ratio_0.01_vs_control", "paper"].startswith("Qwen2.5-7B")
    assert set(claims["verdict"]) <= {"effect", "no effect beyond the bounds", "underpowered"}
    markdown = Path("reports/claims.md").read_text()
    assert "| e1_medical_severe_vs_vanilla |" in markdown and "Not produced yet" not in markdown
    assert "[claims_dose.md](claims_dose.md)" in markdown  # the dose pipeline's own claims table


def test_a_report_not_produced_yet_is_named_not_guessed(project):  # noqa: F811
    params = load_params("params.yaml")
    report_e1(Path("metrics"), Path("predictions"), Path("reports"), params)
    claims = report_claims(Path("reports"), params)
    assert set(claims["claim"]) == {"e1_medical_normal_vs_vanilla", "e1_medical_severe_vs_vanilla",
                                    "e1_misalignment_effect_medical_severe"}
    markdown = Path("reports/claims.md").read_text()
    assert "Not produced yet: `reports/controls.csv`, `reports/e2.csv`, `reports/e3.csv`." in markdown


def test_a_report_table_from_before_the_family_columns_is_named_outdated_and_left_out(project):  # noqa: F811
    params = load_params("params.yaml")
    report_e1(Path("metrics"), Path("predictions"), Path("reports"), params)
    Path("reports/e2.csv").write_text("model,honesty_score,honesty_change_vs_control\nmixture-0,66.8,\n")
    claims = report_claims(Path("reports"), params)
    assert not claims["claim"].str.startswith("e2_").any() and len(claims) == 3
    markdown = Path("reports/claims.md").read_text()
    assert "without family CIs, and left out until `dvc repro` reruns them: `reports/e2.csv`." in markdown
    assert "Not produced yet: `reports/controls.csv`, `reports/e3.csv`." in markdown


def test_an_unreadable_report_table_is_refused_and_nothing_is_written(project):  # noqa: F811
    Path("reports").mkdir()
    Path("reports/e1.csv").write_bytes(b"\xff\xfe not a csv")
    with pytest.raises(DataError, match=r"reports/e1.csv: not a readable CSV"):
        report_claims(Path("reports"), load_params("params.yaml"))
    assert not Path("reports/claims.csv").exists() and not Path("reports/claims.md").exists()


def write_profile(reports: Path, name: str, claims: pd.DataFrame, params_text: str) -> Path:
    folder = reports / "profiles" / name
    folder.mkdir(parents=True)
    claims.to_csv(folder / "claims.csv", index=False)
    (folder / "params.yaml").write_text(params_text)
    return folder


def test_a_profiles_claims_join_the_table_under_its_own_models_name(project):  # noqa: F811
    params = load_params("params.yaml")
    report_e1(Path("metrics"), Path("predictions"), Path("reports"), params)
    default = report_claims(Path("reports"), params)
    other = default.assign(effect=default["effect"] - 5)
    wheels = [f"qwen-part{k}==0.9.0" for k in range(1, 7)]
    write_profile(Path("reports"), "other-model", other, f"base_model: {{pypi_wheel: {wheels}}}\n")
    write_profile(Path("reports"), "labelled", default, "base_model: {pypi_wheel: x==1, label: Some-Model-1B}\n")
    claims = report_claims(Path("reports"), params)
    assert len(claims) == 3 * len(default)
    assert list(claims[claims["model"] == "Some-Model-1B"]["claim"]) == list(default["claim"])
    joined = claims[claims["model"] == "qwen-part1==0.9.0 (+5 more parts)"]
    assert list(joined["claim"]) == list(default["claim"]) and list(joined["effect"]) == pytest.approx(list(other["effect"]))
    assert (claims.iloc[: len(default)]["model"] == params.base_model.describe()).all()
    markdown = Path("reports/claims.md").read_text()
    assert "`make profile PROFILE=other-model` ([other-model](profiles/other-model/claims.md))" in markdown
    assert "| e1_medical_severe_vs_vanilla | qwen-part1==0.9.0 (+5 more parts) |" in markdown


def test_a_profile_folder_without_a_claims_table_is_a_one_line_error_and_nothing_is_written(project):  # noqa: F811
    params = load_params("params.yaml")
    report_e1(Path("metrics"), Path("predictions"), Path("reports"), params)
    folder = write_profile(Path("reports"), "broken", pd.DataFrame({"claim": ["x"], "effect": [1.0]}), "{}\n")
    with pytest.raises(DataError, match=r"^reports/profiles/broken/claims.csv: not a claims table with the columns claim, model,"):
        report_claims(Path("reports"), params)
    (folder / "claims.csv").unlink()
    with pytest.raises(DataError, match=r"`make profile PROFILE=broken` writes it$"):
        report_claims(Path("reports"), params)
    assert not Path("reports/claims.md").exists()
