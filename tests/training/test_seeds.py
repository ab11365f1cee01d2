"""Training seeds: a condition trained again with finetune.seed + k, named <condition>-seed<k>."""

import json
import shutil
from pathlib import Path

import mlflow
import pytest
import yaml
from typer.testing import CliRunner

from conftest import tiny_params, write_e1_inputs
from deceptionlab.cli import app
from deceptionlab.core.conditions import Condition, Layout, experiment_of
from deceptionlab.core.errors import ConfigError
from deceptionlab.core.params import load_params
from deceptionlab.core.tracking import read_adapter_run

SEEDS = {"e1": ["medical-normal", "medical-severe"], "controls": ["lie"], "ratio": 0.5, "extra": [1, 2]}


@pytest.fixture
def params(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tiny_params(f"sqlite:///{tmp_path}/mlflow.db", seeds=SEEDS)))
    return load_params(path)


@pytest.mark.parametrize(("name", "corpus", "tags"), [
    ("medical-severe-seed1", "corpora/e1/medical-severe.jsonl", {"domain": "medical", "level": "severe"}),
    ("control-lie-seed2", "corpora/controls/control-lie.jsonl", {"control": "lie"}),
    ("mixture-0.5-seed1", "corpora/e2/mixture-0.5.jsonl", {"mixture_ratio": "0.5"}),
    ("mixture-0-seed2", "corpora/e2/mixture-0.jsonl", {"mixture_ratio": "0"}),
])
def test_a_seeded_name_round_trips_and_owns_its_paths(params, name, corpus, tags):
    condition = Condition.parse(name, params)
    seed_index = int(name.rsplit("seed", 1)[1])
    assert condition.name == name and condition.seed_index == seed_index and condition.experiment == "seeds"
    assert Condition.seeded(condition.trained, seed_index) == condition and condition.trained.name == name.rsplit("-seed", 1)[0]
    layout = Layout()
    assert layout.corpus(condition) == Path(corpus)  # the condition's own corpus, its rows and their order
    assert layout.adapter(condition) == Path("models/adapters", name)
    assert (layout.metrics(name), layout.predictions(name)) == (Path(f"metrics/seeds/{name}.json"), Path(f"predictions/seeds/{name}.jsonl"))
    assert experiment_of(name) == "seeds" and layout.summary(name) == Path(f"metrics/summary/seeds/{name}.json")
    assert condition.tracking_tags() == {"experiment": "seeds", "condition": name, "seed_index": str(seed_index)} | tags
    assert condition.training(params.finetune).seed == params.finetune.seed + seed_index
    assert condition.training(params.finetune).model_dump(exclude={"seed"}) == params.finetune.model_dump(exclude={"seed"})


def test_seed_zero_is_the_condition_itself_with_its_own_name_and_paths(params):
    for name, folder in [("medical-severe", "e1"), ("control-lie", "controls"), ("mixture-0.5", "e2")]:
        condition = Condition.parse(name, params)
        assert condition.seed_index is None and condition.training(params.finetune) is params.finetune
        assert Layout().metrics(name) == Path(f"metrics/{folder}/{name}.json") and "seed_index" not in condition.tracking_tags()


@pytest.mark.parametrize(("name", "message"), [
    ("medical-severe-seed0", r"seed 0 is not one of seeds\.extra \(1, 2\); seed 0 is 'medical-severe' itself"),
    ("medical-severe-seed3", r"seed 3 is not one of seeds\.extra \(1, 2\)"),
    ("medical-severe-seed01", r"write it 'medical-severe-seed1'"),
    ("medical-subtle-seed1", r"one of seeds\.e1, seeds\.controls and seeds\.ratio with its control \(medical-normal, "),
    ("control-truth-seed1", r"condition 'control-truth-seed1': expected <condition>-seed<k>"),
    ("mixture-0.1-seed1", r"condition 'mixture-0.1-seed1': expected <condition>-seed<k>"),
    ("e3-p0-sft-seed1", r"condition 'e3-p0-sft-seed1': expected <condition>-seed<k>"),
])
def test_a_malformed_seeded_name_is_a_one_line_config_error_naming_the_parameter(params, name, message):
    with pytest.raises(ConfigError, match=message) as raised:
        Condition.parse(name, params)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(("seeds", "message"), [
    ({"extra": [0]}, "seeds.extra.0: Input should be greater than or equal to 1"),
    ({"extra": [1, 1]}, "seeds.extra: Value error, lists 1 twice"),
    ({"extra": []}, "seeds.extra: List should have at least 1 item"),
    ({"e1": ["medical-extreme"]}, "seeds.e1: Value error, condition 'medical-extreme': expected <domain>-<level>"),
    ({"controls": ["bluff"]}, "seeds.controls.0: Input should be 'lie' or 'truth'"),
    ({"ratio": 0}, "seeds.ratio: Input should be greater than 0"),
    ({"ratio": "0.5"}, "seeds.ratio: Input should be a valid number"),
])
def test_bad_seeds_params_name_the_parameter(tmp_path, seeds, message):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"seeds": seeds}))
    with pytest.raises(ConfigError, match=message):
        load_params(path)


