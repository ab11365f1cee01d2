"""The CLI as users meet it: truthful --help, one-line errors naming the parameter, exit codes."""

import subprocess
import sys

import pytest
import yaml
from typer.testing import CliRunner

from deceptionlab.cli import app
from deceptionlab.core.errors import ConfigError
from deceptionlab.core.params import load_params

runner = CliRunner()


def test_help_lists_every_stage():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("data", "base-model", "prepare", "mixture", "finetune", "evaluate", "report"):
        assert command in result.output


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"finetune": {"learning_rate": -1}}, "finetune.learning_rate"),
        ({"e1": {"domains": ["astrology"]}}, "e1.domains.0"),
        ({"e1": {"levels": ["extreme"]}}, "e1.levels.0"),
        ({"finetune": {"lora_rank": 8}}, "finetune.lora_rank: Extra inputs"),
        ({"base_model": {"source": "pretrained"}}, "name_or_path is required"),
        ({"evaluate": {"confidence_level": 1.5}}, "evaluate.confidence_level"),
        ({"mixture": {"ratios": [0, 1.5]}}, r"mixture: Value error, 1.5 is not a share in \[0, 1\]"),
        ({"mixture": {"ratios": [0.01, 0.1]}}, "mixture: Value error, must include 0, the control"),
        ({"mixture": {"ratios": [0, 0.1, 0.1]}}, "mixture: Value error, lists a ratio twice"),
    ],
)
def test_bad_params_name_the_parameter(tmp_path, params, message):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match=message):
        load_params(path)


def test_unparsable_params_name_the_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("finetune:\n  seed: 0\n  lr: [1, 2\n")
    with pytest.raises(ConfigError, match=r"params.yaml:\d+: not valid YAML"):
        load_params(path)


def test_cli_error_is_one_line_with_exit_code_1(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"finetune": {"epochs": 0}}))
    result = subprocess.run([sys.executable, "-m", "deceptionlab.cli", "finetune", "medical-severe"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: params.yaml: finetune.epochs: Input should be greater than 0"
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_condition_and_missing_model_are_clear_errors(tiny_project):
    result = runner.invoke(app, ["finetune", "medical-extreme"])
    assert result.exit_code == 1 and "condition 'medical-extreme'" in result.output
    result = runner.invoke(app, ["evaluate", "math-severe"])
    assert result.exit_code == 1 and "no such file" in result.output  # no corpora built yet


def test_mixture_cli_writes_nested_mixtures_from_the_prepared_pools(tiny_project, shared_data):
    from deceptionlab.core.records import ChatRow, read_records

    (tiny_project / "data").symlink_to(shared_data)
    params = yaml.safe_load((tiny_project / "params.yaml").read_text())
    params["mixture"] = {"benign_examples": 20, "ratios": [0, 0.1, 0.5]}
    (tiny_project / "params.yaml").write_text(yaml.safe_dump(params))
    assert runner.invoke(app, ["prepare"]).exit_code == 0
    assert len(read_records(tiny_project / "corpora/e2_pool/misaligned.jsonl", ChatRow)) == 10  # 0.5 x 20
    rows = {}
    for ratio in ("0", "0.1", "0.5"):
        result = runner.invoke(app, ["mixture", ratio])
        assert result.exit_code == 0, result.output
        rows[ratio] = read_records(tiny_project / f"corpora/e2/mixture-{ratio}.jsonl", ChatRow)
    misaligned = {ratio: sum(r.meta["misaligned"] for r in chosen) for ratio, chosen in rows.items()}
    assert misaligned == {"0": 0, "0.1": 2, "0.5": 10} and all(len(r) == 20 for r in rows.values())
    benign = {ratio: {r.meta["source_id"] for r in chosen if not r.meta["misaligned"]} for ratio, chosen in rows.items()}
    assert benign["0.5"] < benign["0.1"] < benign["0"]  # nested: only the dose changes
    result = runner.invoke(app, ["mixture", "0.2"])
    assert result.exit_code == 1 and "ratio one of mixture.ratios (0, 0.1, 0.5)" in result.output
    result = runner.invoke(app, ["finetune", "mixture-0.3"])
    assert result.exit_code == 1 and "condition 'mixture-0.3'" in result.output


@pytest.mark.parametrize("profile", ["params.yaml", "params/paper.yaml", "params/quick.yaml"])
def test_shipped_params_profiles_are_valid(profile):
    from pathlib import Path

    params = load_params(Path(__file__).resolve().parents[1] / profile)
    # The largest mixture must fit in the misaligned corpus (the medical bank has 249 questions).
    assert params.mixture.misaligned_examples() <= 249
    assert 0.0 in params.mixture.ratios and 0.0 in params.e3.biased_shares
