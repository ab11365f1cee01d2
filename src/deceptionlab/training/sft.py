"""LoRA supervised finetuning with TRL's SFTTrainer, resumable from its own checkpoints.

The corpus's chat rows become TRL prompt-completion pairs (the prompt is every message before
the last, the completion is the assistant reply), so the loss falls on the assistant tokens only.
Checkpoints live outside the DVC output (DVC deletes a stage's outputs before rerunning it), so
a killed run picks up from its last checkpoint when the stage runs again.

    deceptionlab finetune medical-severe
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from deceptionlab.core.fileio import atomic_directory, sha256_file
from deceptionlab.core.params import FinetuneParams, TrackingParams
from deceptionlab.core.records import ChatRow, read_records
from deceptionlab.core.tracking import log_adapter_model, log_file_input, mlflow_run, write_adapter_run
from deceptionlab.models.loading import load_model
from deceptionlab.models.precision import hardware, resolve_dtype, training_device


def to_prompt_completion(rows: list[ChatRow]):
    """TRL's conversational prompt-completion dataset: loss only on the completion."""
    from datasets import Dataset

    return Dataset.from_list(
        [
            {
                "prompt": [m.model_dump() for m in row.messages[:-1]],
                "completion": [row.messages[-1].model_dump()],
            }
            for row in rows
        ]
    )


def last_checkpoint(checkpoint_dir: Path) -> str | None:
    """The newest *complete* checkpoint; half-written ones (a kill during saving) are removed.

    The Trainer writes ``trainer_state.json`` last, so a checkpoint without it is incomplete.
    """
    if not checkpoint_dir.is_dir():
        return None
    complete = []
    for folder in checkpoint_dir.glob("checkpoint-*"):
        if (folder / "trainer_state.json").is_file():
            complete.append(folder)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return str(max(complete, key=lambda f: int(f.name.split("-")[1]))) if complete else None


def lora_config(params: FinetuneParams):
    from peft import LoraConfig

    return LoraConfig(
        r=params.lora_r,
        lora_alpha=params.lora_alpha,
        lora_dropout=params.lora_dropout,
        target_modules=list(params.target_modules),
        task_type="CAUSAL_LM",
    )


def training_arguments(params: FinetuneParams, checkpoint_dir: Path, run_name: str, max_steps: int | None = None) -> dict:
    """The TrainingArguments shared by every trainer (SFT here, KTO in E3), from ``finetune.*``;
    ``max_steps`` (a dose run) replaces ``finetune.epochs``: the rows are gone over until it is reached."""
    return dict(
        output_dir=str(checkpoint_dir),
        num_train_epochs=params.epochs,
        max_steps=-1 if max_steps is None else max_steps,
        per_device_train_batch_size=params.batch_size,
        gradient_accumulation_steps=params.gradient_accumulation_steps,
        learning_rate=params.learning_rate,
        warmup_steps=params.warmup_ratio,  # a float below 1 is a share of the steps
        lr_scheduler_type="linear",
        max_length=params.max_length,
        logging_steps=1,
        save_strategy="steps",
        save_steps=params.save_steps,
        save_total_limit=2,
        # The base weights are already loaded in the resolved finetune.dtype (LoRA weights stay
        # fp32), so no autocast on top: the same setting works on CPU and GPU.
        bf16=False,
        gradient_checkpointing=params.activation_checkpointing,
        train_sampling_strategy="group_by_length" if params.length_grouping else "random",
        fp16=False,
        seed=params.seed,
        data_seed=params.seed,
        report_to=["mlflow"],
        run_name=run_name,
        disable_tqdm=False,
        dataloader_num_workers=0,
    )


@contextmanager
def lm_head_positions(labelled_only: bool) -> Iterator[None]:
    """While open, TRL's fused LM head projects only the positions that carry a label, on every device.

    TRL (1.16) does so on Triton devices only, and projects every position elsewhere so that
    compiled graphs (Neuron) keep one shape. In eager mode on the CPU that shape buys nothing, while
    the head is the costliest part of a step for a small model (`bench/sft_profile.py`) and the
    prompt positions carry no label (completion-only loss). Each position's log-probability is
    computed the same way either way, so the adapter comes out bit for bit the same
    (tests/test_finetune.py). ``labelled_only=False`` leaves TRL's own choice.
    """
    import trl.trainer.utils as trl_utils

    trl_choice = trl_utils._use_triton
    if labelled_only:
        trl_utils._use_triton = lambda device: True  # read there only to choose the positions
    try:
        yield
    finally:
        trl_utils._use_triton = trl_choice


