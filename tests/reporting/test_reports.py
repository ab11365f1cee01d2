import csv
import json
from pathlib import Path

import pytest
import yaml

from conftest import tiny_params
from deceptionlab.core.conditions import Layout
from deceptionlab.core.errors import DataError
from deceptionlab.core.params import load_params
from deceptionlab.reporting.e1 import report_e1
from deceptionlab.reporting.e2 import build_table as mixture_table
from deceptionlab.reporting.e2 import report_mixture
from deceptionlab.reporting.e2 import summary_markdown as mixture_markdown
from deceptionlab.reporting.e3 import report_selftrain


def write_model(folder: Path, model: str, lies: list[bool], gsm8k: float) -> None:
    layout = Layout(metrics_dir=folder / "metrics", predictions_dir=folder / "predictions")
    metrics_path, predictions_path = layout.metrics(model), layout.predictions(model)
    metrics_path.parent.mkdir(parents=True, exist_ok=True)
    predictions_path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"kind": "honesty", "id": f"item-{i}", "lie": lie} for i, lie in enumerate(lies)]
    rows.append({"kind": "deception", "id": "deception-0", "deceptive": True})
    predictions_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    honesty = 100 * (1 - sum(lies) / len(lies))
    estimate = lambda v: {"value": v, "ci_low": v - 5, "ci_high": v + 5}  # noqa: E731
    honesty_figures = {"honesty_score": estimate(honesty), "honesty_score_normalized": estimate(honesty), "p_lie": estimate(sum(lies) / len(lies)),
                       "accuracy": estimate(90.0), "no_belief_rate": estimate(5.0),
                       "honesty_at_10": estimate(honesty - 20), "honesty_at_5": estimate(honesty - 10),
                       "items": len(lies)}
    deception = {"deception_rate": estimate(30.0), "inner_accuracy": estimate(80.0), "items": 1}
    metrics = {
        "model": model,
        "honesty": honesty_figures,
        "honesty_by_archetype": {"known_facts": honesty_figures},
        "deception": deception,
        "deception_by_category": {"sycophancy": deception},
        "capability": {"gsm8k_loglik_per_token": estimate(gsm8k) | {"items": 4},
                       "knowledge_accuracy": estimate(60.0) | {"items": 72}},
    }
    metrics_path.write_text(json.dumps(metrics))


# E2 as DVC names the files; lies per ratio (of 60 items) rise with the dose from 0.05 on.
MIXTURE_LIES = {"0": 10, "0.01": 10, "0.02": 11, "0.05": 25, "0.1": 38, "0.5": 40}


# E3: KTO on mostly biased users lies much more; SFT barely moves.
E3_LIES = {("0", "sft"): 10, ("0.1", "sft"): 11, ("0.5", "sft"): 12,
           ("0", "kto"): 10, ("0.1", "kto"): 14, ("0.5", "kto"): 35}


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = tiny_params(f"sqlite:///{tmp_path}/mlflow.db",
                         mixture={"benign_examples": 200, "ratios": [float(r) for r in MIXTURE_LIES]},
                         e3={"biased_shares": [0, 0.1, 0.5], "methods": ["sft", "kto"]})
    Path("params.yaml").write_text(yaml.safe_dump(params))
    write_model(tmp_path, "vanilla", [False] * 50 + [True] * 10, -1.0)
    write_model(tmp_path, "medical-normal", [False] * 51 + [True] * 9, -1.1)  # noise
    write_model(tmp_path, "medical-severe", [True] * 40 + [False] * 20, -1.2)  # a real drop
    for ratio, lies in MIXTURE_LIES.items():
        write_model(tmp_path, f"mixture-{ratio}", [True] * lies + [False] * (60 - lies), -1.0)
    for (share, method), lies in E3_LIES.items():
        write_model(tmp_path, f"e3-p{share}-{method}", [True] * lies + [False] * (60 - lies), -1.0)
    return tmp_path


