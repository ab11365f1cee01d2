"""LoRA SFT throughput: the project's finetune settings against TRL's defaults, same run, same data.

Baseline = TRL's defaults as they stand for this model: fp32 weights, activation (gradient)
checkpointing on, 8 rows per step, rows in random order (padded batches of mixed lengths), the
fused LM head projecting every position (TRL's choice on the CPU). Project = `finetune` in
params.yaml (base weights in `finetune.dtype`, `auto`: bf16 where the CPU or GPU runs it natively,
else fp32; fp32 LoRA weights, no activation checkpointing, rows of similar length batched together,
4 rows x 2 accumulation steps, the LM head at labelled positions only). Both train
the same rows of an E1 corpus for the same optimizer steps with the same seed through
`deceptionlab.training.sft.finetune`, so the comparison is the code the pipeline runs.
Prints tokens/s for each, the ratio, the training loss (the Trainer's mean over all steps: both
runs see the same rows, grouped differently, so the mean is the fair comparison; the last step's
loss is printed too, but its batch holds different rows in each run), and achieved FLOP/s against the
matmul peak of the dtype each run trained in, measured in the same run (FLOPs = 6 x trainable-path parameters x tokens, the usual
dense-transformer estimate: forward 2N, backward 4N per token, since the backward pass through
frozen weights still computes activation gradients).

    python bench/sft_speed.py --rows 48 --corpus corpora/e1/medical-severe.jsonl

It first prints what the hardware supports (native bf16 or not, torch's threads): the ratio depends on it.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Annotated

import mlflow
import torch
import typer
from safetensors.torch import load_file
from transformers import AutoTokenizer

from deceptionlab.core.params import FinetuneParams, TrackingParams, load_params
from deceptionlab.core.records import ChatRow, read_records, write_jsonl
from deceptionlab.models.precision import hardware, resolve_dtype, training_device
from deceptionlab.training.sft import finetune


def matmul_peak_flops(dtype: torch.dtype) -> float:
    """Square matmuls on the device the Trainer trains on (CUDA when there is one, else the CPU),
    large enough to reach that device's peak."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    size, repeats = (8192, 50) if device == "cuda" else (2048, 10)
    a, b = (torch.randn(size, size, dtype=dtype, device=device) for _ in range(2))
    a @ b  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def trl_defaults(params: FinetuneParams) -> FinetuneParams:
    """``params`` with TRL's SFTConfig defaults for this model where the project departs from them: fp32
    weights, activation checkpointing, 8 rows per step in random order, no accumulation (the project's
    4 x 2 takes the same optimizer steps), the LM head wherever TRL puts it (every position on the CPU)."""
    return params.model_copy(update={"dtype": "float32", "activation_checkpointing": True, "length_grouping": False,
                                     "batch_size": 8, "gradient_accumulation_steps": 1,
                                     "lm_head_labelled_positions_only": False})


def count_tokens(rows: list[ChatRow], tokenizer) -> int:
    texts = [tokenizer.apply_chat_template([m.model_dump() for m in r.messages], tokenize=False) for r in rows]
    return sum(len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in texts)


def main(
    corpus: Annotated[Path, typer.Option(help="An E1 corpus (chat JSONL).")] = Path("corpora/e1/medical-severe.jsonl"),
    rows: Annotated[int, typer.Option(help="Rows to train on (one epoch).")] = 48,
    model_dir: Annotated[Path, typer.Option(help="The base model folder.")] = Path("models/base"),
) -> None:
    params = load_params("params.yaml").finetune
    print(f"hardware: {hardware()}")
    configs = {"trl-default (fp32, checkpointing)": trl_defaults(params), "project (params.yaml)": params}
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    with tempfile.TemporaryDirectory() as tmp:
        subset = Path(tmp) / "corpus.jsonl"
        chosen = read_records(corpus, ChatRow)[:rows]
        write_jsonl(subset, chosen)
        tokens = count_tokens(chosen, tokenizer)
        tracking = TrackingParams(mlflow_tracking_uri=f"sqlite:///{tmp}/mlflow.db", experiment="bench")
        results = {}
        for name, settings in configs.items():
            start = time.perf_counter()
            summary = finetune(subset, model_dir, Path(tmp) / "adapter", Path(tmp) / "ckpt", settings, tracking, "bench")
            seconds = time.perf_counter() - start
            losses = mlflow.MlflowClient(tracking.mlflow_tracking_uri).get_metric_history(summary["mlflow_run_id"], "loss")
            last = sorted(losses, key=lambda m: m.step)[-1].value
            results[name] = (seconds, summary["train_loss"], last, summary["global_step"], summary["dtype"])
        dtypes = {resolve_dtype(settings.dtype, training_device()) for settings in configs.values()}
        peaks = {dtype: matmul_peak_flops(getattr(torch, dtype)) for dtype in sorted(dtypes)}
    parameters = sum(t.numel() for t in load_file(model_dir / "model.safetensors").values())
    print(f"rows: {rows}  tokens (prompt + reply, one epoch): {tokens}  parameters: {parameters / 1e6:.1f} M")
    for dtype, peak in peaks.items():
        print(f"{dtype} matmul peak measured now: {peak / 1e9:.0f} GFLOP/s")
    for name, (seconds, loss, last, steps, dtype) in results.items():
        flops = 6 * parameters * tokens / seconds
        print(f"{name:36s} {dtype:8s} {tokens / seconds:8.1f} tokens/s  training loss {loss:.4f} "
              f"(last step {last:.4f}) after {steps:.0f} steps  {flops / 1e9:6.1f} GFLOP/s = "
              f"{100 * flops / peaks[dtype]:4.1f}% of the {dtype} peak  ({seconds:.1f} s incl. load)")
    (base_s, base_loss, *_), (ours_s, ours_loss, *_) = results.values()
    print(f"speed-up: {base_s / ours_s:.2f}x  training-loss difference: {100 * (ours_loss - base_loss) / base_loss:+.2f}%")


if __name__ == "__main__":
    typer.run(main)