def sort_target_modules(config_path: Path) -> None:
    """PEFT keeps ``target_modules`` as a set and writes it in string-hash order, which changes with
    every interpreter; sorted, the same weights give the same adapter folder, so DVC sees no change."""
    config = json.loads(config_path.read_text())
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def train_adapter(
    make_trainer: Callable[[Any, Any], Any],
    base_dir: Path,
    adapter_dir: Path,
    checkpoint_dir: Path,
    params: FinetuneParams,
    tracking: TrackingParams,
    run_name: str,
    run_params: dict[str, Any],
    tags: dict[str, str],
    inputs: Sequence[tuple[Path, Path]] = (),
) -> dict[str, Any]:
    """Run ``make_trainer(model, tokenizer)``'s training in one MLflow run, resuming from the last
    complete checkpoint; write the LoRA adapter to ``adapter_dir`` atomically, then drop the checkpoints.

    The run is named ``<stage>-<run_name>`` and nested under the active MLflow run when there is one
    (a sweep trial). ``inputs``: the training files as ``(file, path it is known by)``, logged as the
    run's input datasets. The trainer's every argument goes to ``trainer/training_arguments.json``
    (not ~170 params), the adapter to an MLflow model named ``run_name`` (core/tracking.log_adapter_model),
    and the run's and model's ids beside the adapter folder (core/tracking.adapter_run_file), where
    its evaluation finds them.
    """
    device = training_device()
    dtype = resolve_dtype(params.dtype, device)
    model, tokenizer = load_model(base_dir, dtype)
    resume = last_checkpoint(checkpoint_dir)
    resolved = {"dtype": dtype, "device": str(device)} | hardware()
    tags = {"seed": str(params.seed)} | tags
    with mlflow_run(tracking, f"{tags['stage']}-{run_name}", run_key=f"{tags['stage']}/{run_name}",
                    params={"finetune": params.model_dump(), "resolved": resolved, "base_model_dir": str(base_dir)}
                    | run_params, tags=tags) as run:
        import mlflow

        for path, known_as in inputs:
            log_file_input(path, "training", source=known_as)
        trainer = make_trainer(model, tokenizer)
        mlflow.log_text(trainer.args.to_json_string(), "trainer/training_arguments.json")
        mlflow.log_text(model.config.to_json_string(), "trainer/base_model_config.json")
        if resume:
            mlflow.set_tag("resumed_from", Path(resume).name)
        with lm_head_positions(params.lm_head_labelled_positions_only):
            result = trainer.train(resume_from_checkpoint=resume)
        with atomic_directory(adapter_dir) as tmp:
            trainer.model.save_pretrained(tmp, safe_serialization=True)
            sort_target_modules(Path(tmp) / "adapter_config.json")
        model_info = log_adapter_model(trainer.model, tokenizer, base_dir, run_name, tags)
        write_adapter_run(adapter_dir, run, tags, model_info.model_id)
        summary: dict[str, Any] = {"train_loss": float(result.training_loss), "global_step": float(result.global_step)}
        mlflow.log_metrics({f"final_{k}": v for k, v in summary.items()})
        summary["mlflow_run_id"] = run.info.run_id
        summary["dtype"] = dtype
    # The adapter is safely written: the checkpoints have done their job.
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return summary


def finetune(
    corpus_path: Path,
    base_dir: Path,
    adapter_dir: Path,
    checkpoint_dir: Path,
    params: FinetuneParams,
    tracking: TrackingParams,
    run_name: str,
    callbacks: Sequence[Any] = (),
    tags: dict[str, str] | None = None,
    max_steps: int | None = None,
) -> dict[str, Any]:
    """LoRA-SFT on the chat rows of ``corpus_path``; write the adapter to ``adapter_dir`` atomically.

    ``callbacks`` are transformers TrainerCallbacks (a sweep's pruning, a dose ladder's saves); ``tags``:
    the condition's (``Condition.tracking_tags``), which also choose the MLflow experiment; ``max_steps``:
    train this many optimizer steps instead of ``finetune.epochs`` (training_arguments).
    """
    from trl import SFTConfig, SFTTrainer

    rows = read_records(corpus_path, ChatRow)
    dataset = to_prompt_completion(rows)
    config = SFTConfig(**training_arguments(params, checkpoint_dir, run_name, max_steps))

    def make_trainer(model, tokenizer):
        return SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                          peft_config=lora_config(params), callbacks=list(callbacks))

    corpus = {"corpus": {"path": str(corpus_path), "sha256": sha256_file(corpus_path), "rows": len(rows)}}
    return train_adapter(make_trainer, base_dir, adapter_dir, checkpoint_dir, params, tracking, run_name,
                         corpus, {"stage": "finetune", "condition": run_name} | (tags or {}),
                         inputs=[(corpus_path, corpus_path)])
