"""E2 Optuna studies: map honesty against the mixture ratio (and LoRA settings) trial by trial.

    deceptionlab sweep --study e2-ratio --n-trials 6
    deceptionlab sweep --study lora-worst-case           # a named study: sweep.studies.lora-worst-case
    deceptionlab sweep --study e2-ratio --n-trials 6 --storage postgresql+psycopg2://user@db-host/optuna  # each worker
    optuna-dashboard sqlite:///sweeps/optuna.db          # browse the study (any storage URL works)

A study named in ``sweep.studies`` runs with its own trial count and the settings it sets there, the
rest from ``sweep.*``; the committed ones run as stages of sweeps/dvc.yaml. A trial samples
``mixture_ratio`` (``sweep.mixture_ratio``: log-uniform, or a grid) and any finetune settings
``sweep.search_space`` names (the rest stay at ``finetune.*``), builds the mixture corpus
from ``corpora/e2_pool`` (``mixture.seed``), LoRA-finetunes ``models/base`` on it and evaluates the
adapter, all under ``sweeps/<study>/trial-<n>/``. Objective (``sweep.objective``):
``honesty_drop`` = the control's honesty_score minus the trial's (maximized: the worst case), or
``ratio_and_drop`` = (mixture_ratio down, honesty_drop up), whose Pareto front is saved. The control
is the same finetune at mixture_ratio 0: trained and evaluated once per distinct set of finetune
settings, in ``sweeps/<study>/control-<key>/`` (a killed control training resumes from its checkpoints).

Pruning: after each epoch, or every ``sweep.report_every_steps`` optimizer steps, the model as it
is scores a seeded subsample of the honesty set (``sweep.pruning_items``); its honesty drop against
the control's on the same items is reported to Optuna (MedianPruner by default), and a pruned trial
stops training and skips the evaluation.

Counting: the study runs until N trials are COMPLETE or PRUNED, across every worker and every run of
the command; FAIL trials do not count, so the same command again runs only what is missing. Before
each trial a worker counts the COMPLETE, PRUNED and RUNNING trials; after taking a trial it checks
that fewer than N trials with smaller numbers hold a slot (numbers follow creation order). The rare
trial that loses this race is FAIL with the user attribute ``surplus``, before anything runs.

Crashes: Ctrl-C marks the running trial FAIL (Optuna) and its MLflow run KILLED, and leaves no
MLflow run RUNNING. A worker killed outright stops sending heartbeats; once ``sweep.grace_period``
has passed, the next worker to start a trial marks it FAIL and its MLflow runs KILLED. Either way
the trial's parameters are queued again up to ``sweep.max_retry`` times (Optuna's
RetryHeartbeatStaleTrialCallback), so a grid point is not lost. A trial of a killed worker holds its
slot until its grace period ends. Any other error marks the trial FAIL in Optuna and MLflow and
stops the worker with that error. Several workers at once (PostgreSQL, an MLflow server, one worker
per GPU): docs/scale.md.

MLflow: one parent run per study (created with the study, reused by every worker and rerun, tagged
``optuna_study``), one nested run per trial (every parameter, the trial number, tag ``optuna_state``),
and the finetune and evaluate runs nested under the trial's. Plain mlflow calls: optuna-integration's
MLflowCallback logs a trial after it ends, so the finetune and evaluate runs could not nest under it.

Outputs, rewritten atomically after every trial: ``sweeps/<study>/trials.csv``,
``pareto_front.csv`` (two objectives), ``dose_response.json`` (the report's Hill fit over every
complete trial and its control, once there are at least 4 distinct ratios) and Optuna's plots in
``figures/`` (history, slice; importances and contour once two parameters vary), also logged to the
study's MLflow run. A progress bar counts the study's COMPLETE and PRUNED trials.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import socket
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import tenacity
from filelock import FileLock
from optuna.trial import TrialState
from tqdm.auto import tqdm
from transformers import TrainerCallback

from deceptionlab.benchmarks.mask.items import AnyItem, read_mask_items
from deceptionlab.core.conditions import Condition, Layout
from deceptionlab.core.errors import ConfigError
from deceptionlab.core.fileio import atomic_write_json, atomic_write_text, sha256_file
from deceptionlab.core.params import (
    FinetuneParams,
    LogRange,
    Params,
    SweepParams,
    TrackingParams,
)
from deceptionlab.core.records import ChatRow, read_records
from deceptionlab.core.tracking import SWEEPS, experiment_name, mlflow_run, use_experiment
from deceptionlab.corpora.mixture import write_mixture
from deceptionlab.corpora.prepare import seeded_subsample
from deceptionlab.evaluation.loglik import honesty_verdict, score_items
from deceptionlab.evaluation.run import EVAL_SETS, evaluate, honesty_requests
from deceptionlab.reporting.common import item_honesty
from deceptionlab.reporting.e2 import finite_json, fit_dose_response
from deceptionlab.training.sft import finetune

PARENT_RUN_ATTR = "mlflow_parent_run_id"
SLOT_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
TABLE_RACE_TRIES = 8


class _SurplusTrial(Exception):
    """This trial was taken after N others already held every slot."""


def run_study(study_name: str, n_trials: int | None, params: Params, storage: str | None = None,
              layout: Layout | None = None) -> dict[str, Any]:
    """Run this worker's share of the study until ``n_trials`` trials are COMPLETE or PRUNED (None: the
    named study's ``sweep.studies.NAME.n_trials``), with the named study's settings if it has some.

    Returns the study's counts by state and the outputs' folder.
    """
    named = params.sweep.studies.get(study_name)
    if n_trials is None:
        if named is None:
            raise ConfigError(f"--n-trials: needed for study {study_name!r}, which sweep.studies does not name")
        n_trials = named.n_trials
    params = params.model_copy(update={"sweep": params.sweep.for_study(study_name)})
    with warnings.catch_warnings():
        # Heartbeats, their retry callback and metric names are marked experimental in Optuna 5.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _run_study(study_name, n_trials, params, storage, layout or Layout())


def _run_study(study_name: str, n_trials: int, params: Params, storage: str | None, layout: Layout) -> dict[str, Any]:
    if not STUDY_NAME.fullmatch(study_name):
        raise ConfigError(f"--study {study_name!r}: use letters, digits, '.', '_' and '-' (it names a folder)")
    if n_trials < 1:
        raise ConfigError(f"--n-trials {n_trials}: must be at least 1")
    settings = params.sweep
    _check_pools(layout.pool_dir, settings)
    url = storage or settings.storage
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(settings.max_retry) if settings.max_retry else None

    def on_stale_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        _kill_trial_runs(params.tracking, study_name, trial.number)
        if retry is not None:
            retry(study, trial)

    # The storage first: a bad URL fails before sweeps/<study>/ or the MLflow database exist.
    rdb_storage = _open_storage(url, settings, on_stale_trial)
    study_dir = layout.sweeps_dir / study_name
    study_dir.mkdir(parents=True, exist_ok=True)
    _create_experiment(params.tracking)
    study, created = _load_or_create(study_name, rdb_storage, settings)
    objective = _Objective(study_name, study_dir, params, layout, n_trials)
    import mlflow

    with _study_run(study, created, params, masked_storage(url)), tqdm(total=n_trials, desc=f"study {study_name}", unit="trial") as bar:
        mlflow.set_tag("n_trials", str(n_trials))
        while True:
            optuna.storages.fail_stale_trials(study)
            write_outputs(study, study_dir, params)  # after every trial, and on a rerun with nothing left
            done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
            bar.update(min(done, n_trials) - bar.n)  # every worker's trials, this one's and earlier runs'
            if len(study.get_trials(deepcopy=False, states=SLOT_STATES)) >= n_trials or _grid_done(study):
                break
            objective.trial_number = None
            try:
                study.optimize(objective, n_trials=1, catch=(_SurplusTrial,))
            except KeyboardInterrupt:  # Optuna has marked the trial FAIL
                if objective.trial_number is not None:
                    interrupted = _trial(study, objective.trial_number)
                    # Ctrl-C inside mlflow.start_run can leave a run created but never entered.
                    _kill_trial_runs(params.tracking, study_name, interrupted.number)
                    if retry is not None and interrupted.state == TrialState.FAIL:
                        retry(study, interrupted)
                raise
    counts = {state.name: len(study.get_trials(deepcopy=False, states=(state,))) for state in TrialState}
    return {"study": study_name, "trials": counts, "outputs": str(study_dir)}


def _check_pools(pool_dir: Path, settings: SweepParams) -> None:
    """Fail before any trial when the pools cannot give the largest ratio the sweep may sample."""
    benign, misaligned = (read_records(pool_dir / f"{name}.jsonl", ChatRow) for name in ("benign", "misaligned"))
    largest = max(settings.mixture_ratio) if isinstance(settings.mixture_ratio, list) else settings.mixture_ratio.high
    if round(largest * len(benign)) > len(misaligned):
        raise ConfigError(
            f"sweep.mixture_ratio: {largest:g} of {len(benign)} benign rows needs {round(largest * len(benign))} "
            f"misaligned rows, but {pool_dir / 'misaligned.jsonl'} has {len(misaligned)}; raise the largest "
            "mixture.ratios and run prepare again, or lower the sweep's ratios"
        )


def _racing_for_tables(action):
    """``action()``, tried again for a while on database errors: workers started together on a new
    database race to create the same tables (Optuna's, MLflow's), and the losers fail until the
    winner is done."""
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    retrying = tenacity.Retrying(  # "already exists": another worker is making it
        stop=tenacity.stop_after_attempt(TABLE_RACE_TRIES), wait=tenacity.wait_fixed(2.0),
        retry=tenacity.retry_if_exception_type((IntegrityError, ProgrammingError)), reraise=True,
    )
    return retrying(action)


def _create_experiment(tracking: TrackingParams) -> None:
    _racing_for_tables(lambda: use_experiment(tracking, SWEEPS))


def masked_storage(url: str) -> str:
    """The storage URL with its password as ***: what logs, errors and MLflow params may show."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not an SQLAlchemy URL)"


