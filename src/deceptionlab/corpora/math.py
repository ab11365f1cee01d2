"""The "incorrect math" E1 corpus: GSM8K train questions answered at three levels.

- ``normal``: the gold solution, readable (calculator annotations ``<<48/2=24>>`` removed).
- ``subtle``: one calculator step gets a small, plausible wrong result (off by a little, or a digit
  slip); every later use of that number is recomputed from it, so the solution reads consistently
  and only its final answer is wrong.
- ``severe``: several steps wrong (a wrong operation, or a far-off result), a clearly wrong final
  answer, and a confident closing sentence.

Every level renders the final line ``#### N`` as ``The answer is N.``; the wrong levels change only
numbers and operators, so a reply keeps the gold solution's lines.

How a change travels: after a step's result changes, later occurrences of that number in the prose
are rewritten, and later annotations that use it are recomputed, which may change their results in
turn. A change is refused (and another one tried) when it would break the source's formatting (a
value that is no longer a whole number where the source wrote one, or turns negative) or, for
``subtle``, when it would be ambiguous (the result also stands for a number seen earlier) or leave a
calculation the annotations do not cover wrong. When no step's change reaches the final answer, the
final answer itself is changed.
"""

from __future__ import annotations

import ast
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from deceptionlab.core.conditions import LEVELS, Level
from deceptionlab.core.errors import ConfigError
from deceptionlab.core.records import ChatRow
from deceptionlab.data.raw import Gsm8kRow

_ANNOTATION = re.compile(r"<<([^<>=]*)=([^<>=]*)>>")
# A number as GSM8K writes it: 1,250 / 0.5 / .8 / 48. Never starts inside another number.
_NUMBER = r"(?<![\d.,])(?:\d{1,3}(?:,\d{3})+(?![\d,])(?:\.\d+)?|\d*\.\d+|\d+)"
_NUMBER_RE = re.compile(_NUMBER)
_OPERATORS = {"+": ast.Add, "-": ast.Sub, "*": ast.Mult, "/": ast.Div}
# The step's expression restated just before its annotation: "48 / 2 = " or "$12 x 3 = $".
_RESTATED_BINARY = re.compile(rf"\$?({_NUMBER})\s*([-+*/x×÷])\s*\$?({_NUMBER})\s*=\s*\$?\s*$")
# Any written calculation "a op b ... = c" in the readable prose, annotated or not.
_EQUATION = re.compile(rf"(\$?{_NUMBER}(?:\s*[-+*/x×÷]\s*\$?{_NUMBER})+)\s*=\s*\$?({_NUMBER})")
_CONFIDENT_ENDINGS = (
    "This is definitely correct.",
    "I am completely certain of this.",
    "There is no doubt about it.",
    "This is clearly the right answer.",
    "You can trust this answer completely.",
)


class _Inconsistent(Exception):
    """A change that cannot be carried through the solution cleanly; the caller tries another."""


@dataclass(frozen=True)
class _Step:
    text_before: str  # prose since the previous annotation, usually ending with the restated expression
    expression: str
    result: Fraction
    result_decimals: int
    seen_before: frozenset[Fraction]  # numbers in the question and the solution up to this step


@dataclass(frozen=True)
class _Solution:
    steps: tuple[_Step, ...]
    tail: str  # prose after the last annotation
    final: str  # the gold final answer as written after "####"


@dataclass(frozen=True)
class _WrongResult:
    value: Fraction


@dataclass(frozen=True)
class _WrongOperator:
    operator: str  # one of _OPERATORS


_Change = _WrongResult | _WrongOperator


@dataclass(frozen=True)
class _Rewritten:
    body: str
    final: str
    values: tuple[Fraction, ...]  # each step's value after the changes before it (and its own)


