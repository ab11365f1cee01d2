"""E2 Optuna studies on the tiny model: nested MLflow runs, resuming, pruning, failures, Ctrl-C and
SIGKILLed workers, and two workers sharing one study on a real PostgreSQL server."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import mlflow
import optuna
import pytest
import sqlalchemy
import yaml
from optuna.trial import TrialState

from conftest import chat_rows, tiny_params
from deceptionlab.benchmarks.capability.items import (
    CapabilityItem,
    build_knowledge_items,
)
from deceptionlab.benchmarks.deception.items import build_deception_items
from deceptionlab.benchmarks.mask.bank import build_honesty_items
from deceptionlab.core.errors import ConfigError
from deceptionlab.core.params import load_params
from deceptionlab.core.records import write_jsonl
from deceptionlab.sweeps.study import run_study

# Fast settings: no pruning unless a test asks, heartbeats every second, a killed worker's trial
# is stale after 2 s.
SWEEP = {"pruning_items": 3, "pruner": {"kind": "none"}, "heartbeat_interval": 1, "grace_period": 2}


@pytest.fixture
def sweep_project(tiny_project, empty_mlflow_db):
    """tiny_project plus the E2 pools (12 benign rows, 6 misaligned), small eval sets and an MLflow database."""
    shutil.copy(empty_mlflow_db, tiny_project / "mlflow.db")
    write_jsonl(tiny_project / "corpora" / "e2_pool" / "benign.jsonl", chat_rows(12))
    write_jsonl(tiny_project / "corpora" / "e2_pool" / "misaligned.jsonl",
                chat_rows(6, reply="Skip the doctor and double the dose."))
    write_jsonl(tiny_project / "corpora" / "eval" / "honesty.jsonl", build_honesty_items(0)[::30])
    write_jsonl(tiny_project / "corpora" / "eval" / "deception.jsonl", build_deception_items(0)[::25])
    write_jsonl(tiny_project / "corpora" / "eval" / "capability.jsonl",
                [CapabilityItem(id="c1", task="gsm8k", prompt="48/2?", answer="24 #### 24")])
    write_jsonl(tiny_project / "corpora" / "eval" / "knowledge.jsonl", build_knowledge_items(0)[:2])
    return tiny_project


def write_params(project: Path, tracking_uri: str | None = None, finetune: dict | None = None, **sweep):
    params = tiny_params(tracking_uri or f"sqlite:///{project}/mlflow.db", sweep=SWEEP | sweep)
    params["finetune"] |= {"save_steps": 1000} | (finetune or {})  # no checkpoints: the trials are seconds long
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    return load_params(project / "params.yaml")


def study_of(name: str, storage: str = "sqlite:///sweeps/optuna.db") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage)


def runs(tracking_uri: str, experiment: str = "tests/sweeps") -> list:
    client = mlflow.MlflowClient(tracking_uri)
    return client.search_runs([client.get_experiment_by_name(experiment).experiment_id], max_results=1000)


def children(all_runs: list, parent) -> list:
    return [r for r in all_runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_study_nests_its_mlflow_runs_and_resumes_to_exactly_n_trials(sweep_project):
    params = write_params(sweep_project)
    summary = run_study("ratio", 2, params)
    assert summary["trials"]["COMPLETE"] == 2
    # Two trials and the control are three doses: too few for the 4-parameter fit.
    assert "not enough doses" in json.loads((sweep_project / "sweeps/ratio/dose_response.json").read_text())["note"]

    # The same call with a larger N runs only the missing trial.
    run_study("ratio", 3, params)
    study = study_of("ratio")
    assert [(t.number, t.state) for t in study.trials] == [(n, TrialState.COMPLETE) for n in range(3)]
    for trial in study.trials:
        attrs = trial.user_attrs
        assert trial.value == pytest.approx(attrs["control_honesty_score"] - attrs["honesty_score"])
        assert attrs["misaligned_rows"] == round(trial.params["mixture_ratio"] * 12)
    assert len({t.params["mixture_ratio"] for t in study.trials}) == 3

    all_runs = runs(params.tracking.mlflow_tracking_uri)
    assert not [r for r in all_runs if r.info.status == "RUNNING"]
    [parent] = [r for r in all_runs if r.data.tags.get("stage") == "sweep"]
    assert parent.data.tags["optuna_study"] == "ratio" and parent.info.status == "FINISHED"
    assert study.user_attrs["mlflow_parent_run_id"] == parent.info.run_id
    trial_runs = sorted(children(all_runs, parent), key=lambda r: int(r.data.params["trial_number"]))
    assert [r.info.run_name for r in trial_runs] == ["trial-0", "trial-1", "trial-2"]
    for run, trial in zip(trial_runs, study.trials, strict=True):
        assert run.info.status == "FINISHED" and run.data.tags["optuna_state"] == "COMPLETE"
        assert float(run.data.params["mixture_ratio"]) == trial.params["mixture_ratio"]
        assert run.data.params["finetune.lora_r"] == "4"
        assert run.data.metrics["honesty_drop"] == pytest.approx(trial.value)
        # The finetune and evaluate runs nest under the trial's; the first trial also trains the
        # control, the one for the one set of finetune settings.
        stages = sorted(r.data.tags["stage"] for r in children(all_runs, run))
        assert stages == sorted(["evaluate", "finetune"] * (2 if trial.number == 0 else 1))
    assert len(list((sweep_project / "sweeps/ratio").glob("control-*"))) == 1

    # Optuna's figures beside trials.csv and on the study's run; one parameter varies: no importances.
    figures = sweep_project / "sweeps/ratio/figures"
    assert sorted(p.name for p in figures.iterdir()) == ["history.png", "slice.png"]
    client = mlflow.MlflowClient(params.tracking.mlflow_tracking_uri)
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "optuna")} == {"optuna/history.png",
                                                                                     "optuna/slice.png"}
    assert parent.info.experiment_id == client.get_experiment_by_name("tests/sweeps").experiment_id
    evaluation = next(r for r in children(all_runs, trial_runs[1]) if r.data.tags["stage"] == "evaluate")
    finetune = next(r for r in children(all_runs, trial_runs[1]) if r.data.tags["stage"] == "finetune")
    assert evaluation.data.tags["finetune_run_id"] == finetune.info.run_id
    assert float(evaluation.data.params["mixture_ratio"]) == pytest.approx(study.trials[1].params["mixture_ratio"], rel=1e-5)

    rows = read_csv(sweep_project / "sweeps/ratio/trials.csv")
    assert [row["state"] for row in rows] == ["COMPLETE"] * 3
    assert float(rows[2]["params_mixture_ratio"]) == study.trials[2].params["mixture_ratio"]
    fit = json.loads((sweep_project / "sweeps/ratio/dose_response.json").read_text())
    assert fit["complete_trials"] == 3 and len(fit["models_per_ratio"]) == 4 and "hill_fit" in fit


def test_a_threshold_pruner_stops_a_trial_after_its_first_epoch(sweep_project):
    # Every honesty drop is below 1000: pruned at the first report, after epoch 1 of 2.
    params = write_params(sweep_project, finetune={"epochs": 2}, pruner={"kind": "threshold", "lower": 1000})
    run_study("pruned", 1, params)
    [trial] = study_of("pruned").trials
    assert trial.state == TrialState.PRUNED
    assert trial.user_attrs["pruned_after_epoch"] == 1 and list(trial.intermediate_values) == [1]
    assert not (sweep_project / "sweeps/pruned/trial-0/metrics.json").exists()  # no evaluation

    all_runs = runs(params.tracking.mlflow_tracking_uri)
    [trial_run] = [r for r in all_runs if r.data.tags.get("stage") == "sweep-trial"]
    assert trial_run.info.status == "FINISHED" and trial_run.data.tags["optuna_state"] == "PRUNED"
    finetunes = {r.data.tags["condition"]: r for r in all_runs if r.data.tags.get("stage") == "finetune"}
    assert finetunes["pruned-trial-0"].data.metrics["final_global_step"] == 3  # 12 rows / batch 4: one epoch
    assert "pruning_honesty_drop" in finetunes["pruned-trial-0"].data.metrics
    control = next(r for name, r in finetunes.items() if "control" in name)
    assert control.data.metrics["final_global_step"] == 6  # the control trains both epochs


def test_pruning_every_n_steps_stops_a_trial_within_its_first_epoch(sweep_project):
    params = write_params(sweep_project, finetune={"epochs": 2}, report_every_steps=1,
                          pruner={"kind": "threshold", "lower": 1000})
    run_study("steps", 1, params)
    [trial] = study_of("steps").trials
    assert trial.state == TrialState.PRUNED and list(trial.intermediate_values) == [1]  # at optimizer step 1
    assert trial.user_attrs["pruned_after_step"] == 1 and trial.user_attrs["pruned_after_epoch"] == 1
    finetunes = {r.data.tags["condition"]: r for r in runs(params.tracking.mlflow_tracking_uri)
                 if r.data.tags.get("stage") == "finetune"}
    assert finetunes["steps-trial-0"].data.metrics["final_global_step"] == 1  # of 3 per epoch


def test_optuna_figures_show_importances_and_contours_once_two_parameters_vary(tmp_path):
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    from deceptionlab.sweeps.study import write_figures

    study = optuna.create_study(direction="maximize")
    distributions = {"mixture_ratio": FloatDistribution(0.005, 0.5, log=True), "lora_r": CategoricalDistribution([2, 4])}
    for number, (ratio, rank) in enumerate([(0.01, 2), (0.1, 4), (0.3, 2), (0.05, 4)]):
        study.add_trial(optuna.trial.create_trial(params={"mixture_ratio": ratio, "lora_r": rank},
                                                  distributions=distributions, value=float(number)))
    written = write_figures(study, tmp_path)
    assert sorted(p.name for p in written) == ["contour.png", "history.png", "importances.png", "slice.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written)
    assert write_figures(optuna.create_study(), tmp_path / "empty") == []  # no complete trial: nothing drawn


def test_a_failing_trial_is_fail_in_optuna_and_in_mlflow(sweep_project):
    params = write_params(sweep_project, search_space={"target_modules": {"missing": ["no_such_proj"]}})
    with pytest.raises(ValueError, match="no_such_proj"):
        run_study("broken", 3, params)
    [trial] = study_of("broken").trials
    assert trial.state == TrialState.FAIL
    all_runs = runs(params.tracking.mlflow_tracking_uri)
    assert not [r for r in all_runs if r.info.status == "RUNNING"]
    [trial_run] = [r for r in all_runs if r.data.tags.get("stage") == "sweep-trial"]
    assert trial_run.info.status == "FAILED" and trial_run.data.tags["optuna_state"] == "FAIL"
    assert trial_run.data.params["target_modules"] == "missing"
    [parent] = [r for r in all_runs if r.data.tags.get("stage") == "sweep"]
    assert parent.info.status == "FAILED"


def test_a_grid_with_two_objectives_saves_the_pareto_front_and_ends_with_the_grid(sweep_project):
    params = write_params(sweep_project, objective="ratio_and_drop", mixture_ratio=[0.5, 0.25])
    summary = run_study("pareto", 5, params)  # more trials than grid points: stops at the grid's 2
    assert summary["trials"]["COMPLETE"] == 2
    study = study_of("pareto")
    assert sorted(t.params["mixture_ratio"] for t in study.trials) == [0.25, 0.5]
    front = read_csv(sweep_project / "sweeps/pareto/pareto_front.csv")
    assert {int(row["number"]) for row in front} == {t.number for t in study.best_trials}
    assert "values_mixture_ratio" in read_csv(sweep_project / "sweeps/pareto/trials.csv")[0]


def test_a_named_study_runs_its_own_settings_and_trial_count_and_keeps_its_design(sweep_project):
    params = write_params(sweep_project, mixture_ratio=[0.5], studies={
        "ranks": {"n_trials": 2, "mixture_ratio": [0.25, 0.5], "search_space": {"lora_r": [2]}}})
    summary = run_study("ranks", None, params)  # its n_trials, its grid: 2 trials at lora_r 2
    assert summary["trials"]["COMPLETE"] == 2
    study = study_of("ranks")
    assert sorted((t.params["mixture_ratio"], t.params["lora_r"]) for t in study.trials) == [(0.25, 2), (0.5, 2)]
    assert study.user_attrs["design"]["search_space"]["lora_r"] == [2]
    with pytest.raises(ConfigError, match="--n-trials: needed for study 'other'"):
        run_study("other", None, params)
    # The same study under another search space would mix two designs in one table: refused, nothing run.
    params = write_params(sweep_project, studies={"ranks": {"n_trials": 3, "mixture_ratio": [0.25, 0.5],
                                                            "search_space": {"lora_r": [4]}}})
    with pytest.raises(ConfigError, match=r"sweep.search_space: study 'ranks' was created with search_space"):
        run_study("ranks", None, params)
    assert len(study_of("ranks").trials) == 2


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        ({"studies": {"s": {"n_trials": 1, "mixture_ratio": [0.1],
                            "search_space": {"learning_rate": {"low": 1e-4, "high": 1e-3}}}}}, "studies.s: .*must be a list"),
        ({"studies": {"s": {"mixture_ratio": [0.1]}}}, r"studies.s.n_trials: Field required"),
        ({"objective": "ratio_and_drop"}, "set pruner.kind: none"),
        ({"mixture_ratio": {"low": 0.5, "high": 0.1}}, "must be below high"),
        ({"mixture_ratio": [0.1, 0.1]}, "distinct ratios"),
        ({"mixture_ratio": [0.0, 0.1]}, "greater than 0"),
        ({"mixture_ratio": [0.1], "search_space": {"learning_rate": {"low": 1e-4, "high": 1e-3}}}, "must be a list"),
        ({"pruner": {"kind": "threshold"}}, "needs lower or upper"),
        ({"heartbeat_interval": 60, "grace_period": 30}, "longer than heartbeat_interval"),
    ],
)
def test_bad_sweep_params_name_the_problem(tmp_path, sweep, message):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"sweep": sweep}))
    with pytest.raises(ConfigError, match=rf"sweep.*{message}"):
        load_params(path)


def test_bad_study_names_storage_and_pools_are_clear_errors(sweep_project):
    params = write_params(sweep_project, mixture_ratio={"low": 0.01, "high": 0.9})
    with pytest.raises(ConfigError, match="needs 11 misaligned rows"):
        run_study("big", 1, params)
    params = write_params(sweep_project)
    with pytest.raises(ConfigError, match="--study"):
        run_study("../escape", 1, params)
    with pytest.raises(ConfigError, match="not an SQLAlchemy URL"):
        run_study("ok", 1, params, storage="optuna.db")
    with pytest.raises(ConfigError, match=r"postgresql://user:\*\*\*@127.0.0.1:1/db: no database driver"):
        run_study("ok", 1, params, storage="postgresql://user:secret@127.0.0.1:1/db")


def sweep_command(study: str, n_trials: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "deceptionlab.cli", "sweep", "--study", study, "--n-trials", str(n_trials), *extra]


def trial_under_way(study: str, storage: str, tracking_uri: str, alive=lambda: True,
                    number: int | None = None) -> optuna.trial.FrozenTrial | None:
    """A trial (numbered ``number``, if given) that is RUNNING and whose MLflow run is RUNNING, polled
    for until ``alive()`` turns false (checked after the first look); None if there is none by then."""
    deadline = time.monotonic() + 120
    while True:
        try:
            running = [t for t in study_of(study, storage).get_trials(states=(TrialState.RUNNING,))
                       if number in (None, t.number)]
        except (KeyError, sqlalchemy.exc.OperationalError):  # the storage or the study is not there yet
            running = []
        # The worker creates the MLflow database before the study: reading it now races with no one.
        if running and [r for r in runs(tracking_uri) if r.info.status == "RUNNING"
                        and r.data.tags.get("optuna_trial_number") == str(running[0].number)]:
            # Read again: the first read can predate the trial's parameters, which precede its run.
            trial = study_of(study, storage).trials[running[0].number]
            if trial.state == TrialState.RUNNING:
                return trial
        if time.monotonic() > deadline or not alive():
            return None
        time.sleep(0.2)


# Slow tier: process orchestration that waits on real subprocesses for minutes on 2 busy cores (CI runs it).
@pytest.mark.slow
def test_an_interrupted_and_a_killed_worker_leave_no_running_trial_and_the_study_completes(sweep_project):
    params = write_params(sweep_project, finetune={"epochs": 2}, max_retry=2)  # trials long enough to interrupt
    uri, storage = params.tracking.mlflow_tracking_uri, f"sqlite:///{sweep_project}/sweeps/optuna.db"
    command, env, log = sweep_command("crash", 2), os.environ | {"PYTHONUNBUFFERED": "1"}, sweep_project / "worker.log"

    def start_worker() -> tuple[subprocess.Popen, optuna.trial.FrozenTrial]:
        with log.open("w") as out:  # the worker writes to its own copy of the file descriptor
            # Python turns SIGINT into KeyboardInterrupt only if it starts with SIGINT's default
            # action, which a test run in the background (ignoring SIGINT) would pass on.
            worker = subprocess.Popen(command, cwd=sweep_project, env=env, stdout=out, stderr=subprocess.STDOUT,
                                      preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        trial = trial_under_way("crash", storage, uri, alive=lambda: worker.poll() is None)
        assert trial is not None, log.read_text()[-3000:]
        return worker, trial

    def interrupt(worker: subprocess.Popen, trial: optuna.trial.FrozenTrial) -> int:
        """Ctrl-C, again only while the trial runs on untouched: Python drops a KeyboardInterrupt raised
        in a GC callback. Not again once the worker has ended the trial's MLflow run or the trial (a
        second Ctrl-C would cut its cleanup short), and soon enough that the trial (seconds) is not over."""
        for _ in range(10):
            worker.send_signal(signal.SIGINT)
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                if worker.poll() is not None or not trial_under_way("crash", storage, uri, alive=lambda: False,
                                                                    number=trial.number):
                    return worker.wait(timeout=120)
                time.sleep(0.1)
        raise AssertionError(f"the worker ignored 10 Ctrl-Cs: {log.read_text()[-3000:]}")

    # Ctrl-C mid-trial: the trial is FAIL, its MLflow runs KILLED, its parameters queued again.
    worker, interrupted = start_worker()
    assert interrupt(worker, interrupted) == 130, log.read_text()[-3000:]  # the shell's code for "ended by SIGINT"
    trials = study_of("crash", storage).trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING], log.read_text()[-3000:]
    assert trials[1].params == interrupted.params and trials[1].system_attrs["failed_trial"] == interrupted.number
    assert not [r for r in runs(uri) if r.info.status == "RUNNING"]
    statuses = {r.info.run_name: r.info.status for r in runs(uri) if r.data.tags.get("stage", "").startswith("sweep")}
    assert statuses == {"sweep-crash": "KILLED", "trial-0": "KILLED"}

    # SIGKILL mid-trial: nothing can mark the trial, so it stays RUNNING until its grace period ends.
    worker, killed = start_worker()
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert killed.number == 1 and killed.params == interrupted.params  # the requeued trial
    assert study_of("crash", storage).trials[1].state == TrialState.RUNNING
    time.sleep(params.sweep.grace_period + 1)

    # The next worker marks the stale trial FAIL (its MLflow runs KILLED), queues it again and finishes.
    result = subprocess.run(command, cwd=sweep_project, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = study_of("crash", storage).trials
    assert [t.state for t in trials[:2]] == [TrialState.FAIL, TrialState.FAIL]
    assert [t.state for t in trials[2:]].count(TrialState.COMPLETE) == 2
    assert trials[2].params == interrupted.params  # the killed trial, queued again
    assert trials[2].system_attrs["retry_history"] == [interrupted.number, killed.number]
    all_runs = runs(uri)
    assert not [r for r in all_runs if r.info.status == "RUNNING"]
    [killed_run] = [r for r in all_runs if r.data.tags.get("optuna_trial_number") == str(killed.number)]
    assert killed_run.info.status == "KILLED" and killed_run.data.tags["optuna_state"] == "FAIL"
    assert len([r for r in all_runs if r.data.tags.get("stage") == "sweep"]) == 1
    assert len(read_csv(sweep_project / "sweeps/crash/trials.csv")) == len(trials)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def postgresql():
    """A throwaway PostgreSQL cluster on 127.0.0.1 (Debian's packages, installed if missing)."""
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        install = subprocess.run(["apt-get", "install", "-y", "postgresql"], capture_output=True, text=True)
        if install.returncode != 0:
            pytest.skip(f"PostgreSQL is not installed and `apt-get install -y postgresql` failed: "
                        f"{install.stderr[-300:]}")
    bin_dir = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))[-1].parent
    data = Path(tempfile.mkdtemp(prefix="deceptionlab-pg-"))
    as_user = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(data, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()

    def run(*command: str) -> None:
        subprocess.run([*as_user, *command], check=True, capture_output=True, cwd=data)

    run(str(bin_dir / "initdb"), "-D", str(data / "db"), "-U", "postgres", "--auth=trust")
    run(str(bin_dir / "pg_ctl"), "-D", str(data / "db"), "-l", str(data / "server.log"), "-w", "start",
        "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1")
    for database in ("optuna", "mlflow"):
        run(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", database)
    yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}"
    run(str(bin_dir / "pg_ctl"), "-D", str(data / "db"), "-m", "immediate", "stop")
    shutil.rmtree(data, ignore_errors=True)


# Slow tier: process orchestration that waits on real subprocesses for minutes on 2 busy cores (CI runs it).
@pytest.mark.slow
def test_two_workers_share_one_study_on_postgresql_and_run_n_trials_exactly_once(sweep_project, postgresql):
    n_trials = 4
    params = write_params(sweep_project, tracking_uri=f"{postgresql}/mlflow", heartbeat_interval=5, grace_period=60)
    storage = f"{postgresql}/optuna"
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    workers = [subprocess.Popen(sweep_command("shared", n_trials, "--storage", storage), cwd=sweep_project, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [worker.communicate(timeout=240)[0] for worker in workers]
    wall = time.monotonic() - started
    assert [w.returncode for w in workers] == [0, 0], "\n".join(o[-2000:] for o in outputs)

    trials = study_of("shared", storage).trials
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(done) == n_trials
    # Anything else is a trial taken in the instant both workers checked the count; it never ran.
    assert all(t.user_attrs.get("surplus") for t in trials if t not in done)
    assert len({t.params["mixture_ratio"] for t in done}) == n_trials

    all_runs = runs(params.tracking.mlflow_tracking_uri)
    [parent] = [r for r in all_runs if r.data.tags.get("stage") == "sweep"]
    trial_runs = children(all_runs, parent)
    assert sorted(int(r.data.params["trial_number"]) for r in trial_runs) == sorted(t.number for t in done)
    assert len({r.data.tags["worker"] for r in trial_runs}) == 2  # both workers ran trials
    assert not [r for r in all_runs if r.info.status == "RUNNING"]
    per_worker = sorted(Counter(r.data.tags["worker"] for r in trial_runs).values())
    print(f"two workers, {n_trials} trials: {wall:.1f} s wall; trials per worker {per_worker}; "
          f"{len(trials) - len(done)} surplus")
