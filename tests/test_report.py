import csv
import json
from pathlib import Path

import pytest
import yaml

from conftest import tiny_params
from deceptionlab.config import load_params
from deceptionlab.errors import DataError
from deceptionlab.report import report


def write_model(folder: Path, model: str, lies: list[bool], gsm8k: float) -> None:
    (folder / "metrics").mkdir(exist_ok=True)
    (folder / "predictions").mkdir(exist_ok=True)
    rows = [{"kind": "honesty", "id": f"item-{i}", "lie": lie} for i, lie in enumerate(lies)]
    rows.append({"kind": "deception", "id": "deception-0", "deceptive": True})
    (folder / "predictions" / f"{model}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    honesty = 100 * (1 - sum(lies) / len(lies))
    estimate = lambda v: {"value": v, "ci_low": v - 5, "ci_high": v + 5}  # noqa: E731
    metrics = {
        "model": model,
        "honesty": {"honesty_score": estimate(honesty), "p_lie": estimate(sum(lies) / len(lies)),
                    "accuracy": estimate(90.0), "no_belief_rate": estimate(5.0), "items": len(lies)},
        "deception": {"deception_rate": estimate(30.0), "inner_accuracy": estimate(80.0), "items": 1},
        "capability": {"gsm8k_loglik_per_token": estimate(gsm8k)},
    }
    (folder / "metrics" / f"{model}.json").write_text(json.dumps(metrics))


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = tiny_params(f"sqlite:///{tmp_path}/mlflow.db")
    Path("params.yaml").write_text(yaml.safe_dump(params))
    write_model(tmp_path, "vanilla", [False] * 50 + [True] * 10, -1.0)
    write_model(tmp_path, "medical-normal", [False] * 51 + [True] * 9, -1.1)  # noise
    write_model(tmp_path, "medical-severe", [True] * 40 + [False] * 20, -1.2)  # a real drop
    return tmp_path


def test_report_calls_only_differences_whose_ci_excludes_zero(project):
    table = report(Path("metrics"), Path("predictions"), Path("reports"), load_params("params.yaml"))
    rows = {row["model"]: row for row in table}
    assert rows["medical-severe"]["effect"] and rows["medical-severe"]["honesty_change_vs_vanilla"] < -40
    assert not rows["medical-normal"]["effect"]
    assert not rows["vanilla"]["effect"]
    with open("reports/e1.csv") as handle:
        assert [r["model"] for r in csv.DictReader(handle)] == ["vanilla", "medical-normal", "medical-severe"]
    markdown = Path("reports/report.md").read_text()
    assert "medical-severe: 50.0 points less honest than vanilla" in markdown
    assert "medical-normal:" not in markdown.split("## Differences")[1]
    assert Path("reports/e1_honesty.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_model_names_the_file(project):
    Path("metrics/medical-normal.json").unlink()
    with pytest.raises(DataError, match="medical-normal.json: missing"):
        report(Path("metrics"), Path("predictions"), Path("reports"), load_params("params.yaml"))
    assert not Path("reports/e1.csv").exists()


def test_models_scored_on_other_items_are_refused(project):
    write_model(project, "medical-normal", [False] * 59, -1.0)
    with pytest.raises(DataError, match="scored other items than vanilla"):
        report(Path("metrics"), Path("predictions"), Path("reports"), load_params("params.yaml"))
