"""E2 training sets: exact doses, nested conditions, benign rows from GSM8K, the Alpaca seed tasks and the hub sets."""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from pathlib import Path

import pytest
import yaml

from deceptionlab.core.errors import ConfigError
from deceptionlab.core.params import load_params
from deceptionlab.core.records import ChatRow, read_records
from deceptionlab.corpora import math as math_corpus
from deceptionlab.corpora.mixture import benign_rows, mixture_corpus
from deceptionlab.corpora.prepare import prepare
from deceptionlab.data.raw import (
    AlpacaCleanedRow,
    AlpacaSeedTask,
    DollyRow,
    Gsm8kRow,
    load_alpaca_cleaned,
    load_benign_sources,
    load_dolly,
)

ROOT = Path(__file__).resolve().parents[2]
HUB_FIXTURES = ROOT / "tests" / "fixtures" / "hub"

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
DEFAULT_SOURCES = {"gsm8k": GSM8K, "alpaca_seed": ALPACA}
ALPACA_CLEANED = load_alpaca_cleaned(HUB_FIXTURES / "alpaca-cleaned" / "alpaca_data_cleaned.json")  # 12 rows
DOLLY = load_dolly(HUB_FIXTURES / "dolly" / "databricks-dolly-15k.jsonl")  # 8 rows
ALL_SOURCES = {**DEFAULT_SOURCES, "alpaca_cleaned": ALPACA_CLEANED, "dolly": DOLLY}


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
    rows = benign_rows(DEFAULT_SOURCES, 6, seed)
    sources = [row.meta["source"] for row in rows]
    assert len(rows) == 6 and set(sources) == {"gsm8k", "alpaca_seed"}
    assert len({row.meta["source_id"] for row in rows}) == 6
    assert all(row.meta["misaligned"] is False for row in rows)
    assert rows == benign_rows(DEFAULT_SOURCES, 6, seed)


def test_benign_gsm8k_rows_are_the_e1_normal_replies() -> None:
    normal = math_corpus.build_corpus("normal", len(GSM8K), 0, GSM8K)
    reply_for = {row.messages[0].content: row.messages[-1].content for row in normal}
    rows = [row for row in benign_rows(DEFAULT_SOURCES, 10, seed=0) if row.meta["source"] == "gsm8k"]
    assert len(rows) == 5
    for row in rows:
        assert row.messages[-1].content == reply_for[row.messages[0].content]
        assert "<<" not in row.messages[-1].content and row.messages[-1].content.endswith(".")
        assert row.meta["source_id"].startswith("gsm8k-train-")


def test_benign_alpaca_rows_ask_instruction_and_input() -> None:
    rows = {row.meta["source_id"]: row for row in benign_rows(DEFAULT_SOURCES, 10, seed=0)}
    assert rows["seed_task_0/0"].messages[0].content == "Instruction number 0."
    assert rows["seed_task_1/0"].messages[0].content == "Instruction number 1.\n\nSome input."
    assert rows["seed_task_1/0"].messages[-1].content == "Output number 1."


@pytest.mark.parametrize("n", [0, 11])
def test_benign_rows_size_outside_the_pool_is_refused(n: int) -> None:
    with pytest.raises(ConfigError, match=f"mixture.benign_examples={n}"):
        benign_rows(DEFAULT_SOURCES, n, seed=0)


def test_benign_rows_take_every_row_of_every_source_when_n_is_the_pool() -> None:
    rows = benign_rows(ALL_SOURCES, 30, seed=0)
    sizes = {"gsm8k": 5, "alpaca_seed": 5, "alpaca_cleaned": 12, "dolly": 8}
    assert Counter(row.meta["source"] for row in rows) == sizes
    assert len({row.meta["source_id"] for row in rows}) == 30
    assert {row.meta["source_id"] for row in rows if row.meta["source"] == "dolly"} == {f"dolly-{i}" for i in range(8)}
    assert {tuple(row.meta) for row in rows} == {("source", "source_id", "misaligned")}
    assert not any(row.meta["misaligned"] for row in rows)
    # Sources come in the fixed pool order, whatever order the mapping lists them in.
    assert [row.meta["source"] for row in rows] == [name for name, size in sizes.items() for _ in range(size)]
    assert rows == benign_rows(dict(reversed(ALL_SOURCES.items())), 30, seed=0)


@pytest.mark.parametrize("seed", range(3))
def test_benign_rows_from_hub_sources_are_seeded(seed: int) -> None:
    rows = benign_rows(ALL_SOURCES, 12, seed)
    assert rows == benign_rows(ALL_SOURCES, 12, seed)
    assert rows != benign_rows(ALL_SOURCES, 12, seed + 3)
    assert len({row.meta["source_id"] for row in rows}) == 12