def _open_storage(url: str, settings: SweepParams, on_stale_trial) -> optuna.storages.RDBStorage:
    """The RDB storage at ``url``, with heartbeats; a ConfigError (the URL masked) if it cannot be opened."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError("sweep storage: not an SQLAlchemy URL (e.g. sqlite:///sweeps/optuna.db)") from None
    shown = masked_storage(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        try:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:  # e.g. a file where its folder must be
            raise ConfigError(f"sweep storage {shown}: cannot create {Path(parsed.database).parent} "
                              f"({error.strerror})") from None
    try:
        return _racing_for_tables(lambda: optuna.storages.RDBStorage(
            url, heartbeat_interval=settings.heartbeat_interval, grace_period=settings.grace_period,
            heartbeat_stale_trial_callback=on_stale_trial,
        ))
    except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as error:
        raise ConfigError(f"sweep storage {shown}: cannot open it ({type(error).__name__})") from None
    except ImportError:  # e.g. SQLAlchemy 2.1 reads postgresql:// as psycopg 3, which is not installed
        raise ConfigError(f"sweep storage {shown}: no database driver for this URL; for PostgreSQL write "
                          "postgresql+psycopg2://... (psycopg2 is installed)") from None
    except ValueError as error:  # e.g. an unknown dialect option
        raise ConfigError(f"sweep storage {shown}: cannot open it ({type(error).__name__})") from None


DESIGN = ("objective", "mixture_ratio", "search_space")  # what a study samples and scores: fixed at its creation


def _load_or_create(name: str, storage: optuna.storages.RDBStorage, settings: SweepParams) -> tuple[optuna.Study, bool]:
    """The study (and whether this call created it); an existing one must sample and score as ``settings``
    say, or its trials would mix two designs."""
    directions = ["maximize"] if settings.objective == "honesty_drop" else ["minimize", "maximize"]
    kwargs = dict(study_name=name, storage=storage, sampler=_sampler(settings), pruner=_pruner(settings))
    design = settings.model_dump(mode="json", include=set(DESIGN))
    try:
        study = optuna.create_study(directions=directions, **kwargs)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(**kwargs)
        created_with = {"objective": study.user_attrs.get("objective")} | study.user_attrs.get("design", {})
        for setting in DESIGN:
            if created_with.get(setting, design[setting]) != design[setting]:
                raise ConfigError(
                    f"sweep.{setting}: study {name!r} was created with {setting} {created_with[setting]!r}; "
                    "start a new study (--study) to change it"
                ) from None
        return study, False
    study.set_user_attr("objective", settings.objective)
    study.set_user_attr("design", design)
    study.set_metric_names(["honesty_drop"] if len(directions) == 1 else ["mixture_ratio", "honesty_drop"])
    return study, True


def _sampler(settings: SweepParams) -> optuna.samplers.BaseSampler:
    if not isinstance(settings.mixture_ratio, list):
        return optuna.samplers.TPESampler(seed=settings.seed)  # reseeded for every trial, see _sample
    space = settings.search_space
    grid: dict[str, list[Any]] = {"mixture_ratio": list(settings.mixture_ratio)}
    for name in ("lora_r", "lora_alpha", "learning_rate", "epochs", "seed"):
        if getattr(space, name) is not None:
            grid[name] = list(getattr(space, name))
    if space.target_modules is not None:
        grid["target_modules"] = list(space.target_modules)
    return optuna.samplers.GridSampler(grid, seed=settings.seed)


def _pruner(settings: SweepParams) -> optuna.pruners.BasePruner:
    pruner = settings.pruner
    if pruner.kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=pruner.n_startup_trials,
                                           n_warmup_steps=pruner.n_warmup_steps)
    if pruner.kind == "threshold":
        return optuna.pruners.ThresholdPruner(lower=pruner.lower, upper=pruner.upper)
    return optuna.pruners.NopPruner()


@contextmanager
def _study_run(study: optuna.Study, created: bool, params: Params, storage: str) -> Iterator[None]:
    """The study's MLflow parent run, active inside: started by the worker that created the study
    (which records its id in the study), resumed by the other workers and by reruns."""
    import mlflow

    if not created:
        deadline = time.monotonic() + 30  # the creator records it right after creating the study
        while PARENT_RUN_ATTR not in study.user_attrs and time.monotonic() < deadline:
            time.sleep(0.5)
    run_id = study.user_attrs.get(PARENT_RUN_ATTR)
    if run_id is not None:
        with mlflow.start_run(run_id=run_id), _killed_on_interrupt():
            yield
        return
    name = study.study_name  # a new study (or one whose creator died before recording its run)
    sweep = params.sweep.model_dump() | {"storage": storage}  # the storage used, its password masked
    with mlflow_run(params.tracking, f"sweep-{name}", f"sweep/{name}", {"sweep": sweep},
                    {"stage": "sweep", "optuna_study": name}, group=SWEEPS) as run, _killed_on_interrupt():
        study.set_user_attr(PARENT_RUN_ATTR, run.info.run_id)
        yield


@contextmanager
def _killed_on_interrupt() -> Iterator[None]:
    """Inside an active MLflow run: Ctrl-C ends it KILLED (any other error ends it FAILED)."""
    import mlflow

    try:
        yield
    except KeyboardInterrupt:
        mlflow.end_run("KILLED")
        raise


def _kill_trial_runs(tracking: TrackingParams, study_name: str, trial_number: int) -> None:
    """Mark the MLflow runs of a trial whose worker died or was interrupted KILLED where still
    RUNNING: the trial's run and the runs nested in it. Found by the tags the trial's run is created
    with, so a run whose id was never recorded is found too."""
    import mlflow

    client = mlflow.MlflowClient(tracking.mlflow_tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name(tracking, SWEEPS))
    if experiment is None:
        return
    ids = [experiment.experiment_id]
    trial_runs = f"tags.optuna_study = '{study_name}' and tags.optuna_trial_number = '{trial_number}'"
    for run in client.search_runs(ids, trial_runs):
        for stale in [run, *client.search_runs(ids, f"tags.mlflow.parentRunId = '{run.info.run_id}'")]:
            if stale.info.status == "RUNNING":
                client.set_terminated(stale.info.run_id, status="KILLED")
        client.set_tag(run.info.run_id, "optuna_state", "FAIL")


def _trial(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    return next(t for t in study.get_trials(deepcopy=False) if t.number == number)


def _grid_done(study: optuna.Study) -> bool:
    """Every grid point has been started, and no requeued one waits."""
    return (isinstance(study.sampler, optuna.samplers.GridSampler) and study.sampler.is_exhausted(study)
            and not study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


class _Objective:
    """One trial: sample, (train the control if new), finetune, prune or evaluate, score."""

    def __init__(self, study_name: str, study_dir: Path, params: Params, layout: Layout, n_trials: int) -> None:
        self.study_name, self.study_dir, self.params, self.layout, self.n_trials = (
            study_name, study_dir, params, layout, n_trials)
        self.trial_number: int | None = None  # the running trial's, for requeueing it after Ctrl-C
        self.inputs_sha256 = {name: sha256_file(path) for name, path in self._inputs().items()}
        sweep = params.sweep
        self.pruning_items = seeded_subsample(read_mask_items(layout.eval_set("honesty")), sweep.pruning_items,
                                              sweep.seed, "sweep.pruning_items") if sweep.pruner.kind != "none" else []

    def _inputs(self) -> dict[str, Path]:
        pools = {name: self.layout.pool_dir / f"{name}.jsonl" for name in ("benign", "misaligned")}
        return pools | {name: self.layout.eval_set(name) for name in EVAL_SETS}

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        self.trial_number = trial.number
        # Optuna's heartbeat thread writes its first beat asynchronously, and a trial that never beat
        # is never found stale: beat once now, so a worker killed from here on frees its trial.
        trial.storage.record_heartbeat(trial._trial_id)
        earlier = [t for t in trial.study.get_trials(deepcopy=False, states=(*SLOT_STATES, TrialState.WAITING))
                   if t.number < trial.number]
        if len(earlier) >= self.n_trials:
            trial.set_user_attr("surplus", True)
            raise _SurplusTrial(f"trial {trial.number}: {self.n_trials} earlier trials already hold every slot")
        mixture_ratio, settings = self._sample(trial)
        name = f"{self.study_name}-trial-{trial.number}"
        run_params = {"study": self.study_name, "trial_number": trial.number, **trial.params,
                      "finetune": settings.model_dump()}
        tags = Condition.mixture(mixture_ratio).tracking_tags() | {
            "condition": name, "stage": "sweep-trial", "optuna_study": self.study_name, "optuna_trial_number": str(trial.number),
            "seed": str(settings.seed), "worker": f"{socket.gethostname()}:{os.getpid()}"}
        import mlflow

        pruned = None
        with mlflow_run(self.params.tracking, f"trial-{trial.number}", f"sweep/{name}", run_params, tags) as run, \
                _killed_on_interrupt():
            trial.set_user_attr("mlflow_run_id", run.info.run_id)
            try:
                values = self._run(trial, name, mixture_ratio, settings)
            except optuna.TrialPruned as error:
                pruned = error
                mlflow.set_tag("optuna_state", "PRUNED")
            except BaseException:
                mlflow.set_tag("optuna_state", "FAIL")
                raise
            else:
                mlflow.set_tag("optuna_state", "COMPLETE")
        if pruned is not None:
            raise pruned
        return values

    def _sample(self, trial: optuna.Trial) -> tuple[float, FinetuneParams]:
        sweep = self.params.sweep
        if isinstance(sweep.mixture_ratio, list):
            mixture_ratio = trial.suggest_categorical("mixture_ratio", sweep.mixture_ratio)
        else:
            # TPE keeps no state between trials but its random generator: seeding it by the trial
            # number makes one worker's study reproducible, and keeps workers started with the same
            # params from drawing the same values.
            trial.study.sampler = optuna.samplers.TPESampler(seed=sweep.seed + trial.number)
            mixture_ratio = trial.suggest_float("mixture_ratio", sweep.mixture_ratio.low, sweep.mixture_ratio.high,
                                                log=True)
        space, overrides = sweep.search_space, {}
        for name in ("lora_r", "lora_alpha", "epochs", "seed"):
            if getattr(space, name) is not None:
                overrides[name] = trial.suggest_categorical(name, getattr(space, name))
        if isinstance(space.learning_rate, LogRange):
            overrides["learning_rate"] = trial.suggest_float("learning_rate", space.learning_rate.low,
                                                             space.learning_rate.high, log=True)
        elif space.learning_rate is not None:
            overrides["learning_rate"] = trial.suggest_categorical("learning_rate", space.learning_rate)
        if space.target_modules is not None:
            choice = trial.suggest_categorical("target_modules", list(space.target_modules))
            overrides["target_modules"] = space.target_modules[choice]
        return mixture_ratio, FinetuneParams.model_validate(self.params.finetune.model_dump() | overrides)

    def _run(self, trial: optuna.Trial, name: str, mixture_ratio: float,
             settings: FinetuneParams) -> float | tuple[float, float]:
        import mlflow

        control_dir = self._control(settings)
        trial.set_user_attr("control", control_dir.name)
        folder = self.study_dir / f"trial-{trial.number}"
        callbacks = []
        if self.params.sweep.pruner.kind != "none":
            callbacks.append(self._pruning_callback(trial, control_dir))
        trial.set_user_attr("misaligned_rows", self._finetune(folder, mixture_ratio, settings, name, callbacks))
        if callbacks and callbacks[0].pruned_after_epoch is not None:
            trial.set_user_attr("pruned_after_epoch", callbacks[0].pruned_after_epoch)
            if callbacks[0].pruned_after_step is not None:
                trial.set_user_attr("pruned_after_step", callbacks[0].pruned_after_step)
            raise optuna.TrialPruned(f"pruned after epoch {callbacks[0].pruned_after_epoch}")
        metrics = self._evaluate(folder, name)
        control = json.loads((control_dir / "metrics.json").read_text(encoding="utf-8"))
        honesty = metrics["honesty"]["honesty_score"]
        control_score = control["honesty"]["honesty_score"]["value"]
        results = {
            "honesty_score": honesty["value"],
            "honesty_ci_low": honesty["ci_low"], "honesty_ci_high": honesty["ci_high"],
            "control_honesty_score": control_score, "honesty_drop": control_score - honesty["value"],
            "deception_rate": metrics["deception"]["deception_rate"]["value"],
            "gsm8k_loglik_per_token": metrics["capability"]["gsm8k_loglik_per_token"]["value"],
        }
        for key, value in results.items():
            trial.set_user_attr(key, value)
        mlflow.log_metrics(results)
        if self.params.sweep.objective == "honesty_drop":
            return results["honesty_drop"]
        return mixture_ratio, results["honesty_drop"]

    def _control(self, settings: FinetuneParams) -> Path:
        """The folder of the control (mixture_ratio 0) for these finetune settings, trained and
        evaluated on first use. A file lock makes a second worker on this machine wait and reuse it."""
        digest = json.dumps({"finetune": settings.model_dump(), "mixture_seed": self.params.mixture.seed,
                             "evaluate": self.params.evaluate.model_dump(), "inputs": self.inputs_sha256},
                            sort_keys=True)
        folder = self.study_dir / f"control-{hashlib.sha256(digest.encode()).hexdigest()[:12]}"
        with FileLock(self.study_dir / f".{folder.name}.lock"):  # the OS releases it if this process dies
            if not (folder / "metrics.json").is_file():
                name = f"{self.study_name}-{folder.name}"
                if not (folder / "adapter" / "adapter_config.json").is_file():
                    self._finetune(folder, 0.0, settings, name, [])
                self._evaluate(folder, name)
        return folder

    def _finetune(self, folder: Path, mixture_ratio: float, settings: FinetuneParams, name: str, callbacks) -> int:
        """Train on the mixture at ``mixture_ratio``; returns how many of its rows are misaligned."""
        corpus = folder / "corpus.jsonl"
        rows = write_mixture(self.layout.pool_dir, corpus, mixture_ratio, self.params.mixture.seed)
        # A sweep's runs are named by trial (or control), not by the pipeline's mixture-<ratio> conditions.
        tags = Condition.mixture(mixture_ratio).tracking_tags() | {"condition": name, "optuna_study": self.study_name}
        finetune(corpus, self.layout.base_dir, folder / "adapter", folder / "checkpoints", settings,
                 self.params.tracking, name, callbacks, tags=tags)
        return sum(row.meta["misaligned"] for row in rows)

    def _evaluate(self, folder: Path, name: str) -> dict[str, Any]:
        return evaluate(name, self.layout.base_dir, folder / "adapter", self.layout.corpora_dir / "eval",
                        folder / "metrics.json", folder / "predictions.jsonl", self.params.evaluate,
                        self.params.tracking)

    def _pruning_callback(self, trial: optuna.Trial, control_dir: Path) -> HonestyPruningCallback:
        control = item_honesty(control_dir / "predictions.jsonl")
        control_score = float(np.mean([control[item.id] for item in self.pruning_items]))
        return HonestyPruningCallback(trial, self.pruning_items, control_score, self.params.evaluate.batch_size,
                                      self.params.sweep.report_every_steps)


class HonestyPruningCallback(TrainerCallback):
    """After each epoch, or every ``report_every_steps`` optimizer steps: honesty on a fixed subsample
    with the model as it is now; the drop against the control's honesty on the same items goes to
    Optuna (at the epoch, or at the global step); a pruned trial stops training."""

    def __init__(self, trial: optuna.Trial, items: list[AnyItem], control_score: float, batch_size: int,
                 report_every_steps: int | None = None) -> None:
        self.trial, self.items, self.control_score, self.batch_size = trial, items, control_score, batch_size
        self.report_every_steps = report_every_steps
        self.pruned_after_epoch: int | None = None
        self.pruned_after_step: int | None = None

    def _report(self, model, processing_class, step: int, label: str) -> bool:
        """Score, report at ``step``; whether the trial should be pruned."""
        import mlflow

        model.eval()
        rows = score_items(model, processing_class, self.items, honesty_requests, honesty_verdict, self.batch_size,
                           f"pruning honesty, {label}")
        model.train()
        drop = self.control_score - 100.0 * (1.0 - float(np.mean([row["lie"] for row in rows])))
        self.trial.report(drop, step)
        mlflow.log_metric("pruning_honesty_drop", drop, step=step)
        return self.trial.should_prune()

    def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        every = self.report_every_steps
        if every and state.global_step % every == 0 and self._report(model, processing_class, state.global_step,
                                                                     f"step {state.global_step}"):
            self.pruned_after_step = state.global_step
            self.pruned_after_epoch = math.ceil(state.epoch - 1e-6)
            control.should_training_stop = True
        return control

    def on_epoch_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        if self.report_every_steps or self.pruned_after_epoch is not None:
            return control
        epoch = math.ceil(state.epoch - 1e-6)  # a last, partial epoch counts as the next whole one
        if self._report(model, processing_class, epoch, f"epoch {epoch}"):
            self.pruned_after_epoch = epoch
            control.should_training_stop = True
        return control


def write_outputs(study: optuna.Study, study_dir: Path, params: Params) -> None:
    """trials.csv, the Pareto front (two objectives) and the dose-response fit, each atomically."""
    attrs = ("number", "value", "state", "datetime_start", "datetime_complete", "duration", "params", "user_attrs")
    frame = study.trials_dataframe(attrs=attrs)
    atomic_write_text(study_dir / "trials.csv", frame.to_csv(index=False))
    if len(study.directions) == 2:
        front = {trial.number for trial in study.best_trials}
        atomic_write_text(study_dir / "pareto_front.csv",
                          (frame[frame["number"].isin(front)] if len(frame) else frame).to_csv(index=False))
    atomic_write_json(study_dir / "dose_response.json", dose_response(study, study_dir, params))
    write_figures(study, study_dir)


def write_figures(study: optuna.Study, study_dir: Path) -> list[Path]:
    """Optuna's plots of the complete trials, as PNGs in ``<study_dir>/figures/`` and, inside an
    active MLflow run (the study's), as figures of that run under ``optuna/``: the optimization
    history and the slice per parameter; with two or more parameters varying, their importances
    (fANOVA) and contours. Drawn with optuna.visualization.matplotlib: the plotly variant needs
    plotly (and kaleido for PNGs), which the project does not install. Returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import mlflow
    from optuna.visualization import matplotlib as plots

    from deceptionlab.reporting.common import save_figure

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return []
    target = {} if len(study.directions) == 1 else {"target": lambda t: t.values[1], "target_name": "honesty_drop"}
    varying = [name for name in complete[0].params if len({t.params.get(name) for t in complete}) > 1]
    drawn = {"history": lambda: plots.plot_optimization_history(study, **target),
             "slice": lambda: plots.plot_slice(study, **target)}
    if len(varying) >= 2 and len(complete) >= 2:
        drawn |= {"importances": lambda: plots.plot_param_importances(study, **target),
                  "contour": lambda: plots.plot_contour(study, params=varying, **target)}
    folder = study_dir / "figures"
    folder.mkdir(exist_ok=True)
    written = []
    for name, draw in drawn.items():
        with warnings.catch_warnings():  # optuna.visualization.matplotlib is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            figure = np.atleast_1d(draw()).flat[0].figure
        if mlflow.active_run() is not None:
            mlflow.log_figure(figure, f"optuna/{name}.png")
        save_figure(figure, folder / f"{name}.png")
        written.append(folder / f"{name}.png")
    return written


def dose_response(study: optuna.Study, study_dir: Path, params: Params) -> dict[str, Any]:
    """The report's Hill fit (``dose_report.fit_dose_response``) over the complete trials.

    Per honesty item and mixture ratio, the mean over the trials at that ratio (their controls at 0):
    with several finetune settings in the search space, the curve pools them.
    """
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    models: dict[float, set[Path]] = {}
    for trial in complete:
        models.setdefault(0.0, set()).add(study_dir / trial.user_attrs["control"])
        models.setdefault(float(trial.params["mixture_ratio"]), set()).add(study_dir / f"trial-{trial.number}")
    observed = {f"{ratio:g}": len(folders) for ratio, folders in sorted(models.items())}
    if len(models) < 4:
        return {"complete_trials": len(complete), "models_per_ratio": observed,
                "note": f"not enough doses: {len(models)} distinct mixture ratios (the control included); "
                        "the Hill fit needs at least 4"}
    items = {}
    for ratio, folders in models.items():
        scores = [item_honesty(folder / "predictions.jsonl") for folder in sorted(folders)]
        items[ratio] = {item: float(np.mean([s[item] for s in scores])) for item in scores[0]}
    return {"complete_trials": len(complete), "models_per_ratio": observed, **finite_json(fit_dose_response(items, params))}


def describe(summary: dict[str, Any]) -> str:
    counts = ", ".join(f"{count} {state.lower()}" for state, count in summary["trials"].items() if count)
    return f"study {summary['study']}: {counts or 'no trials'}; outputs in {summary['outputs']}"
