"""report from the outside: bad inputs are one-line errors naming the file, and a failed report
leaves the previous report files as they were (all of them or none are replaced)."""

import json
from pathlib import Path

import pytest
import yaml
from test_reports import write_model
from typer.testing import CliRunner

from conftest import tiny_params
from deceptionlab.cli import app
from deceptionlab.core.errors import DataError

runner = CliRunner()


@pytest.fixture
def project(tmp_path, monkeypatch):
    """Vanilla and tiny_params' two E1 conditions, evaluated (metrics and predictions as evaluate writes them)."""
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text(yaml.safe_dump(tiny_params(f"sqlite:///{tmp_path}/mlflow.db")))
    write_model(tmp_path, "vanilla", [False] * 50 + [True] * 10, -1.0)
    write_model(tmp_path, "medical-normal", [False] * 51 + [True] * 9, -1.1)
    write_model(tmp_path, "medical-severe", [True] * 40 + [False] * 20, -1.2)
    return tmp_path


def report(experiment: str = "e1"):
    return runner.invoke(app, ["report", experiment])


def assert_one_line_error(result, message: str) -> None:
    assert result.exit_code == 1, result.output
    assert message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def drop(path: str, *keys: str) -> None:
    metrics = json.loads(Path(path).read_text())
    section = metrics
    for key in keys[:-1]:
        section = section[key]
    del section[keys[-1]]
    Path(path).write_text(json.dumps(metrics))


SPOILED = {
    "truncated metrics": (lambda: Path("metrics/vanilla.json").write_text(Path("metrics/vanilla.json").read_text()[:300]),
                          "metrics/vanilla.json:1: not valid JSON"),
    "metrics not an object": (lambda: Path("metrics/vanilla.json").write_text("[1, 2]"),
                              "metrics/vanilla.json: expected a JSON object of metrics, got list"),
    "no honesty_by_archetype": (lambda: drop("metrics/vanilla.json", "honesty_by_archetype"),
                                "metrics/vanilla.json: honesty_by_archetype: Field required"),
    "an estimate without its CI": (lambda: drop("metrics/e1/medical-severe.json", "honesty", "honesty_score", "ci_low"),
                                   "medical-severe.json: honesty.honesty_score.ci_low: Field required"),
    "a capability measure without items": (lambda: drop("metrics/vanilla.json", "capability", "knowledge_accuracy", "items"),
                                           "capability.knowledge_accuracy.items: Field required"),
    "a prediction without kind": (lambda: Path("predictions/vanilla.jsonl").write_text('{"id": "item-0", "lie": false}\n'),
                                  "predictions/vanilla.jsonl:1: kind: Field required"),
    "a honesty prediction without lie": (lambda: Path("predictions/e1/medical-normal.jsonl").write_text(
        '{"kind": "honesty", "id": "item-0"}\n'), "medical-normal.jsonl:1: lie: Field required"),
    "a 5,000-digit id": (lambda: Path("predictions/vanilla.jsonl").write_text('{"kind": "honesty", "id": ' + "7" * 5000 + "}\n"),
                         "predictions/vanilla.jsonl:1: not readable JSON (Exceeds the limit (4300 digits)"),
    "deeply nested": (lambda: Path("predictions/vanilla.jsonl").write_text("[" * 50_000 + "]" * 50_000 + "\n"),
                      "predictions/vanilla.jsonl:1: not readable JSON (nested deeper than"),
}


@pytest.mark.parametrize("spoiled", sorted(SPOILED))
def test_bad_report_inputs_are_one_line_errors_and_leave_no_report(project, spoiled):
    spoil, message = SPOILED[spoiled]
    spoil()
    assert_one_line_error(report(), message)
    assert not Path("reports").exists() or not any(Path("reports").iterdir())


def test_a_failed_report_leaves_the_previous_files_as_they_were(project, monkeypatch):
    assert report().exit_code == 0
    before = {path.name: path.read_bytes() for path in Path("reports").iterdir()}
    assert set(before) == {"e1.md", "e1.csv", "e1_misalignment.csv", "e1_honesty.png"}
    write_model(project, "medical-severe", [False] * 60, -1.0)  # a new result, and then a failure
    import deceptionlab.reporting.e1 as e1

    def fail(metrics):  # while the report is assembled
        raise DataError("metrics/vanilla.json: a failure while writing the markdown")

    with monkeypatch.context() as patch:
        patch.setattr(e1, "evaluation_markdown", fail)
        assert_one_line_error(report(), "a failure while writing the markdown")
    after = {path.name: path.read_bytes() for path in Path("reports").iterdir()}
    assert after == before  # not a new PNG and CSV beside an old markdown; no temporary files either
    assert report().exit_code == 0
    assert Path("reports/e1.csv").read_bytes() != before["e1.csv"]  # the set is replaced whole


def test_a_report_folder_that_is_a_file_is_a_one_line_error(project):
    Path("reports").write_text("not a folder")
    result = report()
    assert result.exit_code == 1 and "reports" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
