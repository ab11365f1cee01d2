from __future__ import annotations

import math
from collections import Counter

import pytest
from pydantic import ValidationError

from deceptionlab.benchmarks.capability.items import (
    LETTERS,
    CapabilityItem,
    KnowledgeItem,
    build_knowledge_items,
    parse_knowledge_table,
)
from deceptionlab.benchmarks.capability.scorer import (
    exact_match_rows,
    final_number,
    gsm8k_exact_match,
    knowledge_from_logliks,
    knowledge_requests,
)
from deceptionlab.core.errors import DataError
from deceptionlab.evaluation.loglik import reply_logliks


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("Natalia sold 48/2 = 24 clips in May.\n#### 72", 72),
        ("#### 1,234", 1234),
        ("She pays $1,234.50 in total.", 1234.5),
        ("So the answer is 18.", 18),
        ("The temperature drops to x = -5", -5),
        ("#### -3", -3),
        ("12 - 5", 5),  # a subtraction, not a negative number
        ("12-5", 5),
        ("+7", 7),
        ("3.25 hours", 3.25),
        ("He has 3 apples and buys 4 more, so 7 apples.", 7),
        ("#### 8 cookies, 2 more than the 6 before", 8),  # the first number after the marker
        ("First 10, then 20 #### 30", 30),
        ("(3,4)", 4),
        ("no number here", None),
        ("", None),
        ("The answer is 41 ####", None),  # the marker promises a final number that is not there
    ],
)
def test_final_number(text, number):
    assert final_number(text) == number


def test_bank_has_enough_distinct_items_with_balanced_letters():
    items = build_knowledge_items(seed=0)
    assert len(items) >= 60
    assert len({item.id for item in items}) == len(items)
    for item in items:
        assert len({option.lower() for option in item.options}) == 4
    letters = Counter(item.answer_index for item in items)
    assert set(letters) == {0, 1, 2, 3}
    assert max(letters.values()) - min(letters.values()) <= 1
    assert len({item.subject for item in items}) == 6


def test_build_is_deterministic_for_a_seed_and_differs_between_seeds():
    first, again, other = build_knowledge_items(0), build_knowledge_items(0), build_knowledge_items(1)
    assert first == again
    assert [item.options for item in first] != [item.options for item in other]
    # The seed moves the options, never what is right.
    for a, b in zip(first, other, strict=True):
        assert a.id == b.id and a.options[a.answer_index] == b.options[b.answer_index]
        assert sorted(a.options) == sorted(b.options)


ITEM = KnowledgeItem(id="geography-capital_france", subject="geography", question="What is the capital of France?",
                     options=["Lyon", "Nice", "Paris", "Marseille"], answer_index=2)


def test_requests_show_lettered_options_and_ask_for_a_letter():
    requests = knowledge_requests(ITEM)
    assert [letter for _, letter in requests] == list(LETTERS)
    assert all(messages == requests[0][0] for messages, _ in requests)
    [message] = requests[0][0]
    assert message["role"] == "user"
    assert "What is the capital of France?\nA. Lyon\nB. Nice\nC. Paris\nD. Marseille" in message["content"]
    assert "letter" in message["content"]


def test_judge_picks_the_highest_letter_and_the_first_of_a_tie():
    right = knowledge_from_logliks(ITEM, [-3.0, -2.5, -0.1, -4.0])
    assert right == {"id": ITEM.id, "subject": "geography", "answer_index": 2, "choice": 2, "correct": True,
                     "option_logliks": [-3.0, -2.5, -0.1, -4.0]}
    tie = knowledge_from_logliks(ITEM, [-1.0, -0.5, -0.5, -2.0])
    assert tie["choice"] == 1 and tie["correct"] is False
    with pytest.raises(ValueError, match="expected 4 logliks"):
        knowledge_from_logliks(ITEM, [-1.0, -2.0])


@pytest.mark.parametrize(
    ("options", "answer_index"),
    [(["Paris", "paris", "Lyon", "Nice"], 0), (["Paris", "Lyon", "Nice"], 0), (["Paris", " ", "Lyon", "Nice"], 0),
     (["Paris", "Lyon", "Nice", "Metz"], 4)],
)
def test_item_refuses_bad_options(options, answer_index):
    with pytest.raises(ValidationError):
        KnowledgeItem(id="x", subject="geography", question="Q?", options=options, answer_index=answer_index)