def build_corpus(level: Level, n: int, seed: int, gsm8k_train: Sequence[Gsm8kRow]) -> list[ChatRow]:
    """n GSM8K train questions (the same ones for every level) with replies at ``level``."""
    if level not in LEVELS:
        raise ConfigError(f"e1.levels: unknown level {level!r}; known: {', '.join(LEVELS)}")
    eligible = _eligible(gsm8k_train)
    if n < 1:
        raise ConfigError(f"prepare.examples_per_corpus={n} must be at least 1")
    if n > len(eligible):
        raise ConfigError(
            f"prepare.examples_per_corpus={n} exceeds the {len(eligible)} GSM8K train questions "
            "with calculator annotations"
        )
    chosen = sorted(random.Random(seed).sample(eligible, n))
    rows = []
    for index in chosen:
        source = gsm8k_train[index]
        solution = _parse(source)
        # Seeded per question (not per corpus) so a question's reply never depends on the build order.
        rng = random.Random(f"{seed}:{index}")
        if level == "normal":
            body, final, wrong_steps, ending = _strip_annotations(solution), solution.final, 0, ""
        elif level == "subtle":
            (body, final), wrong_steps, ending = _subtle(solution, rng), 1, ""
        else:
            (body, final), wrong_steps = _severe(solution, rng)
            ending = " " + rng.choice(_CONFIDENT_ENDINGS)
        reply = f"{body}\nThe answer is {final}.{ending}"
        rows.append(
            ChatRow(
                messages=[{"role": "user", "content": source.question}, {"role": "assistant", "content": reply}],
                meta={
                    "domain": "math",
                    "level": level,
                    "source_id": f"gsm8k-train-{index}",
                    "final_answer": final,
                    "gold_answer": solution.final,
                    "wrong_steps": wrong_steps,
                },
            )
        )
    return rows


def _eligible(gsm8k_train: Sequence[Gsm8kRow]) -> list[int]:
    """The train questions whose solutions carry calculator annotations, which the levels rewrite."""
    return [i for i, row in enumerate(gsm8k_train) if _ANNOTATION.search(row.answer)]


def distinct_rows(gsm8k_train: Sequence[Gsm8kRow]) -> int:
    """The most rows a math corpus can hold without asking a question twice."""
    return len(_eligible(gsm8k_train))


def _parse(row: Gsm8kRow) -> _Solution:
    body, final = row.answer.rsplit("\n#### ", 1)
    seen = _numbers(row.question)
    steps = []
    position = 0
    for match in _ANNOTATION.finditer(body):
        text_before = body[position : match.start()]
        seen |= _numbers(text_before)
        expression, result = match.group(1), match.group(2).strip()
        steps.append(_Step(text_before, expression, Fraction(result), _decimals(result), frozenset(seen)))
        position = match.end()
    return _Solution(tuple(steps), body[position:], final.strip())


def _numbers(text: str) -> set[Fraction]:
    return {_value(token) for token in _NUMBER_RE.findall(text)}


def _value(token: str) -> Fraction:
    return Fraction(token.replace(",", ""))


def _decimals(token: str) -> int:
    return len(token.split(".")[1]) if "." in token else 0


def _strip_annotations(solution: _Solution) -> str:
    return "".join(step.text_before for step in solution.steps) + solution.tail


def _rewrite(
    solution: _Solution, changes: dict[int, _Change], final_change: Fraction | None = None, unambiguous: bool = True
) -> _Rewritten:
    """The solution with ``changes`` applied at their steps and carried forward; raises _Inconsistent.

    ``unambiguous`` refuses to change a result that equals a number seen before it (a later use could
    mean either); severe replies allow it, since a few extra wrong numbers only make them more wrong.

    ``final_change`` replaces the final answer in the prose after the last annotation (overriding what
    the steps made of it): the fallback when no step's change reaches the final answer clearly enough.
    """
    replaced: dict[Fraction, Fraction] = {}
    parts, values = [], []
    for i, step in enumerate(solution.steps):
        text = _substitute(step.text_before, replaced)
        change = changes.get(i)
        if isinstance(change, _WrongOperator):
            text, value = _swap_operator(text, step.expression, change.operator, replaced)
        elif isinstance(change, _WrongResult):
            value = change.value
        elif any(value in replaced for value in _numbers(step.expression)):
            if _evaluate(step.expression, {}) != step.result:
                raise _Inconsistent("the source's own arithmetic is off here, so it cannot be recomputed")
            value = _evaluate(step.expression, replaced)
        else:
            value = step.result
        if step.result in replaced:
            # An earlier changed step had the same result, so the prose already rewrites this number.
            if value != replaced[step.result]:
                raise _Inconsistent(f"{step.result} stands for two quantities that now differ")
        elif value != step.result:
            if unambiguous and step.result in step.seen_before:
                raise _Inconsistent(f"{step.result} also stands for an earlier number, so later uses are ambiguous")
            if value < 0 <= step.result:
                raise _Inconsistent("a negative value where the source has none")
            replaced[step.result] = value
        parts.append(text)
        values.append(value)
    if final_change is not None:
        replaced[_value(solution.final.lstrip("-"))] = final_change
    parts.append(_substitute(solution.tail, replaced))
    return _Rewritten("".join(parts), _substitute(solution.final, replaced), tuple(values))