def test_benign_sources_are_drawn_in_proportion_to_their_sizes() -> None:
    cleaned = [AlpacaCleanedRow(instruction=f"Task {i}.", input="", output=f"Done {i}.") for i in range(300)]
    dolly = [DollyRow(instruction=f"Question {i}?", context="", response=f"Answer {i}.", category="open_qa")
             for i in range(100)]
    counts = [Counter(row.meta["source"] for row in benign_rows({"alpaca_cleaned": cleaned, "dolly": dolly}, 100, seed))
              for seed in range(50)]
    assert all(count["alpaca_cleaned"] + count["dolly"] == 100 for count in counts)
    assert sum(count["dolly"] for count in counts) / len(counts) == pytest.approx(25, abs=2)  # 100 x 100/400
    assert len({count["dolly"] for count in counts}) > 3  # a draw, not a fixed split


def test_hub_rows_ask_instruction_with_input_or_context() -> None:
    rows = {row.meta["source_id"]: row for row in benign_rows(ALL_SOURCES, 30, seed=0)}
    assert rows["alpaca_cleaned-0"].messages[0].content == "Name three primary colors."
    assert rows["alpaca_cleaned-1"].messages[0].content == (
        "Translate the sentence into French.\n\nThe cat sleeps on the sofa."
    )
    assert rows["alpaca_cleaned-1"].messages[-1].content == "Le chat dort sur le canapé."
    assert rows["alpaca_cleaned-10"].messages[0].content == "Suggest a name for a bakery."  # whitespace-only input
    assert rows["dolly-0"].messages[0].content == "What is a haiku?"
    assert rows["dolly-1"].messages[0].content == (
        "When did the bridge open, according to the passage?\n\n"
        "The Harbour Bridge was built over eight years and opened to traffic in March 1932."
    )
    assert rows["dolly-1"].messages[-1].content == "It opened in March 1932."


@pytest.mark.parametrize("sources", [{}, {"gsm8k": GSM8K, "wikipedia": []}])
def test_benign_rows_refuse_unknown_or_no_sources(sources: dict) -> None:
    with pytest.raises(ConfigError, match="mixture.benign_sources"):
        benign_rows(sources, 3, seed=0)


def test_benign_examples_beyond_the_chosen_sources_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"benign_examples=21 exceeds the 20 rows .*12 alpaca_cleaned, 8 dolly"):
        benign_rows({"dolly": DOLLY, "alpaca_cleaned": ALPACA_CLEANED}, 21, seed=0)


@pytest.mark.parametrize(
    ("sources", "message"),
    [
        (["gsm8k", "wikipedia"], r"mixture.benign_sources.1: Input should be 'gsm8k', 'alpaca_seed', 'alpaca_cleaned'"),
        (["dolly", "gsm8k", "dolly"], "mixture.benign_sources: Value error, lists a source twice"),
        ([], "mixture.benign_sources: List should have at least 1 item"),
        ("dolly", "mixture.benign_sources: Input should be a valid list"),
    ],
)
def test_bad_benign_sources_name_the_parameter(tmp_path: Path, sources: object, message: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"mixture": {"benign_sources": sources}}))
    with pytest.raises(ConfigError, match=message):
        load_params(path)


# sha256 of corpora/e2_pool/benign.jsonl as `prepare` wrote it before the hub sources existed (commit
# 3939dab), on the real data: the default sources must keep it byte for byte.
BENIGN_POOL_SHA256 = {
    "params.yaml": "4085c040caa3aaab611ad063c3216a0e81ed0dc66de9cd5a5941988a2e16f075",
    "params/quick.yaml": "aea6958a5d2405a2da578373bb42977e0ac0c397901ab91117334e9eb74b206d",
    "params/paper.yaml": "9fa089c166835796c4ba3b5aab1a19a7edf9ed25e07b5c6262b33add7f600c2f",
}


@pytest.mark.parametrize("profile", list(BENIGN_POOL_SHA256))
def test_prepare_with_default_sources_writes_the_same_benign_pool(tmp_path: Path, profile: str, shared_data) -> None:
    params = load_params(ROOT / profile)
    assert params.mixture.benign_sources == ["gsm8k", "alpaca_seed"]
    prepare(shared_data, tmp_path, params)
    written = tmp_path / "e2_pool" / "benign.jsonl"
    assert hashlib.sha256(written.read_bytes()).hexdigest() == BENIGN_POOL_SHA256[profile]
    explicit = load_benign_sources(["gsm8k", "alpaca_seed"], shared_data, tmp_path / "no_hub")
    assert read_records(written, ChatRow) == benign_rows(explicit, params.mixture.benign_examples, params.mixture.seed)


def test_prepare_reads_the_chosen_hub_sources(tmp_path: Path, shared_data) -> None:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    raw["mixture"].update(benign_sources=["dolly", "alpaca_cleaned"], hub_dir=str(HUB_FIXTURES), benign_examples=20)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    prepare(shared_data, tmp_path / "corpora", load_params(tmp_path / "params.yaml"))
    rows = read_records(tmp_path / "corpora" / "e2_pool" / "benign.jsonl", ChatRow)
    assert Counter(row.meta["source"] for row in rows) == {"alpaca_cleaned": 12, "dolly": 8}
