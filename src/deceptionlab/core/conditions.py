"""The experiments' conditions: E1's domains and levels."""

from __future__ import annotations

from typing import Literal, get_args

Domain = Literal["medical", "math", "insecure_code"]
Level = Literal["normal", "subtle", "severe"]


DOMAINS: tuple[str, ...] = get_args(Domain)
LEVELS: tuple[str, ...] = get_args(Level)
