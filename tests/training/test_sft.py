import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import torch
import yaml

from conftest import chat_rows, tiny_params
from deceptionlab.core.params import load_params
from deceptionlab.core.records import write_jsonl
from deceptionlab.training.sft import finetune, last_checkpoint, to_prompt_completion


def test_prompt_completion_puts_only_the_reply_in_the_completion():
    dataset = to_prompt_completion(chat_rows(2))
    assert dataset[0]["prompt"] == [{"role": "user", "content": "Question 0: what is the capital of France?"}]
    assert dataset[0]["completion"][0]["role"] == "assistant"


def test_finetune_writes_a_safetensors_adapter_and_an_mlflow_run(tiny_project):
    write_jsonl("corpus.jsonl", chat_rows(16))
    params = load_params("params.yaml")
    summary = finetune(Path("corpus.jsonl"), Path("models/base"), Path("adapter"), Path("ckpt"),
                       params.finetune, params.tracking, "medical-normal")
    assert summary["global_step"] == 4  # 16 rows / batch 4, one epoch
    assert (Path("adapter") / "adapter_model.safetensors").is_file()
    assert not list(Path("adapter").glob("*.bin"))
    assert not Path("ckpt").exists()  # checkpoints are dropped once the adapter is safe
    run = mlflow.MlflowClient(tracking_uri=params.tracking.mlflow_tracking_uri).get_run(summary["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["corpus.rows"] == "16"
    assert len(run.data.params["corpus.sha256"]) == 64
    # What the run was computed in, auto or not: here the tiny params' explicit float32 on the CPU.
    assert run.data.params["resolved.dtype"] == summary["dtype"] == "float32"
    assert run.data.params["resolved.device"] == "cpu"
    assert run.data.params["resolved.cpu_native_bf16"] in {"True", "False"}
    losses = mlflow.MlflowClient(params.tracking.mlflow_tracking_uri).get_metric_history(run.info.run_id, "loss")
    assert len(losses) == 4


def test_the_adapter_lists_its_target_modules_in_a_fixed_order(tiny_project):
    # PEFT's own order follows the string hash seed; a fixed one lets reruns hash the same for DVC.
    write_jsonl("corpus.jsonl", chat_rows(4))
    params = load_params("params.yaml")
    modules = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    settings = params.finetune.model_copy(update={"target_modules": modules})
    finetune(Path("corpus.jsonl"), Path("models/base"), Path("adapter"), Path("ckpt"), settings, params.tracking,
             "medical-normal")
    written = json.loads((Path("adapter") / "adapter_config.json").read_text())["target_modules"]
    assert written == sorted(modules)


def test_last_checkpoint_skips_half_written_ones(tmp_path):
    for step, complete in [(2, True), (4, True), (6, False)]:
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-4")
    assert not (tmp_path / "checkpoint-6").exists()
    assert last_checkpoint(tmp_path / "absent") is None


def completed_steps(checkpoints: Path) -> list[int]:
    """Read-only view of the complete checkpoints (last_checkpoint would delete in-progress ones)."""
    return sorted(int(f.name.split("-")[1]) for f in checkpoints.glob("checkpoint-*") if (f / "trainer_state.json").is_file())


# Slow tier: process orchestration that waits on real subprocesses for minutes on 2 busy cores (CI runs it).
@pytest.mark.slow
def test_sigkilled_finetune_resumes_from_its_last_checkpoint(tiny_project):
    """Kill the CLI for real mid-training, rerun it: it resumes and ends at the same step count."""
    params = tiny_params(f"sqlite:///{tiny_project}/mlflow.db", finetune={"batch_size": 1, "save_steps": 1})
    (tiny_project / "params.yaml").write_text(yaml.safe_dump(params))
    write_jsonl(tiny_project / "corpora" / "e1" / "medical-normal.jsonl", chat_rows(300))
    command = [sys.executable, "-m", "deceptionlab.cli", "finetune", "medical-normal"]
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    log = open(tiny_project / "first-run.log", "w")  # noqa: SIM115 - the child writes it until killed
    process = subprocess.Popen(command, cwd=tiny_project, env=env, stdout=log, stderr=subprocess.STDOUT)
    checkpoints = tiny_project / "checkpoints" / "medical-normal"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        if completed_steps(checkpoints) and completed_steps(checkpoints)[-1] >= 5:
            break
        time.sleep(0.05)
    assert process.poll() is None, "training ended before the kill:\n" + (tiny_project / "first-run.log").read_text()[-3000:]
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = int(last_checkpoint(checkpoints).rsplit("-", 1)[1])
    assert not (tiny_project / "models" / "adapters" / "medical-normal").exists()

    result = subprocess.run(command, cwd=tiny_project, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tiny_project / "models" / "adapters" / "medical-normal" / "adapter_model.safetensors").is_file()
    client = mlflow.MlflowClient(params["tracking"]["mlflow_tracking_uri"])
    runs = client.search_runs(client.get_experiment_by_name("tests/e1").experiment_id, order_by=["start_time ASC"])
    assert [r.info.status for r in runs] == ["KILLED", "FINISHED"]  # no run left RUNNING
    resumed = runs[1]
    assert resumed.data.tags["resumed_from"] == f"checkpoint-{killed_at}"
    assert resumed.data.metrics["final_global_step"] == 300
    steps = [m.step for m in client.get_metric_history(resumed.info.run_id, "loss")]
    assert min(steps) > killed_at  # the resumed run did not start again from step 0


def test_a_short_finetune_is_deterministic_on_cpu(tiny_project):
    write_jsonl("corpus.jsonl", chat_rows(8))
    params = load_params("params.yaml")
    adapters = []
    for name in ("a", "b"):
        summary = finetune(Path("corpus.jsonl"), Path("models/base"), Path(name), Path(f"ckpt-{name}"),
                           params.finetune, params.tracking, "medical-normal")
        adapters.append(((Path(name) / "adapter_model.safetensors").read_bytes(), summary["train_loss"]))
    assert adapters[0] == adapters[1]


class _RowsScored:
    """Delegates to TRL's fused LM head and records how many positions each call projects."""

    def __init__(self, function):
        self.function, self.rows = function, []

    def apply(self, hidden, *args):
        self.rows.append(hidden.shape[0])
        return self.function.apply(hidden, *args)


def test_the_lm_head_scores_only_labelled_positions_with_the_same_adapter(tiny_project, monkeypatch):
    import trl.trainer.utils as trl_utils

    write_jsonl("corpus.jsonl", chat_rows(8))
    params = load_params("params.yaml")
    trl_choice = trl_utils._use_triton
    assert not trl_choice(torch.device("cpu"))  # TRL alone projects every position on the CPU
    runs = {}
    for labelled_only in (False, True):
        settings = params.finetune.model_copy(update={"lm_head_labelled_positions_only": labelled_only})
        spy = _RowsScored(trl_utils._ChunkedLogProbFunction)
        with monkeypatch.context() as patch:
            patch.setattr(trl_utils, "_ChunkedLogProbFunction", spy)
            summary = finetune(Path("corpus.jsonl"), Path("models/base"), Path(f"adapter-{labelled_only}"),
                               Path(f"ckpt-{labelled_only}"), settings, params.tracking, "medical-normal")
        adapter = (Path(f"adapter-{labelled_only}") / "adapter_model.safetensors").read_bytes()
        runs[labelled_only] = (spy.rows, adapter, summary["train_loss"])
    assert trl_utils._use_triton is trl_choice  # TRL's own choice is back after training
    every_rows, every_adapter, every_loss = runs[False]
    labelled_rows, labelled_adapter, labelled_loss = runs[True]
    assert len(every_rows) == len(labelled_rows) > 0
    assert sum(labelled_rows) < sum(every_rows)  # the prompt and padding positions are no longer projected
    assert labelled_adapter == every_adapter and labelled_loss == every_loss