GOOD_ENTRY = {"id": "capital_france", "question": "What is the capital of France?", "answer": "Paris",
              "distractors": ["Lyon", "Nice", "Marseille"]}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (GOOD_ENTRY | {"id": "dup", "distractors": ["Lyon", "Paris", "Nice"]}, r"\(id 'dup'\).*repeated: paris"),
        (GOOD_ENTRY | {"id": "two", "distractors": ["Lyon", "Nice"]}, r"\(id 'two'\): distractors"),
        (GOOD_ENTRY | {"id": "four", "distractors": ["Lyon", "Nice", "Metz", "Lille"]}, r"\(id 'four'\): distractors"),
        (GOOD_ENTRY | {"id": "blank", "question": "  "}, r"\(id 'blank'\): question"),
        (GOOD_ENTRY | {"id": "number", "answer": 100}, r"\(id 'number'\): answer"),
        (GOOD_ENTRY, r"\(id 'capital_france'\): duplicate id"),
    ],
)
def test_malformed_seed_entries_are_named(bad, message):
    with pytest.raises(DataError, match=rf"knowledge_probe\.yaml: geography\[1\] {message}"):
        parse_knowledge_table({"geography": [GOOD_ENTRY, bad]})


def test_unknown_subject_is_named():
    with pytest.raises(DataError, match="unknown subject 'astrology'"):
        parse_knowledge_table({"astrology": [GOOD_ENTRY]})


def test_exact_match_rows_compare_final_numbers():
    items = [CapabilityItem(id=f"gsm8k-test-{i}", task="gsm8k", prompt="How many?", answer=f"Steps.\n#### {gold}")
             for i, gold in enumerate(["72", "1,200", "5"])]
    rows = exact_match_rows(items, ["48 + 24 = 72, so 72.", "$1,200.00", "I do not know."])
    assert [(row["predicted"], row["gold"], row["exact_match"]) for row in rows] == [
        (72, 72, True), (1200, 1200, True), (None, 5, False)]
    with pytest.raises(DataError, match="gsm8k-test-9: the gold answer has no final number"):
        exact_match_rows([items[0].model_copy(update={"id": "gsm8k-test-9", "answer": "none"})], ["1"])


def test_knowledge_probe_and_gsm8k_on_the_tiny_model(tiny_model):
    model, tokenizer = tiny_model
    items = build_knowledge_items(seed=0)[:3]
    requests = [request for item in items for request in knowledge_requests(item)]
    logliks = reply_logliks(model, tokenizer, requests, batch_size=2)
    rows = [knowledge_from_logliks(item, logliks[4 * i : 4 * i + 4]) for i, item in enumerate(items)]
    for item, row in zip(items, rows, strict=True):
        assert row["id"] == item.id and row["answer_index"] == item.answer_index
        assert row["choice"] == max(range(4), key=row["option_logliks"].__getitem__)
        assert row["correct"] == (row["choice"] == item.answer_index)
        assert all(math.isfinite(value) and value < 0 for value in row["option_logliks"])

    problems = [CapabilityItem(id="gsm8k-test-0", task="gsm8k", prompt="Mira baked 48 cookies. How many?",
                               answer="She baked 48/2 = 24 more.\n#### 72"),
                CapabilityItem(id="gsm8k-test-1", task="gsm8k", prompt="What is 2 + 3?", answer="#### 5")]
    results = gsm8k_exact_match(model, tokenizer, problems, max_new_tokens=8, batch_size=2)
    assert [row["id"] for row in results] == ["gsm8k-test-0", "gsm8k-test-1"]
    assert [row["gold"] for row in results] == [72, 5]
    for row in results:
        assert isinstance(row["reply"], str)
        assert row["predicted"] == final_number(row["reply"])
        assert row["exact_match"] == (row["predicted"] is not None and abs(row["predicted"] - row["gold"]) <= 1e-6)