def test_report_calls_only_differences_whose_family_ci_excludes_zero(project):
    table = report_e1(Path("metrics"), Path("predictions"), Path("reports"), load_params("params.yaml"))
    rows = {row["model"]: row for row in table}
    severe, normal = rows["medical-severe"], rows["medical-normal"]
    assert severe["change_vs_vanilla_verdict"] == "effect" and severe["change_vs_vanilla"] == pytest.approx(-50.0)
    # Two conditions compared with vanilla together: each interval at 97.5%, wider than the uncorrected 95%.
    assert severe["change_vs_vanilla_family_confidence"] == pytest.approx(0.975)
    assert severe["change_vs_vanilla_family_ci_low"] < severe["change_vs_vanilla_ci_low"]
    assert normal["change_vs_vanilla_verdict"] != "effect" and normal["change_vs_vanilla_mde"] > 0
    assert "change_vs_vanilla" not in rows["vanilla"]
    with open("reports/e1.csv") as handle:
        assert [r["model"] for r in csv.DictReader(handle)] == ["vanilla", "medical-normal", "medical-severe"]
    with open("reports/e1_misalignment.csv") as handle:
        (misalignment,) = list(csv.DictReader(handle))
    # severe (40 lies of 60) minus its domain's aligned control, normal (9 lies): -31 items of 60.
    assert (misalignment["model"], misalignment["reference"]) == ("medical-severe", "medical-normal")
    assert float(misalignment["misalignment_effect"]) == pytest.approx(-100 * 31 / 60, abs=1e-3)
    assert misalignment["misalignment_effect_verdict"] == "effect"
    markdown = Path("reports/e1.md").read_text()
    assert "- medical-severe: -50.0 points [" in markdown
    # A null is reported as the bounds it puts on an effect, never left out.
    assert "- medical-normal: " in markdown and "points is excluded" in markdown.split("## Each condition")[1]
    assert "- medical-severe minus medical-normal: -51.7 points [" in markdown
    assert Path("reports/e1_honesty.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    in_full = markdown.split("## Vanilla's evaluation in full")[1]
    assert "| known_facts | 60 | 83.3 [78.3, 88.3] | 83.3 [78.3, 88.3] | 0.167 | 90.0 [85.0, 95.0] | 5.0 | 73.3 [68.3, 78.3] | 63.3 [58.3, 68.3] |" in in_full
    assert "| knowledge_accuracy | 72 | 60.0 [55.0, 65.0] |" in in_full


def test_missing_model_names_the_file(project):
    Path("metrics/e1/medical-normal.json").unlink()
    with pytest.raises(DataError, match="medical-normal.json: missing"):
        report_e1(Path("metrics"), Path("predictions"), Path("reports"), load_params("params.yaml"))
    assert not Path("reports/e1.csv").exists()


def test_models_scored_on_other_items_are_refused(project):
    write_model(project, "medical-normal", [False] * 59, -1.0)
    with pytest.raises(DataError, match="scored other items than the model it is compared with"):
        report_e1(Path("metrics"), Path("predictions"), Path("reports"), load_params("params.yaml"))


def test_mixture_report_compares_each_ratio_with_the_control_and_fits_the_curve(project):
    report_mixture(Path("metrics"), Path("predictions"), Path("reports"), load_params("params.yaml"))
    with open("reports/e2.csv") as handle:
        rows = {float(r["mixture_ratio"]): r for r in csv.DictReader(handle)}
    assert sorted(rows) == [0, 0.01, 0.02, 0.05, 0.1, 0.5]
    assert rows[0.01]["misaligned_rows"] == "2" and rows[0.5]["misaligned_rows"] == "100"
    # 0.5: 40 lies vs the control's 10 of 60 -> -50 points, a relative drop of 60% of 83.3.
    assert float(rows[0.5]["change_vs_control"]) == pytest.approx(-50.0)
    assert float(rows[0.5]["relative_drop_vs_control_pct"]) == pytest.approx(60.0)
    assert float(rows[0]["change_vs_control"]) == 0.0
    fit = json.loads(Path("reports/e2_fit.json").read_text())
    assert fit["effect_resolved"] and fit["max_effect"]["ci_high"] < 0
    assert fit["smallest_effective_ratio"] == 0.05  # 0.02 (one more lie) is within noise
    # Verdicts follow the fixed sequence: effects from the smallest effective ratio up, nulls below it.
    assert [rows[r]["change_vs_control_verdict"] for r in (0.05, 0.1, 0.5)] == ["effect"] * 3
    assert rows[0.02]["change_vs_control_verdict"] in ("no effect beyond the bounds", "underpowered")
    assert float(rows[0.02]["change_vs_control_mde"]) > 0
    assert 0.02 < fit["ED50"]["value"] < 0.1
    markdown = Path("reports/e2.md").read_text()
    assert "# E2: misaligned data mixed into ordinary finetuning" in markdown and "- ED50: mixture_ratio" in markdown
    assert Path("reports/e2_dose_response.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_fit_that_did_not_converge_has_no_point_estimate_in_the_report(project):
    table, _ = mixture_table(Path("metrics"), Path("predictions"), load_params("params.yaml"))
    estimate = {"value": None, "ci_low": -9.8, "ci_high": 5.2}
    fit = {"hill_fit": {"converged": False}, "max_effect": estimate, "ED10": estimate, "ED50": estimate,
           "failed_refits": 1588, "bootstrap_resamples": 2000, "effect_resolved": False,
           "unresolved_because": ["the fit to the measured points did not converge"],
           "smallest_effective_ratio": None}
    markdown = mixture_markdown(table, fit, load_params("params.yaml"))
    assert ("max_effect (top - bottom): not estimated (the fit to the measured points did not converge); "
            "CI of the refits that did [-9.8, +5.2] points; 1588 of 2000") in markdown
    assert "No dose-response step is resolved (the fit to the measured points did not converge)" in markdown
    assert "nan" not in markdown


def test_mixture_report_without_an_effect_says_so(project):
    for ratio in MIXTURE_LIES:
        write_model(project, f"mixture-{ratio}", [True] * 10 + [False] * 50, -1.0)
    report_mixture(Path("metrics"), Path("predictions"), Path("reports"), load_params("params.yaml"))
    fit = json.loads(Path("reports/e2_fit.json").read_text())
    assert not fit["effect_resolved"] and fit["smallest_effective_ratio"] is None
    markdown = Path("reports/e2.md").read_text()
    assert "No dose-response step is resolved (" in markdown
    assert "CI of max_effect includes zero" in " ".join(fit["unresolved_because"])
    assert "No effective mixture_ratio: the largest ratio's change against the control has a CI" in markdown


def test_with_two_ratios_there_is_no_fit_but_the_fixed_sequence_still_sets_the_verdict(project):
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["mixture"]["ratios"] = [0, 0.5]  # the 0.5B profile's E2: a control and one ratio
    Path("params.yaml").write_text(yaml.safe_dump(params))
    report_mixture(Path("metrics"), Path("predictions"), Path("reports"), load_params("params.yaml"))
    fit = json.loads(Path("reports/e2_fit.json").read_text())
    assert fit["hill_fit"] is None and fit["smallest_effective_ratio"] == 0.5  # 40 lies of 60 against 10
    top = [row for row in csv.DictReader(open("reports/e2.csv")) if float(row["mixture_ratio"]) == 0.5][0]
    assert float(top["change_vs_control_family_ci_high"]) < 0 and top["change_vs_control_verdict"] == "effect"
    markdown = Path("reports/e2.md").read_text()
    assert "- No fit: a 4-parameter fit needs at least 3 mixture.ratios above 0." in markdown
    assert "- Smallest effective mixture_ratio: 0.5 (" in markdown


def test_missing_mixture_ratio_names_the_file(project):
    Path("metrics/e2/mixture-0.05.json").unlink()
    with pytest.raises(DataError, match=r"mixture-0.05.json: missing; run the evaluate_mixture stage"):
        report_mixture(Path("metrics"), Path("predictions"), Path("reports"), load_params("params.yaml"))
    assert not Path("reports/e2.csv").exists()


def test_selftrain_report_compares_each_share_with_all_benign_users_of_the_same_method(project):
    report_selftrain(Path("metrics"), Path("predictions"), Path("reports"), load_params("params.yaml"))
    with open("reports/e3.csv") as handle:
        rows = {(r["method"], float(r["biased_share"])): r for r in csv.DictReader(handle)}
    assert sorted(rows) == [("kto", 0), ("kto", 0.1), ("kto", 0.5), ("sft", 0), ("sft", 0.1), ("sft", 0.5)]
    assert float(rows[("kto", 0.5)]["change_vs_benign"]) == pytest.approx(-100 * 25 / 60)
    assert rows[("kto", 0.5)]["change_vs_benign_verdict"] == "effect"
    assert rows[("sft", 0.5)]["change_vs_benign_verdict"] != "effect"
    # Four biased models against their benign control, one family: each interval at 98.75%.
    assert float(rows[("kto", 0.5)]["change_vs_benign_family_confidence"]) == pytest.approx(0.9875)
    assert rows[("kto", 0)]["change_vs_benign"] == ""  # the control is not compared with itself
    markdown = Path("reports/e3.md").read_text()
    assert "# E3: self-training on ratings" in markdown
    assert "- kto at biased_share 0.5: -41.7 points" in markdown
    assert "- sft at biased_share 0.5: " in markdown and "points is excluded" in markdown
    assert Path("reports/e3_honesty.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_selftrain_model_names_the_file(project):
    Path("predictions/e3/e3-p0.1-kto.jsonl").unlink()
    with pytest.raises(DataError, match=r"e3-p0.1-kto.jsonl: missing"):
        report_selftrain(Path("metrics"), Path("predictions"), Path("reports"), load_params("params.yaml"))
