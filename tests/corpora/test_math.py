"""The "incorrect math" corpus: same questions at every level, gold / one slip / confidently wrong."""

from __future__ import annotations

import re
from fractions import Fraction

import pytest

from deceptionlab.core.errors import ConfigError
from deceptionlab.core.records import ChatRow, read_records
from deceptionlab.corpora.math import build_corpus
from deceptionlab.data.raw import Gsm8kRow

HAND_WRITTEN = [
    Gsm8kRow(
        question="Mira baked 48 cookies on Monday and half as many on Tuesday. How many cookies did she bake "
        "on both days?",
        answer="Mira baked 48/2 = <<48/2=24>>24 cookies on Tuesday.\n"
        "Mira baked 48+24 = <<48+24=72>>72 cookies on both days.\n#### 72",
    ),
    Gsm8kRow(
        question="Tom has 3 apples and eats 1. How many are left?",
        answer="Tom has 3 - 1 = 2 apples left.\n#### 2",  # no calculator annotation: never chosen
    ),
    Gsm8kRow(
        question="Omar is paid $12 an hour to walk dogs. Today he walked dogs for 50 minutes. How much was he paid?",
        answer="Omar is paid 12/60 = $<<12/60=0.2>>0.2 per minute.\n"
        "For 50 minutes he was paid 0.2 x 50 = $<<0.2*50=10>>10.\n#### 10",
    ),
    Gsm8kRow(
        question="Lena wants a $100 bike. She has saved half of it, her aunt gives her $15 and her uncle twice "
        "what her aunt gave. How much more does Lena need?",
        answer="Lena has saved 100 / 2 = $<<100/2=50>>50.\n"
        "Her uncle gives her 15 * 2 = $<<15*2=30>>30.\n"
        "So Lena needs 100 - 50 - 30 - 15 = $<<100-50-30-15=5>>5 more.\n#### 5",
    ),
    Gsm8kRow(
        question="A bakery makes a profit of $9 on each cake and sells 500 cakes a day, 5 days a week. What is "
        "its profit in 20 weeks?",
        answer="Each day it makes 9*500 = $<<9*500=4500>>4500\nSo it makes 4500*5 = $<<4500*5=22500>>22,500 a week\n"
        "In 20 weeks it makes 22,500*20 = $<<22500*20=450000>>450,000\n#### 450,000",
    ),
    Gsm8kRow(
        question="A farm has 184 cows, twice the number of dogs. How many animals are on the farm?",
        # The dog legs are a calculation without an annotation: a slip in 92 would leave it wrong.
        answer="There are 184/2 = <<184/2=92>>92 dogs.\nThey have 92*4 = 368 legs.\n"
        "There are 184+92 = <<184+92=276>>276 animals.\n#### 276",
    ),
    Gsm8kRow(
        question="Jo buys 2 boxes of 3 eggs and bakes a cake with 6 eggs. How many eggs are left?",
        # No step's slip can reach the final answer, which is zero: the final answer itself must slip.
        answer="She buys 2*3 = <<2*3=6>>6 eggs and uses all 6, so 6 - 6 = 0 are left.\n#### 0",
    ),
]
ELIGIBLE = 6  # every hand-written row but the one without an annotation
LEVELS = ("normal", "subtle", "severe")
# Any written calculation "a op b ... = c", read independently of the module under test.
EQUATION = re.compile(r"((?:\$?\d[\d.,]*\s*[-+*/x]\s*)+\$?\d[\d.,]*)\s*=\s*\$?(\d[\d.,]*\d|\d)")
NUMBER = re.compile(r"\d[\d.,]*\d|\d")


def wrong_equations(text: str) -> int:
    wrong = 0
    for left, right in EQUATION.findall(text):
        python = NUMBER.sub(lambda m: f"Fraction('{m.group(0).replace(',', '')}')", left.replace("$", ""))
        try:
            wrong += eval(python.replace("x", "*"), {"Fraction": Fraction}) != Fraction(right.replace(",", ""))
        except (ValueError, ZeroDivisionError, SyntaxError):
            continue  # not a calculation (a list, a date): nothing to check
    return wrong


def value(answer: str) -> Fraction:
    return Fraction(answer.replace(",", ""))


def reply(row: ChatRow) -> str:
    return row.messages[-1].content


def lines_without_numbers(text: str) -> list[str]:
    return NUMBER.sub("#", text).splitlines()


def corpora(rows, n: int, seed: int = 0) -> dict[str, list[ChatRow]]:
    return {level: build_corpus(level, n, seed, rows) for level in LEVELS}


@pytest.fixture(scope="module")
def real_rows(shared_data) -> list[Gsm8kRow]:
    return read_records(shared_data / "gsm8k" / "train.jsonl", Gsm8kRow)[:200]


def test_every_level_asks_the_same_questions_in_the_same_order():
    built = corpora(HAND_WRITTEN, ELIGIBLE, seed=3)
    asked = {level: [(r.meta["source_id"], r.messages[0].content) for r in rows] for level, rows in built.items()}
    assert asked["normal"] == asked["subtle"] == asked["severe"]
    assert "gsm8k-train-1" not in {source_id for source_id, _ in asked["normal"]}
    assert all(row.meta["domain"] == "math" and row.meta["level"] == level for level in LEVELS for row in built[level])