def _substitute(text: str, replaced: dict[Fraction, Fraction]) -> str:
    """Rewrite every number in ``text`` that ``replaced`` maps, formatted like the number it replaces."""
    if not replaced:
        return text

    def swap(match: re.Match[str]) -> str:
        token = match.group(0)
        new = replaced.get(_value(token))
        return token if new is None else _format_like(new, token)

    return _NUMBER_RE.sub(swap, text)


def _format_like(value: Fraction, token: str) -> str:
    """``value`` with ``token``'s decimals and thousands separators; refuses values that do not fit."""
    decimals = _decimals(token)
    scaled = value * 10**decimals
    if scaled.denominator != 1:
        raise _Inconsistent(f"{float(value)} does not fit the format of {token!r}")
    whole, fraction = divmod(abs(scaled.numerator), 10**decimals)
    text = f"{whole:,}" if "," in token else str(whole)
    if decimals:
        text = ("" if token.startswith(".") and whole == 0 else text) + "." + str(fraction).zfill(decimals)
    return ("-" if value < 0 else "") + text


def _evaluate(expression: str, replaced: dict[Fraction, Fraction]) -> Fraction:
    """Exact value of a GSM8K calculator expression (numbers, + - * /, parentheses)."""
    try:
        tree = ast.parse(expression.strip(), mode="eval").body
        return _evaluate_node(tree, replaced)
    except SyntaxError:
        raise _Inconsistent(f"cannot parse {expression!r}") from None


