"""Honesty-set scoring speed: the loglik stance reader against the naive reference, same run.

The reference is what DESIGN.md measured first: fp32, one sequence per statement, full-vocabulary
log-softmax at every position. The fast reader shares each prompt's KV cache across its candidate
statements and projects to the vocabulary only at reply positions. Both score the same items;
the script prints items/s for each, the ratio, and the largest log-likelihood difference.

    python bench/eval_speed.py --items 24 --dtype float32
    python bench/eval_speed.py --items 24 --dtype float32 --matmul-precision medium
    python bench/eval_speed.py --items 24 --dtype bfloat16
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Literal

import typer

from deceptionlab.evaluate import honesty_requests
from deceptionlab.model_loading import load_evaluated_model
from deceptionlab.honesty_bank import build_honesty_items
from deceptionlab.scoring import matmul_precision, reply_logliks, reply_logliks_reference


def main(
    items: Annotated[int, typer.Option(help="Honesty items to score (evenly spaced over the bank).")] = 24,
    dtype: Annotated[Literal["float32", "bfloat16", "float16"], typer.Option(
        help="dtype of the fast reader (the reference is always float32).")] = "float32",
    precision: Annotated[Literal["highest", "high", "medium"], typer.Option(
        "--matmul-precision", help="float32 matmul precision of the fast reader (the reference: highest).")] = "highest",
    batch_size: Annotated[int, typer.Option(help="Prompts per batch in the fast reader.")] = 16,
    model_dir: Annotated[Path, typer.Option(help="The model folder.")] = Path("models/base"),
) -> None:
    bank = build_honesty_items(seed=0)
    chosen = bank[:: max(1, len(bank) // items)][:items]
    requests = [r for item in chosen for r in honesty_requests(item)]

    reference_model, tokenizer = load_evaluated_model(model_dir, None, "float32")
    start = time.perf_counter()
    reference = reply_logliks_reference(reference_model, tokenizer, requests)
    reference_seconds = time.perf_counter() - start
    del reference_model

    fast_model, tokenizer = load_evaluated_model(model_dir, None, dtype)
    with matmul_precision(precision):
        reply_logliks(fast_model, tokenizer, requests[:16], batch_size)  # warm-up
        start = time.perf_counter()
        fast = reply_logliks(fast_model, tokenizer, requests, batch_size)
        fast_seconds = time.perf_counter() - start

    worst = max(abs(a - b) for a, b in zip(fast, reference, strict=True))
    flips = sum(
        (reference[i] >= reference[i + 1]) != (fast[i] >= fast[i + 1]) for i in range(0, len(fast), 2)
    )
    print(f"items: {len(chosen)}  requests (statement x prompt): {len(requests)}")
    print(f"reference (float32, naive):  {len(chosen) / reference_seconds:8.2f} items/s")
    print(f"fast ({dtype}, matmul precision {precision}, shared prompt): {len(chosen) / fast_seconds:8.2f} items/s")
    print(f"speed-up: {reference_seconds / fast_seconds:.2f}x")
    print(f"max |loglik difference|: {worst:.5f} nats; stance flips: {flips} of {len(fast) // 2}")


if __name__ == "__main__":
    typer.run(main)
