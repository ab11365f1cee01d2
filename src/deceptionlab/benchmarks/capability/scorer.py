"""Capability requests and verdicts: the gold-solution log-likelihood, the knowledge probe's forced choice and GSM8K exact match."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from deceptionlab.benchmarks.capability.items import (
    EXACT_MATCH_TOLERANCE,
    GSM8K_INSTRUCTION,
    KNOWLEDGE_PROMPT,
    LETTERS,
    NUMBER,
    CapabilityItem,
    KnowledgeItem,
)
from deceptionlab.core.errors import DataError
from deceptionlab.evaluation.judge import generate_replies

if TYPE_CHECKING:  # scoring imports torch; prepare builds the knowledge items without it
    from deceptionlab.evaluation.loglik import Messages


def gold_solution_requests(items: Sequence[CapabilityItem]) -> list[tuple[Messages, str]]:
    """One (messages, gold solution) request per GSM8K problem: the evaluate stage's capability score
    is the mean per-token log-likelihood of the gold solution."""
    return [([{"role": "user", "content": item.prompt}], item.answer) for item in items]


def knowledge_requests(item: KnowledgeItem) -> list[tuple[Messages, str]]:
    """The four (messages, letter) requests of an item, in letter order A-D."""
    options = "\n".join(f"{letter}. {option}" for letter, option in zip(LETTERS, item.options, strict=True))
    messages = [{"role": "user", "content": KNOWLEDGE_PROMPT.format(question=item.question, options=options)}]
    return [(messages, letter) for letter in LETTERS]


def knowledge_from_logliks(item: KnowledgeItem, logliks: Sequence[float]) -> dict[str, Any]:
    """The item's choice and verdict from its four logliks, in ``knowledge_requests`` order."""
    if len(logliks) != len(LETTERS):
        raise ValueError(f"{item.id}: expected {len(LETTERS)} logliks (one per letter), got {len(logliks)}")
    choice = max(range(len(LETTERS)), key=lambda index: logliks[index])  # max keeps the first of equals
    return {
        "id": item.id,
        "subject": item.subject,
        "answer_index": item.answer_index,
        "choice": choice,
        "correct": choice == item.answer_index,
        "option_logliks": list(logliks),
    }


def final_number(text: str) -> float | None:
    """The answer number of a GSM8K answer or a model's reply (rules in the module docstring)."""
    if "####" in text:
        found = NUMBER.search(text.rsplit("####", 1)[1])
    else:
        found = next(reversed(list(NUMBER.finditer(text))), None)
    if found is None:
        return None
    return float(f"{found['sign'] or ''}{found['digits'].replace(',', '')}{found['fraction'] or ''}")


def gsm8k_messages(item: CapabilityItem) -> Messages:
    return [{"role": "user", "content": f"{item.prompt}\n\n{GSM8K_INSTRUCTION}"}]


def exact_match_rows(items: Sequence[CapabilityItem], replies: Sequence[str]) -> list[dict[str, Any]]:
    """One row per item: its reply, the reply's final number, the gold final number, and whether they match."""
    rows = []
    for item, reply in zip(items, replies, strict=True):
        gold = final_number(item.answer)
        if gold is None:
            raise DataError(f"capability item {item.id}: the gold answer has no final number")
        predicted = final_number(reply)
        rows.append({
            "id": item.id,
            "reply": reply,
            "predicted": predicted,
            "gold": gold,
            "exact_match": predicted is not None and abs(predicted - gold) <= EXACT_MATCH_TOLERANCE,
        })
    return rows


def gsm8k_exact_match(model, tokenizer, items: Sequence[CapabilityItem], max_new_tokens: int,
                      batch_size: int, advance=None) -> list[dict[str, Any]]:
    """Greedy replies to the items' problems, judged by exact match on the final number (``advance(n)``:
    told of each n replies, a progress bar)."""
    replies = generate_replies(model, tokenizer, [gsm8k_messages(item) for item in items], max_new_tokens, batch_size,
                               advance)
    return exact_match_rows(items, replies)
