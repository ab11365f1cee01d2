"""MLflow as its users expect it: runs grouped by pipeline experiment, tagged and param'd by condition,
evaluations linked to their finetune, input datasets, system metrics, CI and per-archetype metrics."""

import json
import time
from pathlib import Path

import mlflow
import pytest
from typer.testing import CliRunner

from conftest import write_e1_inputs
from deceptionlab.cli import app
from deceptionlab.core.conditions import VANILLA_TAGS, Condition
from deceptionlab.core.params import TrackingParams
from deceptionlab.core.tracking import (
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    adapter_run_file,
    log_file_input,
    mlflow_run,
    read_adapter_run,
    write_adapter_run,
)

runner = CliRunner()


@pytest.fixture
def tracking(tmp_path, empty_mlflow_db) -> TrackingParams:
    import shutil

    shutil.copy(empty_mlflow_db, tmp_path / "mlflow.db")
    return TrackingParams(mlflow_tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", experiment="lab")


def test_every_condition_names_its_settings_in_its_tags():
    assert Condition.e1("medical", "severe").tracking_tags() == {
        "experiment": "e1", "condition": "medical-severe", "domain": "medical", "level": "severe"}
    assert Condition.of_control("lie").tracking_tags() == {"experiment": "controls", "condition": "control-lie",
                                                           "control": "lie"}
    assert Condition.mixture(0.01).tracking_tags() == {"experiment": "e2", "condition": "mixture-0.01",
                                                       "mixture_ratio": "0.01"}
    assert Condition.mixture(0.0).tracking_tags()["mixture_ratio"] == "0"
    assert Condition.e3(0.1, "kto").tracking_tags() == {"experiment": "e3", "condition": "e3-p0.1-kto",
                                                        "biased_share": "0.1", "method": "kto"}
    assert VANILLA_TAGS == {"experiment": "vanilla", "condition": "vanilla"}


def test_runs_go_to_their_experiment_marked_for_model_training_nested_runs_to_their_parents(tracking, monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    tags = Condition.mixture(0.05).tracking_tags() | {"stage": "finetune", "seed": "0"}
    with mlflow_run(tracking, "parent", "k/parent", {"finetune": {"lora_r": 4}}, tags) as parent:
        time.sleep(1.0)  # a few system-metrics samples
        with mlflow_run(tracking, "child", "k/child", {}, Condition.e1("math", "normal").tracking_tags()) as child:
            pass
    client = mlflow.MlflowClient(tracking.mlflow_tracking_uri)
    experiment = client.get_experiment_by_name("lab/e2")
    assert experiment.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    run = client.get_run(parent.info.run_id)
    assert run.info.experiment_id == experiment.experiment_id
    assert run.data.params == {"experiment": "e2", "condition": "mixture-0.05", "mixture_ratio": "0.05",
                               "stage": "finetune", "seed": "0", "finetune.lora_r": "4"}
    assert run.data.tags["mixture_ratio"] == "0.05" and run.data.tags["run_key"] == "k/parent"
    assert any(key.startswith("system/cpu_utilization") for key in run.data.metrics)
    nested = client.get_run(child.info.run_id)  # nested: in the parent's experiment, whatever its tags
    assert nested.info.experiment_id == experiment.experiment_id
    assert nested.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert client.get_experiment_by_name("lab/e1") is None
    with mlflow_run(tracking, "untagged", "k/untagged", {}):
        pass
    assert client.get_experiment_by_name("lab").tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND


def test_a_file_is_an_input_dataset_with_its_sha256_and_an_adapter_carries_its_run(tmp_path, tracking):
    corpus = tmp_path / "medical-severe.jsonl"
    corpus.write_text('{"messages": []}\n')
    with mlflow_run(tracking, "run", "k/run", {}, {"experiment": "e1", "condition": "medical-severe"}) as run:
        log_file_input(corpus, "training")
        write_adapter_run(tmp_path / "adapter", run, {"experiment": "e1", "condition": "medical-severe", "round": "1"})
    [dataset_input] = mlflow.MlflowClient(tracking.mlflow_tracking_uri).get_run(run.info.run_id).inputs.dataset_inputs
    import hashlib

    sha256 = hashlib.sha256(corpus.read_bytes()).hexdigest()
    assert dataset_input.dataset.name == "medical-severe" and dataset_input.dataset.digest == sha256[:36]
    assert str(corpus) in dataset_input.dataset.source
    tags = {tag.key: tag.value for tag in dataset_input.tags}
    assert tags["mlflow.data.context"] == "training" and tags["sha256"] == sha256
    assert adapter_run_file(tmp_path / "adapter") == tmp_path / "adapter.mlflow.json"
    assert not (tmp_path / "adapter").exists()  # beside the adapter folder, never in it
    saved = read_adapter_run(tmp_path / "adapter")
    assert saved["run_id"] == run.info.run_id
    assert saved["tags"] == {"experiment": "e1", "condition": "medical-severe"}
    assert read_adapter_run(tmp_path / "other") is None and read_adapter_run(None) is None


@pytest.fixture
def e1_project(tiny_project, empty_mlflow_db):
    """tiny_project with an E1 corpus and small eval sets where the CLI reads them."""
    import shutil

    shutil.copy(empty_mlflow_db, tiny_project / "mlflow.db")
    write_e1_inputs(tiny_project, honesty_every=30, deception_every=25)
    return tiny_project


def test_finetune_and_evaluate_runs_are_grouped_tagged_and_linked(e1_project):
    for command in (["finetune", "medical-normal"], ["evaluate", "medical-normal"], ["evaluate", "vanilla"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 0, result.output
    client = mlflow.MlflowClient(f"sqlite:///{e1_project}/mlflow.db")
    e1 = client.get_experiment_by_name("tests/e1")
    assert e1.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    runs = {run.info.run_name: run for run in client.search_runs([e1.experiment_id])}
    assert set(runs) == {"finetune-medical-normal", "evaluate-medical-normal"}
    finetune, evaluation = runs["finetune-medical-normal"], runs["evaluate-medical-normal"]

    for run, stage in ((finetune, "finetune"), (evaluation, "evaluate")):
        for source in (run.data.tags, run.data.params):
            assert {key: source[key] for key in ("experiment", "condition", "domain", "level", "seed", "stage")} == {
                "experiment": "e1", "condition": "medical-normal", "domain": "medical", "level": "normal", "seed": "0",
                "stage": stage}
    # The evaluation names the finetune run that wrote its adapter (read from beside the adapter).
    assert evaluation.data.tags["finetune_run_id"] == finetune.info.run_id
    assert json.loads(Path("models/adapters/medical-normal.mlflow.json").read_text())["run_id"] == finetune.info.run_id

    # The project's own params, few; the trainer's every argument as one artifact.
    assert len(finetune.data.params) < 60 and "per_device_train_batch_size" not in finetune.data.params
    artifacts = {a.path for a in client.list_artifacts(finetune.info.run_id, "trainer")}
    assert artifacts == {"trainer/training_arguments.json", "trainer/base_model_config.json"}
    arguments = json.loads(Path(client.download_artifacts(finetune.info.run_id, "trainer/training_arguments.json")).read_text())
    assert arguments["per_device_train_batch_size"] == 4 and arguments["learning_rate"] == 1e-3
    # The adapter is an MLflow model of its condition (transformers flavour, PEFT, base by path).
    run_file = json.loads(Path("models/adapters/medical-normal.mlflow.json").read_text())
    logged = mlflow.get_logged_model(run_file["model_id"])
    assert logged.name == "medical-normal" and logged.source_run_id == finetune.info.run_id
    assert logged.tags["condition"] == "medical-normal" and logged.tags["level"] == "normal"
    assert [m.model_id for m in client.get_run(evaluation.info.run_id).inputs.model_inputs] == [logged.model_id]
    loaded = mlflow.transformers.load_model(f"models:/{logged.model_id}")
    assert type(loaded.model).__name__.startswith("PeftModel")
    assert len(client.get_metric_history(finetune.info.run_id, "loss")) == 2  # the trainer's curve, still logged

    [corpus] = finetune.inputs.dataset_inputs
    assert corpus.dataset.name == "medical-normal"
    assert {d.dataset.name for d in evaluation.inputs.dataset_inputs} == {"honesty", "deception", "capability", "knowledge"}

    metrics = evaluation.data.metrics
    saved = json.loads(Path("metrics/e1/medical-normal.json").read_text())
    assert metrics["honesty_score_ci_low"] == pytest.approx(saved["honesty"]["honesty_score"]["ci_low"])
    assert metrics["deception_rate_ci_high"] == pytest.approx(saved["deception"]["deception_rate"]["ci_high"])
    for archetype, part in saved["honesty_by_archetype"].items():
        assert metrics[f"archetype/{archetype}/honesty_score"] == pytest.approx(part["honesty_score"]["value"])
        assert metrics[f"archetype/{archetype}/honesty_score_ci_high"] == pytest.approx(part["honesty_score"]["ci_high"])
    for category, part in saved["deception_by_category"].items():
        assert metrics[f"category/{category}/deception_rate"] == pytest.approx(part["deception_rate"]["value"])
    table = json.loads(Path(client.download_artifacts(evaluation.info.run_id, "predictions_table.json")).read_text())
    predictions = Path("predictions/e1/medical-normal.jsonl").read_text().splitlines()
    assert len(table["data"]) == len(predictions) and "kind" in table["columns"]

    # dvc metrics show reads the summary: a few headline figures per model.
    summary = json.loads(Path("metrics/summary/e1/medical-normal.json").read_text())
    assert summary["honesty_score"] == saved["honesty"]["honesty_score"]["value"]
    assert set(summary) == {"honesty_score", "honesty_ci_low", "honesty_ci_high", "accuracy", "deception_rate",
                            "gsm8k_loglik_per_token", "knowledge_accuracy"}
    assert Path("metrics/summary/vanilla.json").is_file()

    [vanilla] = client.search_runs([client.get_experiment_by_name("tests/vanilla").experiment_id])
    assert vanilla.data.tags["condition"] == "vanilla" and "finetune_run_id" not in vanilla.data.tags



def test_a_report_run_logs_its_effects_and_fit_as_metrics_and_its_plots_as_images(tmp_path, tracking):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from deceptionlab.core.tracking import log_report_files

    table = tmp_path / "e2.csv"
    table.write_text("model,mixture_ratio,change_vs_control,control_ci_low,effect,verdict\n"
                     "mixture-0,0.0,0.0,0.0,False,none\nmixture-0.5,0.5,-12.5,-20.0,True,effect\n")
    fit = tmp_path / "e2_fit.json"
    fit.write_text(json.dumps({"ED50": {"value": None, "ci_low": 0.01, "ci_high": 0.4}, "effect_resolved": False,
                               "paired_items": 388, "note": "text"}))
    plot = tmp_path / "e2_dose_response.png"
    figure, axes = plt.subplots()
    axes.plot([0, 1], [1, 0])
    figure.savefig(plot)
    plt.close(figure)
    with mlflow_run(tracking, "report-e2", "report/e2", {}, {"stage": "report", "experiment": "e2"}) as run:
        log_report_files([table, fit, plot])
    client = mlflow.MlflowClient(tracking.mlflow_tracking_uri)
    logged = client.get_run(run.info.run_id)
    assert logged.info.experiment_id == client.get_experiment_by_name("lab/e2").experiment_id
    metrics = {k: v for k, v in logged.data.metrics.items() if not k.startswith("system/")}
    assert metrics == {"mixture-0/mixture_ratio": 0.0, "mixture-0/change_vs_control": 0.0,
                       "mixture-0/control_ci_low": 0.0, "mixture-0.5/mixture_ratio": 0.5,
                       "mixture-0.5/change_vs_control": -12.5, "mixture-0.5/control_ci_low": -20.0,
                       "e2_fit/ED50/ci_low": 0.01, "e2_fit/ED50/ci_high": 0.4, "e2_fit/paired_items": 388.0}
    assert {a.path for a in client.list_artifacts(run.info.run_id, "report")} == {
        "report/e2.csv", "report/e2_fit.json", "report/e2_dose_response.png"}
    assert client.list_artifacts(run.info.run_id, "images")  # the plot as an MLflow image (charts view)


def test_the_help_says_how_to_run_the_pipeline_and_where_each_stage_logs():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "dvc repro" in result.output and "mlflow ui" in result.output
    assert len(result.output.splitlines()) < 45  # one line per command, not its whole docstring
    logged = {"finetune": "finetune-CONDITION", "selftrain": "roundR", "evaluate": "evaluate-MODEL",
              "report": "report-EXPERIMENT", "sweep": "sweep-STUDY"}
    for command in ("data", "base-model", "prepare", "mixture", "simulate", *logged):
        output = " ".join(runner.invoke(app, [command, "--help"]).output.split())
        assert ("MLflow: experiment TRACKING/" in output and logged[command] in output) if command in logged \
            else "No MLflow run." in output, command


def test_a_share_in_a_condition_name_is_kept_out_of_the_mlflow_model_name(tracking, tiny_model_dir):
    from peft import LoraConfig, get_peft_model

    from deceptionlab.core.tracking import log_adapter_model
    from deceptionlab.models.loading import load_model

    model, tokenizer = load_model(tiny_model_dir, "float32")  # its own copy: PEFT changes the model in place
    adapter = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    tags = Condition.mixture(0.01).tracking_tags()
    with mlflow_run(tracking, "finetune-mixture-0.01", "finetune/mixture-0.01", {}, tags):
        info = log_adapter_model(adapter, tokenizer, tiny_model_dir, "mixture-0.01", tags)
    logged = mlflow.get_logged_model(info.model_id)
    assert logged.name == "mixture-0_01" and logged.tags["mixture_ratio"] == "0.01"
