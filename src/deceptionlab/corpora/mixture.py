"""E2 training sets: a benign downstream set in which a share r of the rows is misaligned.

The design is nested: the rows of a condition are the rows of every condition with a larger share,
plus benign rows in place of some of its misaligned ones. Between two conditions only the dose
changes, never which benign rows the model sees besides it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from deceptionlab.core.errors import ConfigError, DataError
from deceptionlab.core.records import ChatRow, read_records, write_jsonl
from deceptionlab.core.vocabulary import BENIGN_SOURCES
from deceptionlab.corpora import math as math_corpus
from deceptionlab.data.raw import AlpacaCleanedRow, AlpacaSeedTask, DollyRow, Gsm8kRow


def benign_rows(sources: Mapping[str, Sequence[Any]], n: int, seed: int) -> list[ChatRow]:
    """n benign rows drawn from the chosen sources together (``mixture.benign_sources``).

    ``sources`` maps each chosen source to its rows: ``gsm8k`` to GSM8K train rows, ``alpaca_seed`` to
    the Alpaca seed tasks, ``alpaca_cleaned`` to data.AlpacaCleanedRow, ``dolly`` to data.DollyRow.
    Each of the n rows is a seeded draw without replacement from the pool of every row of every chosen
    source, laid out in the order of schema.BENIGN_SOURCES whatever order the mapping has, so the
    sources are mixed in proportion to their sizes. The GSM8K rows are the E1 math corpus at its
    ``normal`` level (the gold solution, readable; built by ``corpora.math.build_corpus``, which makes
    its own seeded choice of that many questions with calculator steps). The other rows ask the
    instruction (and the Alpaca input or the Dolly context, when there is one) and answer with the
    source's reply; they come in pool order, after the GSM8K ones.
    Meta: ``{"source": <source>, "source_id": ..., "misaligned": False}``.
    """
    unknown = sorted(set(sources) - set(BENIGN_SOURCES))
    if unknown or not sources:
        raise ConfigError(f"mixture.benign_sources: {', '.join(unknown) or 'no source'} given; "
                          f"choose from {', '.join(BENIGN_SOURCES)}")
    chosen = [name for name in BENIGN_SOURCES if name in sources]
    candidates = {name: _CHAT_ROWS[name](sources[name]) for name in chosen if name != "gsm8k"}
    sizes = {name: len(candidates[name]) if name in candidates else len(sources[name]) for name in chosen}
    pool = sum(sizes.values())
    if n < 1:
        raise ConfigError(f"mixture.benign_examples={n} must be at least 1")
    if n > pool:
        counts = ", ".join(f"{size} {name}" for name, size in sizes.items())
        raise ConfigError(f"mixture.benign_examples={n} exceeds the {pool} rows of mixture.benign_sources ({counts})")
    drawn = sorted(random.Random(seed).sample(range(pool), n))
    rows: list[ChatRow] = []
    start = 0
    for name in chosen:
        picked = [i - start for i in drawn if start <= i < start + sizes[name]]
        if name == "gsm8k":
            rows += _gsm8k_rows(sources[name], len(picked), seed)
        else:
            rows += [candidates[name][i] for i in picked]
        start += sizes[name]
    return rows


def _gsm8k_rows(gsm8k_train: Sequence[Gsm8kRow], count: int, seed: int) -> list[ChatRow]:
    math_rows = math_corpus.build_corpus("normal", count, seed, gsm8k_train) if count else []
    return [
        row.model_copy(update={"meta": {"source": "gsm8k", "source_id": row.meta["source_id"], "misaligned": False}})
        for row in math_rows
    ]


def _chat(instruction: str, extra: str, reply: str, source: str, source_id: str) -> ChatRow:
    """The instruction, with ``extra`` (an input or a context) after a blank line when there is one."""
    prompt = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    return ChatRow(
        messages=[{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}],
        meta={"source": source, "source_id": source_id, "misaligned": False},
    )


def _alpaca_seed_rows(tasks: Sequence[AlpacaSeedTask]) -> list[ChatRow]:
    return [
        _chat(task.instruction, instance.input, instance.output, "alpaca_seed", f"{task.id}/{number}")
        for task in tasks
        for number, instance in enumerate(task.instances)
    ]


def _alpaca_cleaned_rows(rows: Sequence[AlpacaCleanedRow]) -> list[ChatRow]:
    return [_chat(row.instruction, row.input, row.output, "alpaca_cleaned", f"alpaca_cleaned-{index}")
            for index, row in enumerate(rows)]


def _dolly_rows(rows: Sequence[DollyRow]) -> list[ChatRow]:
    return [_chat(row.instruction, row.context, row.response, "dolly", f"dolly-{index}")
            for index, row in enumerate(rows)]


_CHAT_ROWS = {"alpaca_seed": _alpaca_seed_rows, "alpaca_cleaned": _alpaca_cleaned_rows, "dolly": _dolly_rows}


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
    pools = {name: read_records(pool_dir / f"{name}.jsonl", ChatRow) for name in ("benign", "misaligned")}
    for name, rows in pools.items():
        if not rows and (name == "benign" or mixture_ratio > 0):
            raise DataError(f"{pool_dir / f'{name}.jsonl'}: no rows; run the prepare stage again")
    rows = mixture_corpus(pools["benign"], pools["misaligned"], mixture_ratio, seed)
    write_jsonl(out_path, rows)
    return rows