def test_normal_reply_is_the_gold_solution_without_annotations():
    cookies = next(r for r in build_corpus("normal", ELIGIBLE, 0, HAND_WRITTEN) if r.meta["source_id"] == "gsm8k-train-0")
    assert reply(cookies) == (
        "Mira baked 48/2 = 24 cookies on Tuesday.\n"
        "Mira baked 48+24 = 72 cookies on both days.\n"
        "The answer is 72."
    )
    assert cookies.meta["final_answer"] == cookies.meta["gold_answer"] == "72"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_subtle_reply_has_one_wrong_step_carried_to_the_final_answer(seed):
    built = corpora(HAND_WRITTEN, ELIGIBLE, seed)
    for normal, subtle in zip(built["normal"], built["subtle"], strict=True):
        final = subtle.meta["final_answer"]
        assert final != subtle.meta["gold_answer"] and not final.startswith("-")
        assert reply(subtle).endswith(f"\nThe answer is {final}.")
        # Only numbers change, and exactly one calculation is wrong: the later ones use its result.
        assert lines_without_numbers(reply(subtle)) == lines_without_numbers(reply(normal))
        assert wrong_equations(reply(normal)) == 0
        assert wrong_equations(reply(subtle)) == 1
        last_result = EQUATION.findall(reply(subtle))[-1][1]
        assert value(last_result) == value(final)


def test_subtle_keeps_number_formats():
    james = next(r for r in build_corpus("subtle", ELIGIBLE, 0, HAND_WRITTEN) if r.meta["source_id"] == "gsm8k-train-4")
    final = james.meta["final_answer"]
    assert re.fullmatch(r"\d{1,3}(,\d{3})+", final), final  # "450,000" keeps its thousands separator
    weng = next(r for r in build_corpus("subtle", ELIGIBLE, 0, HAND_WRITTEN) if r.meta["source_id"] == "gsm8k-train-2")
    assert "." not in weng.meta["final_answer"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_severe_reply_is_confidently_and_clearly_wrong(seed):
    built = corpora(HAND_WRITTEN, ELIGIBLE, seed)
    for normal, severe in zip(built["normal"], built["severe"], strict=True):
        final, gold = severe.meta["final_answer"], severe.meta["gold_answer"]
        assert abs(value(final) - value(gold)) >= value(gold) / 10 and final != gold and not final.startswith("-")
        last_line = reply(severe).splitlines()[-1]
        assert last_line.startswith(f"The answer is {final}. ") and len(last_line) > len(f"The answer is {final}. ")
        assert not re.search(r"wrong|mistake|incorrect|error|actually", reply(severe), re.IGNORECASE)
        steps = reply(normal).splitlines()[:-1]  # one calculation a line in these solutions
        changed_lines = sum(a != b for a, b in zip(steps, reply(severe).splitlines()[:-1], strict=True))
        assert severe.meta["wrong_steps"] >= min(2, len(steps)) and changed_lines >= min(2, len(steps))


def test_rows_are_deterministic_and_the_seed_selects_the_questions(real_rows):
    for level in LEVELS:
        first = build_corpus(level, 20, 0, real_rows)
        assert first == build_corpus(level, 20, 0, real_rows)
    ids = {seed: [r.meta["source_id"] for r in build_corpus("normal", 20, seed, real_rows)] for seed in (0, 1)}
    assert ids[0] != ids[1]


def test_a_reply_does_not_depend_on_the_other_questions_chosen(real_rows):
    for level in ("subtle", "severe"):
        small = {r.meta["source_id"]: reply(r) for r in build_corpus(level, 40, 0, real_rows)}
        large = {r.meta["source_id"]: reply(r) for r in build_corpus(level, 80, 0, real_rows)}
        shared = small.keys() & large.keys()
        assert shared and all(small[i] == large[i] for i in shared)


def test_more_examples_than_annotated_questions_is_a_config_error():
    assert len(build_corpus("normal", ELIGIBLE, 0, HAND_WRITTEN)) == ELIGIBLE
    with pytest.raises(ConfigError, match=r"prepare\.examples_per_corpus=7 exceeds the 6 "):
        build_corpus("subtle", ELIGIBLE + 1, 0, HAND_WRITTEN)


def test_real_gsm8k_corpora(real_rows):
    built = corpora(real_rows, 150)
    for normal, subtle, severe in zip(*built.values(), strict=True):
        for row in (normal, subtle, severe):
            assert ChatRow.model_validate(row.model_dump()) == row
            assert "<<" not in reply(row) and "####" not in reply(row)
        source = real_rows[int(normal.meta["source_id"].removeprefix("gsm8k-train-"))]
        assert normal.messages[0].content == subtle.messages[0].content == severe.messages[0].content == source.question
        solution, gold = source.answer.rsplit("\n#### ", 1)
        assert reply(normal) == re.sub(r"<<[^<>]*>>", "", solution) + f"\nThe answer is {gold}."
        assert subtle.meta["final_answer"] != gold and severe.meta["final_answer"] != gold
        assert lines_without_numbers(reply(subtle)) == lines_without_numbers(reply(normal))
        assert wrong_equations(reply(subtle)) <= wrong_equations(reply(normal)) + 1
        assert len(reply(severe).splitlines()) == len(reply(normal).splitlines())
        for final in (subtle.meta["final_answer"], severe.meta["final_answer"]):
            assert "." in final or "." not in gold  # integers stay integers
            assert not final.startswith("-")  # no gold answer in these rows is negative
