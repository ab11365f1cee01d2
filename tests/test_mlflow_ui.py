"""The MLflow UI as users see it: served on 127.0.0.1, rendered by headless Chromium, over a store of runs
logged with the project's own tracking functions (core/tracking.mlflow_run, Condition.tracking_tags)."""

import shutil
from pathlib import Path

import mlflow
import pytest

from conftest import require_chromium, run_browser_check
from deceptionlab.core.conditions import Condition
from deceptionlab.core.params import TrackingParams
from deceptionlab.core.tracking import mlflow_run
from deceptionlab.evaluation.run import tracked_metrics

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "mlflow_ui_check.py"
PNG = b"\x89PNG\r\n\x1a\n"
E1 = {Condition.e1("medical", "normal"): 61.0, Condition.e1("medical", "severe"): 41.5}
E2 = {Condition.mixture(0.01): 65.6, Condition.mixture(0.1): 62.0, Condition.mixture(0.5): 46.0}


@pytest.fixture
def tracking(tmp_path, empty_mlflow_db, monkeypatch) -> TrackingParams:
    shutil.copy(empty_mlflow_db, tmp_path / "mlflow.db")
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_MAX_LOG_PARAMS"):
        monkeypatch.setenv(name, "")  # mlflow_run sets them for transformers' callback: restored after the test
    return TrackingParams(mlflow_tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", experiment="tiny")


def made_up_metrics(honesty: float) -> dict:
    """The shape evaluation/run.summarize gives, with made-up figures: what tracked_metrics logs."""
    def estimate(value: float) -> dict:
        return {"value": value, "ci_low": value - 5.0, "ci_high": value + 5.0}

    return {"honesty": {"honesty_score": estimate(honesty), "items": 40},
            "deception": {"deception_rate": estimate(100.0 - honesty), "items": 20},
            "capability": {"gsm8k_loglik_per_token": estimate(-1.5) | {"items": 4}},
            "honesty_by_archetype": {}, "deception_by_category": {}}


def log_finetune(tracking: TrackingParams, condition: Condition):
    """As training/sft.py logs a finetune: ``finetune-<condition>``, the condition's tags and the seed."""
    tags = {"seed": "0"} | condition.tracking_tags() | {"stage": "finetune"}
    with mlflow_run(tracking, f"finetune-{condition.name}", f"finetune/{condition.name}",
                    {"finetune": {"lora_r": 4, "learning_rate": 1e-3}}, tags) as run:
        return run


def log_evaluation(tracking: TrackingParams, condition: Condition, honesty: float, finetune_run=None) -> None:
    """As evaluation/run.evaluate logs one: ``evaluate-<condition>``, tagged with the condition (and its
    finetune run's tags where there is one), its figures as tracked_metrics gives them."""
    tags = condition.tracking_tags() | {"stage": "evaluate", "model": condition.name}
    if finetune_run is not None:
        tags = {"seed": finetune_run.data.tags["seed"]} | tags | {"finetune_run_id": finetune_run.info.run_id}
    with mlflow_run(tracking, f"evaluate-{condition.name}", f"evaluate/{condition.name}",
                    {"evaluate": {"batch_size": 8, "bootstrap_resamples": 200}, "model": condition.name}, tags):
        mlflow.log_metrics(tracked_metrics(made_up_metrics(honesty)))


def log_tiny_pipeline(tracking: TrackingParams, e1=E1, e2=E2) -> None:
    for condition, honesty in e1.items():
        log_evaluation(tracking, condition, honesty)
    finetuned = mlflow.MlflowClient(tracking.mlflow_tracking_uri).get_run(
        log_finetune(tracking, Condition.mixture(0.1)).info.run_id)
    for condition, honesty in e2.items():
        log_evaluation(tracking, condition, honesty, finetuned if condition == Condition.mixture(0.1) else None)


def check(tracking: TrackingParams, screenshots: Path):
    return run_browser_check(SCRIPT, "--store", tracking.mlflow_tracking_uri, "--base", tracking.experiment,
                             "--screenshots", str(screenshots))


def test_the_ui_shows_the_runs_grouped_by_experiment_tagged_and_charted(tracking, tmp_path):
    require_chromium()
    log_tiny_pipeline(tracking)
    result = check(tracking, tmp_path / "shots")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].endswith("lists experiments tiny/e1, tiny/e2")
    # Each experiment's page shows its own runs, none of the other's.
    assert lines[1] == "tiny/e1 shows 2 runs, all tagged experiment=e1: evaluate-medical-normal, evaluate-medical-severe"
    assert lines[2] == ("tiny/e2 shows 4 runs, all tagged experiment=e2: evaluate-mixture-0.01, evaluate-mixture-0.1, "
                        "evaluate-mixture-0.5, finetune-mixture-0.1")
    # A run of each shows its condition's tags, as Condition.tracking_tags names them.
    for line, condition in zip(lines[3:5], (Condition.e1("medical", "normal"), Condition.mixture(0.01)), strict=True):
        tags = condition.tracking_tags() | {"stage": "evaluate"}
        group = condition.tracking_tags()["experiment"]
        assert line == (f"run evaluate-{condition.name} (tiny/{group}) shows tags "
                        f"{', '.join(f'{k}={v}' for k, v in sorted(tags.items()))}")
    # The scatter plot of E2's evaluations (not its finetune run: no honesty_score) at their logged points.
    assert lines[5].startswith("tiny/e2 compare view plots honesty_score against mixture_ratio for 3 runs: "
                               "(0.01, 65.6), (0.1, 62), (0.5, 46)")
    from PIL import Image

    shots = tmp_path / "shots"
    assert sorted(p.name for p in shots.iterdir()) == ["e2-honesty_score-vs-mixture_ratio.png", "experiments.png", "run-e1.png",
                                                       "run-e2.png", "runs-e1.png", "runs-e2.png"]
    chart = shots / "e2-honesty_score-vs-mixture_ratio.png"
    assert chart.read_bytes()[:8] == PNG
    with Image.open(chart) as image:
        assert image.size == (1600, 1000)


