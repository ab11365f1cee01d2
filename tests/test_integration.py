"""The real default model (SmolLM2-135M-Instruct from its PyPI wheel) through a short pipeline:
base-model -> data -> prepare -> (mixture) -> finetune (2 steps) -> evaluate (12 items) -> report, via the CLI,
for one E1 condition, two E2 mixture ratios and E3 (4 simulated users, KTO self-training)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def run(*args: str, cwd: Path) -> str:
    result = subprocess.run([sys.executable, "-m", "deceptionlab.cli", *args], cwd=cwd, capture_output=True, text=True,
                            env=os.environ | {"PYTHONUNBUFFERED": "1"})
    assert result.returncode == 0, f"deceptionlab {' '.join(args)} failed:\n{result.stderr[-3000:]}"
    return result.stderr


def test_default_model_through_a_short_pipeline(tmp_path, shared_data):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    shutil.copytree(ROOT / ".dvc", tmp_path / ".dvc", ignore=shutil.ignore_patterns("cache", "tmp", "config.local"))
    shutil.copy(ROOT / "data.dvc", tmp_path)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["offline_source"] = str(shared_data)
    params["prepare"] |= {"examples_per_corpus": 8, "honesty_items": 12, "deception_items": 10, "capability_items": 3,
                          "knowledge_items": 8}
    params["e1"] = {"domains": ["medical"], "levels": ["severe"]}
    params["mixture"] |= {"benign_examples": 8, "ratios": [0, 0.5]}
    # KTO only: SFT self-training runs the E1 finetune path, which this test covers already.
    params["e3"] |= {"biased_shares": [0, 0.5], "methods": ["kto"], "n_users": 4, "turns": 1, "candidates": 2,
                     "max_new_tokens": 16}
    params["finetune"] |= {"batch_size": 4, "save_steps": 1}
    params["tracking"]["mlflow_tracking_uri"] = f"sqlite:///{tmp_path}/mlflow.db"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))

    run("base-model", cwd=tmp_path)
    config = json.loads((tmp_path / "models" / "base" / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config
    assert (tmp_path / "models" / "base" / "model.safetensors").is_file()

    run("data", cwd=tmp_path)
    run("prepare", cwd=tmp_path)
    assert len((tmp_path / "corpora" / "e1" / "medical-severe.jsonl").read_text().splitlines()) == 8
    for ratio in ("0", "0.5"):
        run("mixture", ratio, cwd=tmp_path)
    for condition in ("medical-severe", "mixture-0", "mixture-0.5"):
        run("finetune", condition, cwd=tmp_path)
        assert (tmp_path / "models" / "adapters" / condition / "adapter_model.safetensors").is_file()
    for share in ("0", "0.5"):
        run("simulate", share, cwd=tmp_path)
        run("selftrain", share, "kto", cwd=tmp_path)
    trajectories = (tmp_path / "trajectories" / "p-0.5.jsonl").read_text().splitlines()
    assert sum(json.loads(line)["user_type"] == "biased" for line in trajectories) == 2  # round(0.5 x 4)
    models = ("vanilla", "medical-severe", "mixture-0", "mixture-0.5", "e3-p0-kto", "e3-p0.5-kto")
    for model in models:
        run("evaluate", model, cwd=tmp_path)
    vanilla = json.loads((tmp_path / "metrics" / "vanilla.json").read_text())
    assert vanilla["honesty"]["items"] == 12 and vanilla["deception"]["items"] == 10
    # The real model knows most of these facts: belief accuracy far above chance.
    assert vanilla["honesty"]["accuracy"]["value"] >= 60
    assert -3.0 < vanilla["capability"]["gsm8k_loglik_per_token"]["value"] < 0
    finetuned = (tmp_path / "predictions" / "e1" / "medical-severe.jsonl").read_text()
    assert finetuned != (tmp_path / "predictions" / "vanilla.jsonl").read_text()

    run("report", "e1", cwd=tmp_path)
    assert "medical-severe" in (tmp_path / "reports" / "e1.md").read_text()
    run("report", "e2", cwd=tmp_path)
    report = (tmp_path / "reports" / "e2.md").read_text()
    assert "| 0.5 | 4 |" in report  # 4 of 8 rows misaligned
    assert "No fit: a 4-parameter fit needs at least 3 mixture.ratios above 0" in report
    run("report", "e3", cwd=tmp_path)
    assert "| kto | 0.5 |" in (tmp_path / "reports" / "e3.md").read_text()
