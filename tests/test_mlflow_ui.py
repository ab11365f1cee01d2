"""The MLflow UI as users see it: served on 127.0.0.1, rendered by headless Chromium."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "mlflow_ui_check.py"


def require_chromium() -> None:
    """A missing browser skips the check on a researcher's machine (no root needed for `make test`);
    under CI=true, where .ci/run installs it, it is a failure."""
    if shutil.which("chromium") is None:
        message = "Debian's chromium is not installed (.ci/run installs it: apt-get install -y chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def test_experiment_and_runs_appear_in_the_ui(tmp_path):
    require_chromium()
    store = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(store)
    mlflow.set_experiment("ui-check")
    for name in ("finetune-medical-severe", "evaluate-vanilla"):
        with mlflow.start_run(run_name=name):
            mlflow.log_metric("honesty_score", 50.0)
    screenshot = tmp_path / "ui.png"
    result = subprocess.run([sys.executable, str(SCRIPT), "--store", store, "--experiment", "ui-check",
                             "--screenshot", str(screenshot)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "evaluate-vanilla" in result.stdout and "finetune-medical-severe" in result.stdout
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_missing_experiment_is_a_one_line_error(tmp_path):
    store = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.MlflowClient(store).search_experiments()  # creates the empty store
    result = subprocess.run([sys.executable, str(SCRIPT), "--store", store, "--experiment", "absent"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and result.stderr.strip() == f"error: {store} has no experiment 'absent'"
