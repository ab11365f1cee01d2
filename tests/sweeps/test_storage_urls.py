"""sweep with a bad storage URL: a one-line error with the password masked, and nothing created first;
the storage URL reaches MLflow with its password masked."""

import mlflow
import optuna
import pytest
import yaml
from typer.testing import CliRunner

from conftest import chat_rows
from deceptionlab.cli import app
from deceptionlab.core.params import load_params
from deceptionlab.core.records import write_jsonl
from deceptionlab.sweeps.study import _study_run, masked_storage

runner = CliRunner()


@pytest.fixture
def pools(tiny_project):
    write_jsonl("corpora/e2_pool/benign.jsonl", chat_rows(12))
    write_jsonl("corpora/e2_pool/misaligned.jsonl", chat_rows(6, reply="Skip the doctor."))
    return tiny_project


@pytest.mark.parametrize(("storage", "message"), [
    ("optuna.db", "sweep storage: not an SQLAlchemy URL"),
    ("nosuchdialect://user:s3cret@host/db", "sweep storage nosuchdialect://user:***@host/db: cannot open it"),
    ("postgresql+psycopg2://user:s3cret@127.0.0.1:1/db", "sweep storage postgresql+psycopg2://user:***@127.0.0.1:1/db: cannot open it"),
    ("sqlite:///params.yaml/optuna.db", "sweep storage sqlite:///params.yaml/optuna.db: cannot create params.yaml"),
])
def test_a_bad_storage_creates_nothing_and_masks_the_password(pools, storage, message):
    result = runner.invoke(app, ["sweep", "--study", "s", "--n-trials", "1", "--storage", storage])
    assert result.exit_code == 1 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and "s3cret" not in result.output
    assert not (pools / "sweeps").exists() and not (pools / "mlflow.db").exists()


def test_the_storage_in_params_is_a_bad_url_too(pools):
    params = yaml.safe_load((pools / "params.yaml").read_text())
    params["sweep"] = {"storage": "postgresql+psycopg2://user:s3cret@127.0.0.1:1/db"}
    (pools / "params.yaml").write_text(yaml.safe_dump(params))
    result = runner.invoke(app, ["sweep", "--study", "s", "--n-trials", "1"])
    assert result.exit_code == 1 and "user:***@127.0.0.1:1" in result.output and "s3cret" not in result.output
    assert not (pools / "sweeps").exists()


def test_the_storage_is_logged_to_mlflow_with_its_password_masked(pools):
    params = load_params("params.yaml")
    study = optuna.create_study(study_name="s", storage="sqlite:///optuna.db")
    with _study_run(study, True, params, masked_storage("postgresql+psycopg2://user:s3cret@db-host/optuna")):
        run_id = mlflow.active_run().info.run_id
    logged = mlflow.MlflowClient(params.tracking.mlflow_tracking_uri).get_run(run_id).data.params
    assert logged["sweep.storage"] == "postgresql+psycopg2://user:***@db-host/optuna"
    assert not any("s3cret" in value for value in logged.values())