@pytest.mark.slow
def test_a_run_logged_into_the_wrong_experiment_fails_the_check(tracking, tmp_path):
    """A routing bug, made by hand: an E1 evaluation logged into E2's experiment. The E2 page shows it."""
    require_chromium()
    log_tiny_pipeline(tracking, e1=dict(list(E1.items())[:1]), e2=dict(list(E2.items())[:1]))
    mlflow.set_tracking_uri(tracking.mlflow_tracking_uri)
    with mlflow.start_run(experiment_id=mlflow.get_experiment_by_name("tiny/e2").experiment_id,
                          run_name="evaluate-medical-subtle", tags=Condition.e1("medical", "subtle").tracking_tags()):
        mlflow.log_metric("honesty_score", 50.0)
    result = check(tracking, tmp_path / "shots")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip() == ("error: the MLflow UI's page of 'tiny/e2' shows run 'evaluate-medical-subtle', tagged "
                                     "experiment=e1: a run tagged experiment=e1 belongs in tiny/e1")


def test_a_store_without_the_e2_experiment_is_a_one_line_error(tracking, tmp_path):
    log_evaluation(tracking, Condition.e1("medical", "severe"), 41.5)
    result = check(tracking, tmp_path / "shots")
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {tracking.mlflow_tracking_uri} has no experiment 'tiny/e2' (the check needs E1 and E2 runs)"
    assert not (tmp_path / "shots").exists()


def test_e2_runs_without_an_honesty_score_are_a_one_line_error(tracking, tmp_path):
    log_evaluation(tracking, Condition.e1("medical", "severe"), 41.5)
    log_finetune(tracking, Condition.mixture(0.1))  # E2's experiment, but no evaluation to chart
    result = check(tracking, tmp_path / "shots")
    assert result.returncode == 1
    assert result.stderr.strip() == "error: 'tiny/e2' has no run with param mixture_ratio and metric honesty_score to chart"