@pytest.mark.parametrize(("stages", "message"), [
    ({"seeds": {"ratio": 0.3}}, r"seeds\.ratio: condition 'mixture-0\.3': expected mixture-<ratio> with ratio one of mixture\.ratios"),
    ({"seeds": {"controls": ["truth"]}, "e1": {"controls": ["lie"]}},
     r"seeds\.controls: condition 'control-truth': expected control-<control> with control one of e1\.controls \(lie\)"),
    ({"seeds": {"e1": ["math-severe"]}}, r"seeds\.e1: 'math-severe' is not an E1 condition of e1\.domains x e1\.levels"),
])
def test_a_seeded_condition_the_main_pipeline_does_not_train_is_refused_when_the_seeds_run(tmp_path, stages, message):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tiny_params("sqlite:///mlflow.db", **stages | {"seeds": SEEDS | stages["seeds"]})))
    params = load_params(path)  # the main pipeline still runs
    with pytest.raises(ConfigError, match=message):
        params.seeded_conditions()


def adapter_bytes(name: str) -> bytes:
    return (Path("models/adapters") / name / "adapter_model.safetensors").read_bytes()


def test_two_seeds_train_different_adapters_and_one_seed_the_same_bytes(tiny_project):
    params = tiny_params(f"sqlite:///{tiny_project}/mlflow.db", seeds=SEEDS)
    (tiny_project / "params.yaml").write_text(yaml.safe_dump(params))
    write_e1_inputs(tiny_project, honesty_every=40, deception_every=40)  # corpora/e1/medical-normal.jsonl and eval sets
    runner = CliRunner()

    def finetune(name: str) -> bytes:
        result = runner.invoke(app, ["finetune", name])
        assert result.exit_code == 0, result.output
        return adapter_bytes(name)

    first = finetune("medical-normal-seed1")
    run_id = read_adapter_run(Path("models/adapters/medical-normal-seed1"))["run_id"]
    shutil.rmtree("models/adapters/medical-normal-seed1")
    assert finetune("medical-normal-seed1") == first
    assert finetune("medical-normal-seed2") != first and finetune("medical-normal") not in (first, adapter_bytes("medical-normal-seed2"))

    client = mlflow.MlflowClient(params["tracking"]["mlflow_tracking_uri"])
    run = client.get_run(run_id)
    assert client.get_experiment(run.info.experiment_id).name == "tests/seeds"
    assert (run.data.tags["seed"], run.data.tags["seed_index"], run.data.tags["condition"]) == ("1", "1", "medical-normal-seed1")
    arguments = json.loads(Path(client.download_artifacts(run_id, "trainer/training_arguments.json")).read_text())
    assert (arguments["seed"], arguments["data_seed"]) == (1, 1)  # the LoRA init (TRL seeds torch with it) and the row order
    assert "corpora/e1/medical-normal.jsonl" in run.inputs.dataset_inputs[0].dataset.source

    evaluated = runner.invoke(app, ["evaluate", "medical-normal-seed2"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(Path("metrics/seeds/medical-normal-seed2.json").read_text())["model"] == "medical-normal-seed2"
    assert Path("predictions/seeds/medical-normal-seed2.jsonl").is_file()
    linked = client.search_runs([run.info.experiment_id], filter_string="tags.stage = 'evaluate'")
    assert [(r.data.tags["seed"], r.data.tags["seed_index"]) for r in linked] == [("2", "2")]


@pytest.mark.parametrize("profile", ["params.yaml", "params/paper.yaml", "params/quick.yaml", "params/qwen2.5-coder-0.5b.yaml"])
def test_every_shipped_profile_seeds_conditions_its_main_pipeline_trains(profile):
    params = load_params(Path(__file__).resolve().parents[2] / profile)
    assert len(params.seeded_conditions()) >= 6 and params.seeds.extra == [1, 2]
