"""Honesty-set scoring speed: the loglik stance reader against the naive reference, same run.

The reference is the naive reader (`scoring.reply_logliks_reference`; docs/design.md, "Log-likelihood
reader"): fp32, one sequence per statement, full-vocabulary log-softmax at every position. The
fast reader shares each prompt's KV cache across its candidate statements and projects to the
vocabulary only at reply positions. Both score the same items; the script prints items/s for
each, the ratio, and the largest log-likelihood difference.

    python bench/eval_speed.py --items 24 --dtype float32 --matmul-precision highest
    python bench/eval_speed.py --items 24 --dtype float32 --matmul-precision auto --attn-implementation eager
    python bench/eval_speed.py --items 24 --dtype bfloat16

`auto` resolves as the pipeline does (deceptionlab.models.precision: medium only where the CPU has bf16
units); the script first prints what the hardware supports, and the resolved values.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Annotated, Literal

import typer

from deceptionlab.benchmarks.mask.bank import build_honesty_items
from deceptionlab.evaluation.loglik import (
    matmul_precision,
    reply_logliks,
    reply_logliks_reference,
)
from deceptionlab.evaluation.run import honesty_requests
from deceptionlab.models.loading import load_evaluated_model
from deceptionlab.models.precision import dtype_name, hardware, resolve_matmul_precision


def main(
    items: Annotated[int, typer.Option(help="Honesty items to score (evenly spaced over the bank).")] = 24,
    dtype: Annotated[Literal["auto", "float32", "bfloat16", "float16"], typer.Option(
        help="dtype of the fast reader (the reference is always float32).")] = "float32",
    precision: Annotated[Literal["auto", "highest", "high", "medium"], typer.Option(
        "--matmul-precision", help="float32 matmul precision of the fast reader (the reference: highest).")] = "auto",
    attn_implementation: Annotated[Literal["sdpa", "eager"], typer.Option(
        help="Attention of the fast reader (the reference: sdpa).")] = "sdpa",
    batch_size: Annotated[int, typer.Option(help="Prompts per batch in the fast reader.")] = 16,
    rounds: Annotated[int, typer.Option(min=1, help="Timed rounds, each running both readers.")] = 3,
    model_dir: Annotated[Path, typer.Option(help="The model folder.")] = Path("models/base"),
) -> None:
    bank = build_honesty_items(seed=0)
    chosen = bank[:: max(1, len(bank) // items)][:items]
    requests = [r for item in chosen for r in honesty_requests(item)]

    reference_model, tokenizer = load_evaluated_model(model_dir, None, "float32")
    reference_model.set_attn_implementation("sdpa")
    fast_model, _ = load_evaluated_model(model_dir, None, dtype)
    fast_model.set_attn_implementation(attn_implementation)
    dtype = dtype_name(fast_model.dtype)
    precision = resolve_matmul_precision(precision, dtype, fast_model.device)
    print(f"hardware: {hardware()}")

    def timed(reader, seconds: list[float]) -> list[float]:
        start = time.perf_counter()
        result = reader()
        seconds.append(time.perf_counter() - start)
        return result

    def fast_reader() -> list[float]:
        with matmul_precision(precision):
            return reply_logliks(fast_model, tokenizer, requests, batch_size)

    # An untimed run of each first: oneDNN picks its kernels for a shape on first meeting it.
    reply_logliks_reference(reference_model, tokenizer, requests)
    fast_reader()
    # Rounds alternate the two readers, so a busy spell on the shared machine slows both.
    reference_seconds, fast_seconds = [], []
    for _ in range(rounds):
        reference = timed(lambda: reply_logliks_reference(reference_model, tokenizer, requests), reference_seconds)
        fast = timed(fast_reader, fast_seconds)

    worst = max(abs(a - b) for a, b in zip(fast, reference, strict=True))
    flips = sum(
        (reference[i] >= reference[i + 1]) != (fast[i] >= fast[i + 1]) for i in range(0, len(fast), 2)
    )
    ratios = sorted(r / f for r, f in zip(reference_seconds, fast_seconds, strict=True))
    print(f"items: {len(chosen)}  requests (statement x prompt): {len(requests)}  rounds: {rounds}")
    print(f"reference (float32, naive):  {len(chosen) / statistics.median(reference_seconds):8.2f} items/s (median)")
    print(f"fast ({dtype}, matmul precision {precision}, {attn_implementation} attention, shared prompt): "
          f"{len(chosen) / statistics.median(fast_seconds):8.2f} items/s (median)")
    print(f"speed-up: {statistics.median(ratios):.2f}x (median of the rounds; {ratios[0]:.2f}x to {ratios[-1]:.2f}x)")
    print(f"max |loglik difference|: {worst:.5f} nats; stance flips: {flips} of {len(fast) // 2}")


if __name__ == "__main__":
    typer.run(main)
