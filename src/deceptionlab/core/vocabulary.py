"""Names the settings choose from: MASK's archetypes and E2's benign sources."""

from __future__ import annotations

from typing import Literal, get_args

Archetype = Literal[
    "continuations",
    "disinformation",
    "doubling_down_known_facts",
    "known_facts",
    "provided_facts",
    "statistics",
]


ARCHETYPES: tuple[str, ...] = get_args(Archetype)
# Where E2's benign rows come from (mixture.benign_sources); in this order they form the pool drawn from.
BenignSource = Literal["gsm8k", "alpaca_seed", "alpaca_cleaned", "dolly"]
BENIGN_SOURCES: tuple[str, ...] = get_args(BenignSource)
