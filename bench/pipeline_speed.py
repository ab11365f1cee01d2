"""One E1 condition end to end, as before issue 6's work and as now: finetune + evaluate, same run, same data.

The default `dvc repro` is mostly this unit repeated (16 finetunes, 23 evaluations; E3's three
simulations and its self-trainings aside), so its ratio is the measured stand-in for the whole run,
which would take several hours to repeat with the old settings.

Before: TRL's defaults for the finetune (`sft_speed.trl_defaults`: fp32, activation checkpointing,
8 rows per step in random order, the LM head at every position) and the naive reference reader for every
evaluation request (fp32, one sequence per statement, full-vocabulary log-softmax at every
position). Now: `params.yaml`'s `finetune` and `evaluate` settings through the pipeline's code.
Each side trains an adapter on the corpus's rows with `deceptionlab.finetune.finetune`, loads
base + adapter as the evaluate stage does, and scores every (messages, reply) request the evaluate
stage scores (honesty, deception, capability, knowledge). Each finetune and each evaluation runs
in a fresh process, as a DVC stage does, and is timed from the parent with its start-up. The
bootstrap and the file writing, seconds either way, are left out of both.

    python bench/pipeline_speed.py --corpus corpora/e1/medical-severe.jsonl
    python bench/pipeline_speed.py --every 8    # every 8th item of each set: a quicker look
"""

from __future__ import annotations

import multiprocessing
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
from sft_speed import trl_defaults

from deceptionlab.benchmarks.capability.items import CapabilityItem, KnowledgeItem
from deceptionlab.benchmarks.capability.scorer import (
    gold_solution_requests,
    knowledge_requests,
)
from deceptionlab.benchmarks.deception.items import DeceptionItem
from deceptionlab.benchmarks.deception.scorer import deception_requests
from deceptionlab.benchmarks.mask.items import read_mask_items
from deceptionlab.core.params import TrackingParams, load_params
from deceptionlab.core.records import read_records
from deceptionlab.evaluation.loglik import (
    matmul_precision,
    reply_logliks,
    reply_logliks_reference,
)
from deceptionlab.evaluation.run import EVAL_SETS, honesty_requests
from deceptionlab.models.loading import load_evaluated_model
from deceptionlab.models.precision import dtype_name, hardware, resolve_matmul_precision
from deceptionlab.training.sft import finetune


def evaluation_requests(eval_dir: Path, every: int) -> dict[str, list]:
    """The requests the evaluate stage scores, by set, keeping every ``every``-th item."""
    paths = {name: eval_dir / f"{name}.jsonl" for name in EVAL_SETS}
    return {
        "honesty": [r for item in read_mask_items(paths["honesty"])[::every] for r in honesty_requests(item)],
        "deception": [r for item in read_records(paths["deception"], DeceptionItem)[::every]
                      for r in deception_requests(item)],
        "capability": gold_solution_requests(read_records(paths["capability"], CapabilityItem)[::every]),
        "knowledge": [r for item in read_records(paths["knowledge"], KnowledgeItem)[::every]
                      for r in knowledge_requests(item)],
    }


def train(corpus: Path, model_dir: Path, adapter: Path, checkpoints: Path, params, tracking) -> float:
    return finetune(corpus, model_dir, adapter, checkpoints, params, tracking, "bench")["train_loss"]


def score(model_dir: Path, adapter: Path, eval_dir: Path, every: int, dtype: str, naive: bool, params) -> int:
    model, tokenizer = load_evaluated_model(model_dir, adapter, dtype, params.device)
    model.set_attn_implementation("sdpa" if naive else params.attn_implementation)
    # One call per set, as the evaluate stage makes them: a batch that mixed GSM8K's long solutions
    # with one-line statements would pad every statement to a solution's length.
    by_set = evaluation_requests(eval_dir, every)
    precision = resolve_matmul_precision(params.matmul_precision, dtype_name(model.dtype), model.device)
    with matmul_precision("highest" if naive else precision):
        for requests in by_set.values():
            if naive:
                reply_logliks_reference(model, tokenizer, requests)
            else:
                reply_logliks(model, tokenizer, requests, params.batch_size)
    return sum(len(requests) for requests in by_set.values())


def timed_in_fresh_process(function, *args):
    """``function(*args)`` in a new interpreter; its result and the wall time including start-up."""
    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result = pool.apply(function, args)
    return result, time.perf_counter() - start


def main(
    corpus: Annotated[Path, typer.Option(help="An E1 corpus (chat JSONL); all its rows are trained on.")] = Path(
        "corpora/e1/medical-severe.jsonl"),
    every: Annotated[int, typer.Option(min=1, help="Score every N-th item of each evaluation set.")] = 1,
    model_dir: Annotated[Path, typer.Option(help="The base model folder.")] = Path("models/base"),
    eval_dir: Annotated[Path, typer.Option(help="The evaluation sets (the prepare stage's output).")] = Path(
        "corpora/eval"),
) -> None:
    params = load_params("params.yaml")
    print(f"hardware: {hardware()}")
    sides = {
        "before (TRL defaults, naive reader)": (trl_defaults(params.finetune), "float32", True),
        "now (params.yaml)": (params.finetune, params.evaluate.dtype, False),
    }
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tracking = TrackingParams(mlflow_tracking_uri=f"sqlite:///{tmp}/mlflow.db", experiment="bench")
        adapter = Path(tmp) / "adapter"
        for name, (finetune_params, eval_dtype, naive) in sides.items():
            loss, train_s = timed_in_fresh_process(train, corpus, model_dir, adapter, Path(tmp) / "ckpt",
                                                   finetune_params, tracking)
            requests, eval_s = timed_in_fresh_process(score, model_dir, adapter, eval_dir, every, eval_dtype, naive,
                                                      params.evaluate)
            results[name] = (train_s, eval_s, loss)
    print(f"corpus: {corpus}  evaluation requests: {requests} (every {every} item(s) of {', '.join(EVAL_SETS)})")
    for name, (train_s, eval_s, loss) in results.items():
        print(f"{name:38s} finetune {train_s:7.1f} s (loss {loss:.4f})  evaluation {eval_s:7.1f} s  "
              f"total {train_s + eval_s:7.1f} s")
    (before_train, before_eval, _), (now_train, now_eval, _) = results.values()
    print(f"speed-up: finetune {before_train / now_train:.2f}x  evaluation {before_eval / now_eval:.2f}x  "
          f"end to end {(before_train + before_eval) / (now_train + now_eval):.2f}x")


if __name__ == "__main__":
    typer.run(main)
