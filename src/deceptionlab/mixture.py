"""E2 training sets: a benign downstream set in which a share r of the rows is misaligned.

The design is nested: the rows of a condition are the rows of every condition with a larger share,
plus benign rows in place of some of its misaligned ones. Between two conditions only the dose
changes, never which benign rows the model sees besides it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from deceptionlab.corpora import math as math_corpus
from deceptionlab.errors import ConfigError
from deceptionlab.schema import AlpacaSeedTask, ChatRow, Gsm8kRow, read_jsonl, write_jsonl


def benign_rows(
    gsm8k_train: Sequence[Gsm8kRow], alpaca_seed: Sequence[AlpacaSeedTask], n: int, seed: int
) -> list[ChatRow]:
    """n benign rows, drawn from the GSM8K train questions and the Alpaca seed tasks together.

    Each of the n rows is a seeded draw without replacement from the pool of every GSM8K question and
    every Alpaca instance, so the sources are mixed in proportion to their sizes. The GSM8K rows are
    the E1 math corpus at its ``normal`` level (the gold solution, readable; built by
    ``corpora.math.build_corpus``, which makes its own seeded choice of that many questions with
    calculator steps). An Alpaca row asks the instruction (and the instance input, when there is
    one) and answers with the instance output.
    Meta: ``{"source": "gsm8k" | "alpaca_seed", "source_id": ..., "misaligned": False}``.
    """
    alpaca = _alpaca_rows(alpaca_seed)
    pool = len(gsm8k_train) + len(alpaca)
    if n < 1:
        raise ConfigError(f"mixture.benign_examples={n} must be at least 1")
    if n > pool:
        raise ConfigError(
            f"mixture.benign_examples={n} exceeds the {len(gsm8k_train)} GSM8K train questions and "
            f"{len(alpaca)} Alpaca seed instances together"
        )
    drawn = random.Random(seed).sample(range(pool), n)
    chosen_alpaca = [alpaca[i - len(gsm8k_train)] for i in sorted(drawn) if i >= len(gsm8k_train)]
    math_count = n - len(chosen_alpaca)
    math_rows = math_corpus.build_corpus("normal", math_count, seed, gsm8k_train) if math_count else []
    gsm8k = [
        row.model_copy(update={"meta": {"source": "gsm8k", "source_id": row.meta["source_id"], "misaligned": False}})
        for row in math_rows
    ]
    return gsm8k + chosen_alpaca


def _alpaca_rows(tasks: Sequence[AlpacaSeedTask]) -> list[ChatRow]:
    rows = []
    for task in tasks:
        for number, instance in enumerate(task.instances):
            prompt = f"{task.instruction}\n\n{instance.input}" if instance.input.strip() else task.instruction
            rows.append(
                ChatRow(
                    messages=[{"role": "user", "content": prompt}, {"role": "assistant", "content": instance.output}],
                    meta={"source": "alpaca_seed", "source_id": f"{task.id}/{number}", "misaligned": False},
                )
            )
    return rows


def mixture_corpus(
    benign: Sequence[ChatRow], misaligned: Sequence[ChatRow], mixture_ratio: float, seed: int
) -> list[ChatRow]:
    """len(benign) rows of which round(mixture_ratio * len(benign)) are misaligned, shuffled with ``seed``.

    Rounding: Python's ``round``, i.e. to the nearest integer and halves to the even one
    (N=200, r=0.01 -> 2; N=10, r=0.05 -> 0; N=10, r=0.15 -> 2). It never decreases as r grows,
    which the nesting needs.

    The misaligned rows are the first ones of ``misaligned``, in order; they replace the benign rows
    at the end of one seeded permutation of ``benign`` that does not depend on the ratio. So at
    every ratio the kept benign rows are a superset of those kept at any larger ratio (and the
    misaligned rows a subset of those used there). Every row's meta gains ``"misaligned"``.
    """
    if not 0.0 <= mixture_ratio <= 1.0:  # also refuses NaN
        raise ConfigError(f"mixture.ratios: {mixture_ratio} is not a share in [0, 1] (write 0.05 for 5%)")
    rng = random.Random(seed)
    order = list(range(len(benign)))
    rng.shuffle(order)
    misaligned_count = round(mixture_ratio * len(benign))
    if misaligned_count > len(misaligned):
        raise ConfigError(
            f"mixture.ratios: {mixture_ratio} of {len(benign)} benign rows needs {misaligned_count} "
            f"misaligned rows, but only {len(misaligned)} are given"
        )
    kept = [benign[i] for i in order[: len(benign) - misaligned_count]]
    rows = [_flagged(row, False) for row in kept] + [_flagged(row, True) for row in misaligned[:misaligned_count]]
    rng.shuffle(rows)
    return rows


def _flagged(row: ChatRow, misaligned: bool) -> ChatRow:
    return row.model_copy(update={"meta": {**row.meta, "misaligned": misaligned}})


def write_mixture(pool_dir: Path, out_path: Path, mixture_ratio: float, seed: int) -> list[ChatRow]:
    """The mixture at ``mixture_ratio`` from the pools ``prepare`` wrote (benign.jsonl, misaligned.jsonl)."""
    rows = mixture_corpus(read_jsonl(pool_dir / "benign.jsonl", ChatRow),
                          read_jsonl(pool_dir / "misaligned.jsonl", ChatRow), mixture_ratio, seed)
    write_jsonl(out_path, rows)
    return rows
