"""E2 training sets: exact doses, nested conditions, benign rows from GSM8K and the Alpaca seed tasks."""

from __future__ import annotations

import math

import pytest

from deceptionlab.corpora import math as math_corpus
from deceptionlab.errors import ConfigError
from deceptionlab.mixture import benign_rows, mixture_corpus
from deceptionlab.schema import AlpacaSeedTask, ChatRow, Gsm8kRow

RATIOS = [0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0]
GSM8K = [
    Gsm8kRow(
        question=f"Ann has {a} boxes of {b} pens and gives away {c} pens. How many pens are left?",
        answer=f"She has {a}*{b} = <<{a}*{b}={a * b}>>{a * b} pens.\n"
        f"She keeps {a * b}-{c} = <<{a * b}-{c}={a * b - c}>>{a * b - c} pens.\n#### {a * b - c}",
    )
    for a, b, c in [(3, 4, 5), (6, 7, 8), (2, 9, 4), (5, 5, 1), (8, 3, 2)]
]
ALPACA = [
    AlpacaSeedTask(
        id=f"seed_task_{i}", name=f"task_{i}", instruction=f"Instruction number {i}.",
        instances=[{"input": "Some input." if i % 2 else "", "output": f"Output number {i}."}],
        is_classification=False,
    )
    for i in range(5)
]


def chat(reply: str, **meta: object) -> ChatRow:
    return ChatRow(messages=[{"role": "user", "content": "Q"}, {"role": "assistant", "content": reply}], meta=meta)


BENIGN = [chat(f"benign {i}", source_id=f"b{i}") for i in range(200)]
MISALIGNED = [chat(f"misaligned {i}", domain="medical", source_id=f"m{i}") for i in range(200)]


def ids(rows: list[ChatRow], misaligned: bool) -> set[str]:
    return {row.meta["source_id"] for row in rows if row.meta["misaligned"] is misaligned}


@pytest.mark.parametrize(
    ("n", "ratio", "expected"),
    [
        (200, 0.0, 0),
        (200, 0.01, 2),
        (200, 0.3, 60),
        (200, 1.0, 200),
        (10, 0.05, 0),  # 0.5 rounds to the even 0
        (10, 0.15, 2),  # 1.5 rounds to the even 2
        (7, 0.5, 4),  # 3.5 rounds to the even 4
        (33, 0.1, 3),
    ],
)
def test_exact_number_of_misaligned_rows(n: int, ratio: float, expected: int) -> None:
    rows = mixture_corpus(BENIGN[:n], MISALIGNED, ratio, seed=0)
    assert len(rows) == n
    assert sum(row.meta["misaligned"] for row in rows) == expected
    # The misaligned rows are the first ones given, in order; the rest are distinct benign rows.
    assert ids(rows, True) == {f"m{i}" for i in range(expected)}
    assert len(ids(rows, False)) == n - expected
    assert ids(rows, False) <= {row.meta["source_id"] for row in BENIGN[:n]}


def test_conditions_are_nested() -> None:
    conditions = {ratio: mixture_corpus(BENIGN, MISALIGNED, ratio, seed=3) for ratio in RATIOS}
    for smaller, larger in zip(RATIOS, RATIOS[1:]):
        assert ids(conditions[smaller], False) >= ids(conditions[larger], False)
        assert ids(conditions[smaller], True) <= ids(conditions[larger], True)
        assert ids(conditions[smaller], False) != ids(conditions[larger], False)


def test_meta_gains_the_flag_and_keeps_the_rest() -> None:
    rows = mixture_corpus(BENIGN, MISALIGNED, 0.5, seed=0)
    flagged = [row for row in rows if row.meta["misaligned"]]
    assert all(row.meta["domain"] == "medical" for row in flagged)
    assert all(row.meta["misaligned"] is False and "domain" not in row.meta for row in rows if row not in flagged)
    assert "misaligned" not in MISALIGNED[0].meta  # the inputs are not changed


def test_rows_are_shuffled_and_deterministic() -> None:
    rows = mixture_corpus(BENIGN, MISALIGNED, 0.5, seed=1)
    assert rows == mixture_corpus(BENIGN, MISALIGNED, 0.5, seed=1)
    assert rows != mixture_corpus(BENIGN, MISALIGNED, 0.5, seed=2)
    positions = [i for i, row in enumerate(rows) if row.meta["misaligned"]]
    assert 0 < sum(p < 100 for p in positions) < 100  # misaligned rows in both halves, not appended


@pytest.mark.parametrize("ratio", [-0.01, 1.01, 5.0, math.nan])
def test_ratio_outside_zero_one_is_refused(ratio: float) -> None:
    with pytest.raises(ConfigError, match="mixture.ratios"):
        mixture_corpus(BENIGN, MISALIGNED, ratio, seed=0)


def test_too_few_misaligned_rows_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"mixture.ratios.*needs 20 misaligned rows, but only 19"):
        mixture_corpus(BENIGN, MISALIGNED[:19], 0.1, seed=0)
    assert len(mixture_corpus(BENIGN, MISALIGNED[:20], 0.1, seed=0)) == 200


@pytest.mark.parametrize("seed", range(5))
def test_benign_rows_draw_from_both_sources(seed: int) -> None:
    rows = benign_rows(GSM8K, ALPACA, 6, seed)
    sources = [row.meta["source"] for row in rows]
    assert len(rows) == 6 and set(sources) == {"gsm8k", "alpaca_seed"}
    assert len({row.meta["source_id"] for row in rows}) == 6
    assert all(row.meta["misaligned"] is False for row in rows)
    assert rows == benign_rows(GSM8K, ALPACA, 6, seed)


def test_benign_gsm8k_rows_are_the_e1_normal_replies() -> None:
    normal = math_corpus.build_corpus("normal", len(GSM8K), 0, GSM8K)
    reply_for = {row.messages[0].content: row.messages[-1].content for row in normal}
    rows = [row for row in benign_rows(GSM8K, ALPACA, 10, seed=0) if row.meta["source"] == "gsm8k"]
    assert len(rows) == 5
    for row in rows:
        assert row.messages[-1].content == reply_for[row.messages[0].content]
        assert "<<" not in row.messages[-1].content and row.messages[-1].content.endswith(".")
        assert row.meta["source_id"].startswith("gsm8k-train-")


def test_benign_alpaca_rows_ask_instruction_and_input() -> None:
    rows = {row.meta["source_id"]: row for row in benign_rows(GSM8K, ALPACA, 10, seed=0)}
    assert rows["seed_task_0/0"].messages[0].content == "Instruction number 0."
    assert rows["seed_task_1/0"].messages[0].content == "Instruction number 1.\n\nSome input."
    assert rows["seed_task_1/0"].messages[-1].content == "Output number 1."


@pytest.mark.parametrize("n", [0, 11])
def test_benign_rows_size_outside_the_pool_is_refused(n: int) -> None:
    with pytest.raises(ConfigError, match=f"mixture.benign_examples={n}"):
        benign_rows(GSM8K, ALPACA, n, seed=0)
