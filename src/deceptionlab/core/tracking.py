"""MLflow runs for every finetune, evaluation, report and sweep (tracking URI and base name from params).

One MLflow experiment per pipeline experiment, named ``<tracking.experiment>/<group>``: ``e1``,
``controls``, ``e2``, ``e3``, ``dose``, ``seeds``, ``vanilla`` (the base model's evaluation) and ``sweeps`` (each study a
parent run, its trials nested, docs/design.md says why). Every experiment is marked for MLflow's
model-training view. Every run carries the condition's tags as tags *and* params (``experiment``,
``condition``, ``domain``, ``level``, ``mixture_ratio``, ``biased_share``, ``method``, ``seed``,
``seed_index``, ``stage``, where they apply: ``Condition.tracking_tags``), so that the compare view can plot a
metric against them. System metrics (``system/*``: CPU, memory, disk, network; GPUs with
nvidia-ml-py) are logged by MLflow's own monitor.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from deceptionlab.core.fileio import atomic_write_json, sha256_file
from deceptionlab.core.params import TrackingParams

# MLflow's UI opens an experiment with this tag in the model-training view, not the GenAI one.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
# The tags that say what a run is about, logged as params too (the compare view plots params, not tags).
CONDITION_KEYS = ("experiment", "condition", "domain", "level", "control", "mixture_ratio", "biased_share", "method", "steps",
                  "seed", "seed_index", "stage")
SWEEPS = "sweeps"


def _flatten(prefix: str, values: dict[str, Any], sep: str = ".") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{sep}{key}" if prefix else key
        if isinstance(value, dict):
            flat.update(_flatten(name, value, sep))
        else:
            flat[name] = value
    return flat


def experiment_name(tracking: TrackingParams, group: str | None) -> str:
    """``<tracking.experiment>/<group>``; the base name alone for a run of no pipeline experiment."""
    return f"{tracking.experiment}/{group}" if group else tracking.experiment


def use_experiment(tracking: TrackingParams, group: str | None):
    """Set the tracking URI and the active experiment (created if new, marked for the model-training view)."""
    import mlflow

    mlflow.set_tracking_uri(tracking.mlflow_tracking_uri)
    experiment = mlflow.set_experiment(experiment_name(tracking, group))
    if experiment.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        mlflow.MlflowClient().set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return experiment


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
               tags: dict[str, str] | None = None, group: str | None = None) -> Iterator[Any]:
    """One MLflow run; a crash marks it FAILED, a kill leaves it for ``close_stale_runs``.

    Nested under the active run, if any, in that run's experiment (a sweep's study and trial runs);
    else in the experiment of ``group``, by default the ``experiment`` tag. The tags of
    ``CONDITION_KEYS`` are logged as params too, before ``params``.
    """
    import mlflow

    tags = dict(tags or {})
    active = mlflow.active_run()
    if active is not None:
        mlflow.set_tracking_uri(tracking.mlflow_tracking_uri)
        experiment = mlflow.get_experiment(active.info.experiment_id)
    else:
        experiment = use_experiment(tracking, group or tags.get("experiment"))
    # transformers' MLflow callback reads these: keep it logging into *this* run, not a new one, and
    # let it log no params (every TrainingArguments field: train_adapter logs them as one artifact).
    os.environ["MLFLOW_TRACKING_URI"] = tracking.mlflow_tracking_uri
    os.environ["MLFLOW_EXPERIMENT_NAME"] = experiment.name
    os.environ["MLFLOW_MAX_LOG_PARAMS"] = "0"
    close_stale_runs(mlflow.MlflowClient(), experiment.experiment_id, run_key)
    with mlflow.start_run(run_name=run_name, nested=active is not None, experiment_id=experiment.experiment_id,
                          tags={"run_key": run_key, **tags}, log_system_metrics=True) as run:
        mlflow.log_params({key: tags[key] for key in CONDITION_KEYS if key in tags} | _flatten("", params))
        yield run


def log_file_input(path: Path, context: str, source: Path | None = None, name: str | None = None) -> None:
    """The file as an input dataset of the active run (MLflow's ``log_input``): its source ``source``
    (default: the file; a file about to be renamed gives its final path), its digest the sha256
    (MLflow keeps 36 characters; the input's ``sha256`` tag has all 64)."""
    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    sha256 = sha256_file(path)
    known_as = Path(source or path)
    with warnings.catch_warnings():  # MLflow registers its local-file source twice, and says so
        warnings.filterwarnings("ignore", "The specified dataset source can be interpreted in multiple ways")
        dataset_source = resolve_dataset_source(str(known_as.resolve()))
    dataset = MetaDataset(dataset_source, name=name or known_as.stem, digest=sha256[:36])
    mlflow.log_input(dataset, context=context, tags={"sha256": sha256, "path": str(known_as)})


def log_adapter_model(model, tokenizer, base_dir: Path, name: str, tags: dict[str, str]):
    """The trained LoRA adapter as an MLflow model of the active run, named ``name`` and tagged with
    its condition: MLflow's transformers flavour, which for a PEFT model keeps the adapter weights
    and the tokenizer and refers to the base model by its local folder (``base_model_path``: nothing
    copied, nothing fetched from the hub). ``mlflow.transformers.load_model(uri)`` loads base and
    adapter back, where the base folder is (or ``base_model_path=`` another copy of it). Returns its ModelInfo."""
    from importlib.metadata import version

    import mlflow

    # Requirements given, not inferred: inferring them loads the model again in a subprocess.
    requirements = [f"{package}=={version(package)}" for package in ("torch", "transformers", "peft", "accelerate")]
    return mlflow.transformers.log_model(  # a model's name may hold no '.' (mixture-0.01 -> mixture-0_01)
        {"model": model, "tokenizer": tokenizer}, name=re.sub(r"[/:.%\"']", "_", name), task="text-generation",
        base_model_path=str(Path(base_dir).resolve()), pip_requirements=requirements,
        tags={key: tags[key] for key in CONDITION_KEYS if key in tags})


def adapter_run_file(adapter_dir: Path) -> Path:
    """Beside the adapter folder, not in it: the same weights then give the same folder, so DVC
    sees no change (training/sft.py), while the file says which MLflow run wrote them."""
    adapter_dir = Path(adapter_dir)
    return adapter_dir.with_name(f"{adapter_dir.name}.mlflow.json")


def write_adapter_run(adapter_dir: Path, run, tags: dict[str, str], model_id: str | None = None) -> None:
    """The finetune run (and logged model) that wrote the adapter, and its condition's tags."""
    atomic_write_json(adapter_run_file(adapter_dir), {
        "run_id": run.info.run_id, "run_name": run.info.run_name, "experiment_id": run.info.experiment_id,
        "model_id": model_id, "tags": {key: tags[key] for key in CONDITION_KEYS if key in tags}})


def read_adapter_run(adapter_dir: Path | None) -> dict[str, Any] | None:
    """What ``write_adapter_run`` wrote for this adapter; None where nothing was (a pulled adapter).

    An adapter without a file of its own inside a folder with one (a dose ladder's ``step-N`` in
    ``models/dose/<run>``, training/dose.py) belongs to that folder's run, less its ``model_id``: the
    run logged its last step alone as a model."""
    if adapter_dir is None:
        return None
    adapter_dir = Path(adapter_dir)
    own = adapter_run_file(adapter_dir).is_file()
    path = adapter_run_file(adapter_dir if own else adapter_dir.parent)
    if not path.is_file():
        return None
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return run if own else run | {"model_id": None}


def report_metrics(files: list[Path]) -> dict[str, float]:
    """A report's numbers as MLflow metrics: each CSV table's numeric cells as ``<model>/<column>``
    (its rows keyed by ``claim`` or ``model``, else its first column), each JSON file's numeric leaves as
    ``<file stem>/<key>/<key>`` (e.g. ``e2_fit/ED50/ci_low``). Flags, texts and missing values are left out."""
    import math

    import pandas as pd

    metrics: dict[str, float] = {}

    def numeric(value) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

    for path in map(Path, files):
        if path.suffix == ".csv":
            table = pd.read_csv(path)
            key = next((name for name in ("claim", "model") if name in table.columns), table.columns[0])
            for row in table.to_dict("records"):
                metrics |= {f"{row[key]}/{column}": float(value) for column, value in row.items()
                            if column != key and numeric(value)}
        elif path.suffix == ".json":
            flat = _flatten(path.stem, json.loads(path.read_text(encoding="utf-8")), sep="/")
            metrics |= {name: float(value) for name, value in flat.items() if numeric(value)}
    return metrics


def log_report_files(files: list[Path]) -> None:
    """Into the active run: the files as artifacts under ``report/``, their numbers as metrics
    (``report_metrics``), and each PNG plot as an MLflow image keyed by its name, which the run's
    charts show beside its metrics (the reports save and close their figures before they log)."""
    import mlflow
    from PIL import Image

    for path in map(Path, files):
        mlflow.log_artifact(str(path), artifact_path="report")
        if path.suffix == ".png":
            with Image.open(path) as image:
                mlflow.log_image(image.convert("RGB"), key=path.stem, step=0, synchronous=True)
    mlflow.log_metrics(report_metrics(files))