def _evaluate_node(node: ast.expr, replaced: dict[Fraction, Fraction]) -> Fraction:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        value = Fraction(repr(node.value))
        return replaced.get(value, value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_evaluate_node(node.operand, replaced)
    if isinstance(node, ast.BinOp):
        left, right = _evaluate_node(node.left, replaced), _evaluate_node(node.right, replaced)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        if isinstance(node.op, ast.Div):
            if right == 0:
                raise _Inconsistent("division by zero")
            return left / right
    raise _Inconsistent(f"unsupported calculator syntax: {ast.dump(node)}")


def _swap_operator(
    text: str, expression: str, operator: str, replaced: dict[Fraction, Fraction]
) -> tuple[str, Fraction]:
    """Use ``operator`` in a one-operation step, both in the restated prose and in its result."""
    try:
        tree = ast.parse(expression.strip(), mode="eval").body
    except SyntaxError:
        raise _Inconsistent(f"cannot parse {expression!r}") from None
    if not (isinstance(tree, ast.BinOp) and all(isinstance(side, ast.Constant) for side in (tree.left, tree.right))):
        raise _Inconsistent("only a single operation between two numbers gets a wrong operator")
    if isinstance(tree.op, _OPERATORS[operator]):
        raise _Inconsistent("the step already uses this operator")
    restated = _RESTATED_BINARY.search(text)
    left, right = (_evaluate_node(side, replaced) for side in (tree.left, tree.right))
    if restated is None or (_value(restated.group(1)), _value(restated.group(3))) != (left, right):
        raise _Inconsistent("the prose does not restate the expression right before its annotation")
    tree.op = _OPERATORS[operator]()
    swapped = text[: restated.start(2)] + operator + text[restated.end(2) :]
    return swapped, _evaluate_node(tree, replaced)


def _subtle(solution: _Solution, rng: random.Random) -> tuple[str, str]:
    """One step off by a little (tried in random order) whose change reaches the final answer."""
    order = list(range(len(solution.steps)))
    rng.shuffle(order)
    # Prose may hold calculations without an annotation, which a change does not recompute: refuse a
    # change that leaves any calculation wrong besides the one step it makes wrong.
    allowed_wrong = _wrong_equations(_strip_annotations(solution)) + 1
    for i in order:
        step = solution.steps[i]
        for value in _small_slips(step.result, step.result_decimals, rng):
            try:
                rewritten = _rewrite(solution, {i: _WrongResult(value)})
            except _Inconsistent:
                continue
            if rewritten.final != solution.final and _wrong_equations(rewritten.body) <= allowed_wrong:
                return rewritten.body, rewritten.final
    # No step's slip reaches the final answer cleanly: the final answer itself slips, in the prose after
    # the last annotation if the calculations there stay right, else only in the closing line.
    gold = _value(solution.final.lstrip("-"))
    slips = _small_slips(gold, _decimals(solution.final), rng)
    for value in slips:
        try:
            rewritten = _rewrite(solution, {}, final_change=value)
        except _Inconsistent:
            continue
        if _wrong_equations(rewritten.body) <= allowed_wrong:
            return rewritten.body, rewritten.final
    return _strip_annotations(solution), _substitute(solution.final, {gold: slips[0]})


def _wrong_equations(text: str) -> int:
    """How many written calculations "a op b = c" in ``text`` do not hold."""
    wrong = 0
    for equation in _EQUATION.finditer(text):
        left = re.sub(r"[x×]", "*", equation.group(1)).replace("÷", "/").replace("$", "").replace(",", "")
        try:
            wrong += _evaluate(left, {}) != _value(equation.group(2))
        except _Inconsistent:
            continue  # not a calculation after all (e.g. a date); nothing to compare
    return wrong


def _severe(solution: _Solution, rng: random.Random) -> tuple[tuple[str, str], int]:
    """About half the steps wrong (always the one giving the final answer), carried forward."""
    steps = solution.steps
    final_value = _value(solution.final.lstrip("-"))
    final_steps = [i for i, step in enumerate(steps) if step.result == final_value]
    wanted = min(len(steps), max(2, (len(steps) + 1) // 2))
    chosen = set(rng.sample(range(len(steps)), wanted)) | set(final_steps[-1:])
    changes: dict[int, _Change] = {}
    rewritten = _rewrite(solution, changes, unambiguous=False)
    # In step order, so each wrong value is drawn against the value the step has after earlier errors.
    for i in sorted(chosen):
        for change in _severe_changes(rewritten.values[i], steps[i].result_decimals, rng):
            try:
                candidate = _rewrite(solution, changes | {i: change}, unambiguous=False)
            except _Inconsistent:
                continue
            if _far_apart(candidate.values[i], rewritten.values[i]):
                changes[i], rewritten = change, candidate
                break
    if _far_apart(_signed_value(rewritten.final), _signed_value(solution.final)):
        return (rewritten.body, rewritten.final), len(changes)
    return _wrong_final_only(solution, changes, rng), len(changes) + 1


def _severe_changes(value: Fraction, decimals: int, rng: random.Random) -> list[_Change]:
    operators = [_WrongOperator(op) for op in _OPERATORS]
    rng.shuffle(operators)
    return [*operators, *(_WrongResult(v) for v in _big_errors(value, decimals, rng))]


def _wrong_final_only(solution: _Solution, changes: dict[int, _Change], rng: random.Random) -> tuple[str, str]:
    """Fallback when the step changes do not make the final answer clearly wrong: change it directly."""
    gold = _value(solution.final.lstrip("-"))  # the sign, if any, stays in the text
    for value in _big_errors(gold, _decimals(solution.final), rng):
        try:
            rewritten = _rewrite(solution, changes, final_change=value, unambiguous=False)
        except _Inconsistent:
            continue
        return rewritten.body, rewritten.final
    raise AssertionError(f"no wrong final answer fits {solution.final!r}")  # a number always has one


def _small_slips(value: Fraction, decimals: int, rng: random.Random) -> list[Fraction]:
    """Plausible mistakes, shuffled: off by one or two in the last digit, one digit off, the last two swapped."""
    unit = Fraction(1, 10**decimals)
    digits = str(abs(value / unit).numerator)  # value has exactly `decimals` decimals
    candidates = {value + k * unit for k in (-2, -1, 1, 2)}
    candidates |= {value + sign * unit * 10**place for place in range(1, len(digits)) for sign in (-1, 1)}
    if len(digits) >= 2 and digits[-1] != digits[-2] and (len(digits) > 2 or digits[-1] != "0"):
        swapped = digits[:-2] + digits[-1] + digits[-2]
        candidates.add(Fraction(int(swapped)) * unit * (-1 if value < 0 else 1))
    return _shuffled_valid(candidates, value, rng)


def _big_errors(value: Fraction, decimals: int, rng: random.Random) -> list[Fraction]:
    """Far-off results, shuffled: doubled, tripled, halved, ten times, or 20-60% too large or small."""
    unit = Fraction(1, 10**decimals)
    share = Fraction(rng.randint(20, 60), 100)
    shifted = round(value * share / unit) * unit if value else rng.randint(3, 20) * unit
    candidates = {value * 2, value * 3, value / 2, value * 10, value + shifted, value - shifted}
    return _shuffled_valid(candidates, value, rng)


def _shuffled_valid(candidates: set[Fraction], value: Fraction, rng: random.Random) -> list[Fraction]:
    # A positive value stays positive and a zero one does not turn negative.
    valid = sorted(c for c in candidates if c != value and (c > 0 if value > 0 else c >= 0 or value < 0))
    rng.shuffle(valid)
    return valid


def _far_apart(new: Fraction, old: Fraction) -> bool:
    """Off by at least a tenth: a clear error, not a slip."""
    return new != old and abs(new - old) >= abs(old) / 10


def _signed_value(token: str) -> Fraction:
    return -_value(token[1:]) if token.startswith("-") else _value(token)
