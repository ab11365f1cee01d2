"""params: strict types, lists without repeats, and code defaults equal to params.yaml, so a file that
leaves a setting out runs the default profile, not a different one."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deceptionlab.core.errors import ConfigError
from deceptionlab.core.params import Params, load_params

ROOT = Path(__file__).resolve().parents[2]


def test_every_code_default_is_the_value_in_params_yaml():
    assert Params().model_dump() == load_params(ROOT / "params.yaml").model_dump()


@pytest.mark.parametrize("profile", ["params.yaml", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "params").glob("*.yaml"))])
def test_every_shipped_profile_loads(profile):
    load_params(ROOT / profile)


def test_a_section_left_out_takes_the_default_profile(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"e1": {"domains": ["math"]}}))
    params = load_params(path)
    assert params.finetune == load_params(ROOT / "params.yaml").finetune
    assert params.e1.domains == ["math"] and params.e1.levels == ["normal", "subtle", "severe"]


@pytest.mark.parametrize(("text", "message"), [
    ("prepare: {examples_per_corpus: true}", "prepare.examples_per_corpus: Input should be a valid integer"),
    ("finetune: {batch_size: 2.5}", "finetune.batch_size: Input should be a valid integer"),
    ("finetune: {batch_size: '8'}", "finetune.batch_size: Input should be a valid integer"),
    ("finetune: {learning_rate: .inf}", "finetune.learning_rate: Input should be a finite number"),
    ("finetune: {learning_rate: .nan}", "finetune.learning_rate: Input should be a finite number"),
    ("finetune: {lora_dropout: false}", "finetune.lora_dropout: Input should be a valid number"),
    ("finetune: {activation_checkpointing: 1}", "finetune.activation_checkpointing: Input should be a valid boolean"),
    ("evaluate: {confidence_level: '0.9'}", "evaluate.confidence_level: Input should be a valid number"),
    ("e3: {temperature: -.inf}", "e3.temperature: Input should be a finite number"),
    ("report: {power: .nan}", "report.power: Input should be a finite number"),
    ("e1: {domains: []}", "e1.domains: List should have at least 1 item"),
    ("e1: {domains: [math, math]}", "e1.domains: Value error, lists 'math' twice"),
    ("e1: {levels: [severe, subtle, severe]}", "e1.levels: Value error, lists 'severe' twice"),
    ("e1: {controls: [lie, lie]}", "e1.controls: Value error, lists 'lie' twice"),
    ("finetune: {target_modules: []}", "finetune.target_modules: List should have at least 1 item"),
    ("finetune: {target_modules: [q_proj, q_proj]}", "finetune.target_modules: Value error, lists 'q_proj' twice"),
    ("prepare: {honesty_archetypes: [statistic]}", "prepare.honesty_archetypes.0: Input should be"),
    ("sweep: {search_space: {lora_r: [8, 8]}}", "sweep.search_space.lora_r: Value error, lists 8 twice"),
    ("sweep: {search_space: {seed: []}}", "sweep.search_space.seed: List should have at least 1 item"),
    ("finetune: {seed: " + "7" * 5000 + "}", "not readable YAML (Exceeds the limit (4300 digits)"),
    ("[" * 5000 + "]" * 5000, "not readable YAML (nested too deeply)"),
    ("", "empty"),
])
def test_loose_values_are_refused_with_the_parameter_named(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_params(path)
    assert message in str(raised.value) and str(raised.value).startswith(str(path)) and "\n" not in str(raised.value)


def test_numbers_in_exponent_form_are_numbers_as_dvc_reads_them(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("finetune: {learning_rate: 1e-4, epochs: 2}\nsweep: {search_space: {learning_rate: {low: 1e-5, high: 3E-4}}}\n")
    params = load_params(path)
    assert params.finetune.learning_rate == 1e-4 and params.finetune.epochs == 2.0
    assert (params.sweep.search_space.learning_rate.low, params.sweep.search_space.learning_rate.high) == (1e-5, 3e-4)


def test_a_bool_for_an_integer_is_a_one_line_cli_error(tmp_path):
    (tmp_path / "params.yaml").write_text("prepare: {examples_per_corpus: true}\n")
    result = subprocess.run([sys.executable, "-m", "deceptionlab.cli", "prepare"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: params.yaml: prepare.examples_per_corpus: Input should be a valid integer"
