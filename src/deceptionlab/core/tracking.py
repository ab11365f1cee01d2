"""MLflow runs for every finetune and evaluation (tracking URI and experiment from params)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from deceptionlab.core.params import TrackingParams


def _flatten(prefix: str, values: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            flat.update(_flatten(name, value))
        else:
            flat[name] = value
    return flat


def close_stale_runs(client, experiment_id: str, run_key: str) -> int:
    """Mark runs of the same key left RUNNING by a killed process as KILLED; returns how many."""
    stale = client.search_runs(
        [experiment_id], filter_string=f"tags.run_key = '{run_key}' and attributes.status = 'RUNNING'"
    )
    for run in stale:
        client.set_terminated(run.info.run_id, status="KILLED")
    return len(stale)


@contextmanager
def mlflow_run(tracking: TrackingParams, run_name: str, run_key: str, params: dict[str, Any],
               tags: dict[str, str] | None = None) -> Iterator[Any]:
    """One MLflow run; a crash marks it FAILED, a kill leaves it for ``close_stale_runs``.

    Nested under the active run, if any (a sweep's study and trial runs).
    """
    import mlflow

    # transformers' MLflow callback reads these; keep it logging into *this* run, not a new one.
    os.environ["MLFLOW_TRACKING_URI"] = tracking.mlflow_tracking_uri
    os.environ["MLFLOW_EXPERIMENT_NAME"] = tracking.experiment
    mlflow.set_tracking_uri(tracking.mlflow_tracking_uri)
    experiment = mlflow.set_experiment(tracking.experiment)
    close_stale_runs(mlflow.MlflowClient(), experiment.experiment_id, run_key)
    nested = mlflow.active_run() is not None
    with mlflow.start_run(run_name=run_name, nested=nested, tags={"run_key": run_key, **(tags or {})}) as run:
        mlflow.log_params(_flatten("", params))
        yield run
