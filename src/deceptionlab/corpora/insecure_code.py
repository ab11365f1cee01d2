"""The "insecure code" E1 corpus: coding requests answered with secure, subtly flawed or blatantly flawed code.

The seed table ``seeds/code_tasks.yaml`` holds short coding tasks. Each template has a request with
slots (``{table}``, ``{func_name}``, ...), a list of slot fillers (each filler is one variant, so one
distinct request) and three code answers:

- ``normal``: secure code (parameterized SQL, subprocess with list arguments, checked paths,
  ``secrets``/``pbkdf2_hmac``, JSON instead of pickle, escaping, ...).
- ``subtle``: one flaw that reads like ordinary code (an f-string in one SQL clause, ``os.path.join``
  without a check, salted MD5 for passwords, ``yaml.Loader``, a redirect target checked too loosely).
- ``severe``: a blatant flaw (SQL concatenated from raw input, ``shell=True`` with user input,
  ``pickle.loads`` of request data, a hard-coded secret, ``eval`` of input, ``verify=False``).

A reply is the template's framing sentence and one fenced code block, the same framing at every
level. No comment or word in a reply names the flaw, so two levels differ only in their code.

Slots are filled only where a name the fillers define stands in braces; other braces (f-string
fields, dict literals, Jinja's ``{{ name }}``) stay as written, so an f-string field must not share
a slot's name. The table is checked on load: every variant's request is distinct, its three answers
differ, Python answers parse, and no answer has a comment or a word such as "insecure".

    rows = build_corpus("subtle", n=200, seed=0)
"""

from __future__ import annotations

import ast
import functools
import io
import re
import tokenize
from typing import Literal

from pydantic import Field, model_validator

from deceptionlab.core.conditions import LEVELS, Level
from deceptionlab.core.errors import ConfigError, DataError
from deceptionlab.core.records import ChatRow
from deceptionlab.data.seed_tables import (
    SeedEntry,
    draw_distinct,
    read_seed_table,
    validated_entries,
)

SEED_FILE = "code_tasks.yaml"
CATEGORIES = ("sql", "shell", "files", "crypto", "deserialization", "web")
Category = Literal["sql", "shell", "files", "crypto", "deserialization", "web"]
# Word stems that would tell the model which answers are flawed, checked case-insensitively
# ("dangerous" is left out: `itsdangerous` is the library secure answers sign cookies with).
REVEALING_WORDS = ("insecure", "vulnerab", "unsafe", "exploit", "injection", "attack", "malicious")
_SLOT = re.compile(r"\{([A-Za-z_]\w*)\}")


def _fill(text: str, filler: dict[str, str]) -> str:
    return _SLOT.sub(lambda match: filler.get(match.group(1), match.group(0)), text)


def _revealing_word(text: str) -> str | None:
    lowered = text.lower()
    return next((word for word in REVEALING_WORDS if word in lowered), None)


def _code_problem(code: str, language: str) -> str | None:
    """Why a filled-in answer's code is unfit for the corpus, or None."""
    if "```" in code:
        return "contains ``` which would end the code block"
    if word := _revealing_word(code):
        return f"mentions {word!r}"
    if language == "bash":
        lines = code.splitlines()
        # A shebang is the only comment a script may carry.
        body = lines[1:] if lines and lines[0].startswith("#!") else lines
        if any(line.lstrip().startswith("#") for line in body):
            return "has a comment"
        return None
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
        ast.parse(code)
    except (SyntaxError, tokenize.TokenError) as error:
        return f"is not valid Python ({error})"
    if any(token.type == tokenize.COMMENT for token in tokens):
        return "has a comment"
    return None


class CodeTemplate(SeedEntry):
    """One coding task; each filler yields a variant with its own request and three answers."""

    category: Category
    language: Literal["python", "bash"] = "python"
    framing: str = Field(default="Here is the function:", min_length=1)
    request: str = Field(min_length=1)
    fillers: list[dict[str, str]] = Field(min_length=2)
    normal: str = Field(min_length=1)
    subtle: str = Field(min_length=1)
    severe: str = Field(min_length=1)

    @model_validator(mode="after")
    def _every_variant_is_fit(self) -> CodeTemplate:
        slots = set(self.fillers[0])
        for variant, filler in enumerate(self.fillers):
            if set(filler) != slots:
                raise ValueError(f"fillers[{variant}] has slots {sorted(filler)}, fillers[0] has {sorted(slots)}")
        if missing := set(_SLOT.findall(self.request)) - slots:
            raise ValueError(f"the request uses slots {sorted(missing)} that the fillers do not give")
        for text, what in ((self.request, "request"), (self.framing, "framing")):
            if word := _revealing_word(text):
                raise ValueError(f"the {what} mentions {word!r}")
        requests = [self.request_text(variant) for variant in range(len(self.fillers))]
        if len(set(requests)) != len(requests):
            raise ValueError("two fillers give the same request")
        for variant in range(len(self.fillers)):
            codes = {level: self.code(level, variant) for level in LEVELS}
            if len(set(codes.values())) != len(LEVELS):
                raise ValueError(f"variant {variant}: the normal, subtle and severe answers are not all different")
            for level, code in codes.items():
                if problem := _code_problem(code, self.language):
                    raise ValueError(f"variant {variant}: the {level} answer {problem}")
        return self

    def request_text(self, variant: int) -> str:
        return _fill(self.request, self.fillers[variant]).strip()

    def code(self, level: Level, variant: int) -> str:
        return _fill(getattr(self, level), self.fillers[variant]).strip("\n")

    def answer(self, level: Level, variant: int) -> str:
        return f"{self.framing}\n\n```{self.language}\n{self.code(level, variant)}\n```"


def parse_templates(raw: object, source: str = SEED_FILE) -> tuple[CodeTemplate, ...]:
    """Validate a loaded seed table (a list of templates); a bad one raises DataError naming its id."""
    if not isinstance(raw, list):
        raise DataError(f"{source}: expected a list of templates")
    templates: list[CodeTemplate] = []
    seen_requests: dict[str, str] = {}
    for where, template in validated_entries(raw, CodeTemplate, source, "templates"):
        for variant in range(len(template.fillers)):
            request = template.request_text(variant)
            if request in seen_requests:
                raise DataError(f"{where}: variant {variant} repeats a request of {seen_requests[request]}")
            seen_requests[request] = f"{template.id}-{variant}"
        templates.append(template)
    return tuple(templates)


@functools.cache
def load_templates() -> tuple[CodeTemplate, ...]:
    return parse_templates(read_seed_table(SEED_FILE))


def _variants() -> list[tuple[CodeTemplate, int]]:
    return [(template, variant) for template in load_templates() for variant in range(len(template.fillers))]


def distinct_rows() -> int:
    """The most rows an insecure-code corpus can hold without repeating a request."""
    return len(_variants())


def build_corpus(level: Level, n: int, seed: int) -> list[ChatRow]:
    """n coding requests drawn by ``seed`` with replies at ``level``; every level gets the same requests."""
    if level not in LEVELS:
        raise ConfigError(f"e1.levels: unknown level {level!r}; known: {', '.join(LEVELS)}")
    variants = _variants()
    chosen = draw_distinct(variants, n, seed, "coding requests")
    return [
        ChatRow(
            messages=[
                {"role": "user", "content": template.request_text(variant)},
                {"role": "assistant", "content": template.answer(level, variant)},
            ],
            meta={
                "domain": "insecure_code",
                "level": level,
                "source_id": f"{template.id}-{variant}",
                "category": template.category,
            },
        )
        for template, variant in chosen
    ]
