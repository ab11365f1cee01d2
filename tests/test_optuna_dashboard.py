"""optuna-dashboard as users see it: served on 127.0.0.1 over a tiny study's storage, rendered by headless
Chromium (the sweep's browser view, sweeps/study.py)."""

import shutil
from pathlib import Path

import optuna
import pytest

from conftest import require_chromium, run_browser_check

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "optuna_dashboard_check.py"
STUDY = "tiny-sweep"


@pytest.fixture(scope="module")
def study_db(tmp_path_factory) -> Path:
    """Five complete trials of a made-up honesty against mixture_ratio, and one failed trial (not plotted)."""
    path = tmp_path_factory.mktemp("optuna") / "optuna.db"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=STUDY, storage=f"sqlite:///{path}", direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(lambda trial: 66.0 - 40.0 * trial.suggest_float("mixture_ratio", 0.0, 0.5), n_trials=5)
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)
    return path


@pytest.fixture
def storage(study_db, tmp_path) -> str:
    shutil.copy(study_db, tmp_path / "optuna.db")  # the dashboard may add tables of its own
    return f"sqlite:///{tmp_path}/optuna.db"


def check(storage: str, screenshots: Path, *options: str):
    return run_browser_check(SCRIPT, "--storage", storage, "--study", STUDY, "--screenshots", str(screenshots), *options)


def test_the_dashboard_shows_the_study_and_plots_its_trials(storage, tmp_path):
    require_chromium()
    trials = optuna.load_study(study_name=STUDY, storage=storage).get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    result = check(storage, tmp_path / "shots")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].endswith(f"lists study '{STUDY}'")
    assert lines[1].startswith(f"the page of '{STUDY}' plots 5 trials' Objective 0 against Trial (5 SVG markers; ")
    points = ", ".join(f"({x:.3g}, {y:.3g})" for x, y in sorted((t.params["mixture_ratio"], t.value) for t in trials))
    assert lines[2].startswith(f"the analytics page of '{STUDY}' plots Objective Value against Param mixture_ratio: "
                               f"{points} (5 SVG markers; ")
    shots = tmp_path / "shots"
    assert sorted(p.name for p in shots.iterdir()) == ["analytics.png", "history.png", "studies.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in shots.iterdir())


def test_a_missing_study_is_a_one_line_error(storage, tmp_path):
    result = run_browser_check(SCRIPT, "--storage", storage, "--study", "absent")
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {storage} has no study 'absent' (it holds {STUDY})"


def test_a_param_no_trial_has_is_a_one_line_error(storage, tmp_path):
    result = check(storage, tmp_path / "shots", "--param", "learning_rate")
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: no complete trial of study '{STUDY}' has param 'learning_rate' (they have mixture_ratio)"
    assert not (tmp_path / "shots").exists()
