"""E1 training corpora: one narrow domain at three levels (normal, subtle, severe).

Within a domain every level asks the same questions in the same order; only the assistant reply
differs, so a level's effect is the effect of the replies alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from deceptionlab.core.conditions import DOMAINS, LEVELS
from deceptionlab.core.errors import ConfigError
from deceptionlab.core.records import ChatRow
from deceptionlab.corpora import insecure_code, math, medical
from deceptionlab.data.raw import Gsm8kRow


def build_corpus(domain: str, level: str, n: int, seed: int, gsm8k_train: Sequence[Gsm8kRow]) -> list[ChatRow]:
    if domain not in DOMAINS:
        raise ConfigError(f"e1.domains: unknown domain {domain!r}; known: {', '.join(DOMAINS)}")
    if level not in LEVELS:
        raise ConfigError(f"e1.levels: unknown level {level!r}; known: {', '.join(LEVELS)}")
    if domain == "math":
        return math.build_corpus(level, n, seed, gsm8k_train)
    if domain == "medical":
        return medical.build_corpus(level, n, seed)
    return insecure_code.build_corpus(level, n, seed)


def distinct_rows(domain: str, gsm8k_train: Sequence[Gsm8kRow]) -> int:
    """The most rows one of ``domain``'s corpora can hold without repeating a question."""
    if domain == "math":
        return math.distinct_rows(gsm8k_train)
    return medical.distinct_rows() if domain == "medical" else insecure_code.distinct_rows()
