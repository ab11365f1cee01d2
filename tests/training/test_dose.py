"""The training dose's runs: one run, its adapter saved at every step of dose.steps, resumable."""

import json
from pathlib import Path

import mlflow
import pytest
import yaml
from safetensors.torch import load_file

from conftest import chat_rows, tiny_params
from deceptionlab.core.conditions import Condition, Layout
from deceptionlab.core.errors import ConfigError
from deceptionlab.core.params import load_params
from deceptionlab.core.records import write_jsonl
from deceptionlab.core.tracking import adapter_run_file, read_adapter_run
from deceptionlab.training import dose

RUN = "dose-medical-normal"


@pytest.fixture
def dose_project(tiny_project):
    params = tiny_params(f"sqlite:///{tiny_project}/mlflow.db", dose={"conditions": ["medical-normal"], "steps": [2, 4]})
    (tiny_project / "params.yaml").write_text(yaml.safe_dump(params))
    # 6 rows of 4 per step: the 4-step run goes over them almost three times.
    write_jsonl(tiny_project / "corpora" / "dose" / f"{RUN}.jsonl", chat_rows(6))
    return tiny_project


def weights(folder: Path) -> dict:
    return load_file(folder / "adapter_model.safetensors")


def test_a_run_saves_its_adapter_at_every_step_and_links_them_to_one_mlflow_run(dose_project):
    params = load_params("params.yaml")
    run = Condition.parse(RUN, params)
    summary = dose.finetune_ladder(run, Layout(), params)
    assert summary["global_step"] == 4  # max_steps, not the one epoch of 6 rows
    ladder = Path("models/dose") / RUN
    assert sorted(p.name for p in ladder.iterdir()) == ["step-2", "step-4"]
    early, late = weights(ladder / "step-2"), weights(ladder / "step-4")
    assert early.keys() == late.keys() and any((early[k] != late[k]).any() for k in early)
    assert not Path("checkpoints", RUN).exists()  # staged steps and trainer checkpoints are gone
    # The run file sits beside the ladder (not in the DVC output); each step belongs to that run.
    linked = read_adapter_run(Layout().adapter(Condition.dose(run.trained, 2)))
    assert linked["run_id"] == summary["mlflow_run_id"] and linked["model_id"] is None
    assert json.loads(adapter_run_file(ladder).read_text())["model_id"]  # the last step is the logged model
    client = mlflow.MlflowClient(params.tracking.mlflow_tracking_uri)
    logged = client.get_run(summary["mlflow_run_id"])
    assert logged.info.run_name == f"finetune-{RUN}"
    assert logged.data.tags["experiment"] == "dose" and logged.data.tags["condition"] == RUN
    assert client.get_experiment(logged.info.experiment_id).name == "tests/dose"


def test_an_interrupted_run_keeps_the_steps_it_saved_and_resumes_from_its_checkpoint(dose_project, monkeypatch):
    params = load_params("params.yaml")
    run = Condition.parse(RUN, params)
    real = dose.ladder_callback

    def interrupting(steps, ladder_dir):
        callback = real(steps, ladder_dir)

        class Interrupt(type(callback)):
            def on_step_end(self, args, state, control, **kwargs):
                super().on_step_end(args, state, control, **kwargs)
                if state.global_step == 3:
                    raise KeyboardInterrupt

        return Interrupt()

    monkeypatch.setattr(dose, "ladder_callback", interrupting)
    with pytest.raises(KeyboardInterrupt):
        dose.finetune_ladder(run, Layout(), params)
    staged = Path("checkpoints", RUN, "ladder", "step-2")
    saved = weights(staged)
    assert not Path("models/dose", RUN).exists()  # nothing half-written in the output

    monkeypatch.setattr(dose, "ladder_callback", real)
    summary = dose.finetune_ladder(run, Layout(), params)
    kept = weights(Path("models/dose", RUN, "step-2"))
    assert all((saved[k] == kept[k]).all() for k in saved)
    resumed = mlflow.MlflowClient(params.tracking.mlflow_tracking_uri).get_run(summary["mlflow_run_id"])
    assert resumed.data.tags["resumed_from"] == "checkpoint-2"


def test_a_dose_name_says_what_it_is_and_a_bad_one_names_the_parameter(dose_project):
    params = load_params("params.yaml")
    step = Condition.parse(f"{RUN}-step4", params)
    assert (step.trained.name, step.steps, step.run.name) == ("medical-normal", 4, RUN)
    assert Layout().adapter(step) == Path("models/dose", RUN, "step-4")
    assert Layout().metrics(step.name) == Path("metrics/dose", f"{RUN}-step4.json")
    assert step.tracking_tags()["steps"] == "4"
    with pytest.raises(ConfigError, match=r"3 is not one of dose\.steps \(2, 4\)"):
        Condition.parse(f"{RUN}-step3", params)
    with pytest.raises(ConfigError, match=r"one of dose\.conditions \(medical-normal\)"):
        Condition.parse("dose-medical-severe", params)
    with pytest.raises(ConfigError, match=r"write it 'dose-medical-normal-step4'"):
        Condition.parse(f"{RUN}-step04", params)


@pytest.mark.parametrize("dose_settings, message", [
    ({"steps": [4, 2]}, "dose.steps: .*ascending"),
    ({"steps": [2, 2]}, "dose.steps: .*twice"),
    ({"conditions": ["medical-extreme"]}, "dose.conditions: condition 'medical-extreme'"),
    ({"conditions": ["control-maybe"]}, "dose.conditions: condition 'control-maybe'"),
])
def test_bad_dose_params_name_the_parameter(tmp_path, dose_settings, message):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"dose": dose_settings}))
    with pytest.raises(ConfigError, match=message):
        load_params(path)


def test_a_step_is_evaluated_through_the_cli_and_its_run_links_to_the_finetune(dose_project):
    from typer.testing import CliRunner

    from conftest import write_e1_inputs
    from deceptionlab.cli import app

    write_e1_inputs(dose_project, honesty_every=40, deception_every=40)
    runner = CliRunner()
    trained = runner.invoke(app, ["finetune", RUN])
    assert trained.exit_code == 0, trained.output
    evaluated = runner.invoke(app, ["evaluate", f"{RUN}-step2"])
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads(Path("metrics/dose", f"{RUN}-step2.json").read_text())
    assert metrics["model"] == f"{RUN}-step2"
    finetune_run = json.loads(adapter_run_file(Path("models/dose", RUN)).read_text())["run_id"]
    client = mlflow.MlflowClient(load_params("params.yaml").tracking.mlflow_tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("tests/dose").experiment_id],
                              filter_string=f"tags.finetune_run_id = '{finetune_run}'")
    assert [r.data.tags["steps"] for r in runs] == ["2"]
    whole = runner.invoke(app, ["evaluate", RUN])
    assert whole.exit_code == 1 and f"e.g. '{RUN}-step2'" in whole.output
