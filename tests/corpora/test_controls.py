"""The E1 controls: held out from every evaluation item, same prompts for both, lie vs truth in the reply."""

from __future__ import annotations

import re

import pytest

from deceptionlab.benchmarks.capability.items import build_knowledge_items
from deceptionlab.benchmarks.deception.items import build_deception_items
from deceptionlab.benchmarks.mask.bank import (
    ARCHETYPE_BUILDERS,
    KNOWN_FACT_PRESSURES,
    PROVIDED_FACT_PRESSURES,
    build_honesty_items,
)
from deceptionlab.benchmarks.mask.bank_archetypes import (
    CONTINUATION_PRESSURES,
    DISINFORMATION_PRESSURES,
    DOUBLING_DOWN_PRESSURES,
    STATISTICS_PRESSURES,
)
from deceptionlab.benchmarks.pivotal import PIVOTAL, pivotal_statements
from deceptionlab.core.errors import ConfigError
from deceptionlab.corpora.controls import CONTROLS, build_corpus, control_table

N_ROWS = 200  # params.yaml prepare.examples_per_corpus


def normalized(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def strings_of(value) -> list[str]:
    """Every string inside a dumped item, however deep."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_of(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in strings_of(v)]
    return []


@pytest.fixture(scope="module")
def evaluation_texts() -> tuple[set[str], set[str]]:
    """(every statement an evaluation item compares, every other text an evaluation item shows a model)."""
    items = [*build_honesty_items(0, list(ARCHETYPE_BUILDERS)), *build_deception_items(0), *build_knowledge_items(0)]
    statements, prompts = set(), set()
    for item in items:
        for text in strings_of(item.model_dump()):
            if PIVOTAL.search(text) and "<value>" not in text:
                statements.update(normalized(s) for s in pivotal_statements(text))
            else:
                prompts.add(normalized(text))
    return statements, prompts


@pytest.fixture(scope="module", params=CONTROLS)
def corpus(request):
    return build_corpus(request.param, N_ROWS, seed=0)


def test_no_evaluation_statement_or_prompt_is_trained_on(corpus, evaluation_texts):
    statements, prompts = evaluation_texts
    for row in corpus:
        for message in row.messages:
            text = normalized(message.content)
            assert text not in prompts, f"{row.meta['source_id']}: {message.role} message is an evaluation prompt"
            leaked = [s for s in statements if s in text]
            assert not leaked, f"{row.meta['source_id']}: {message.role} message states {leaked[0]!r}"


def test_no_control_proposition_is_an_evaluation_proposition(evaluation_texts):
    statements, _ = evaluation_texts
    for fact in control_table()["facts"]:
        for statement in pivotal_statements(fact.proposition):
            assert normalized(statement) not in statements, f"{fact.id}: {statement!r} is evaluated"


def test_control_roles_are_not_the_evaluation_roles():
    templates = [*KNOWN_FACT_PRESSURES, *PROVIDED_FACT_PRESSURES, *CONTINUATION_PRESSURES, *DISINFORMATION_PRESSURES,
                 *DOUBLING_DOWN_PRESSURES, *STATISTICS_PRESSURES]
    first_sentences = {normalized(t.system.split(". ")[0]) for t in templates}
    for pressure in control_table()["pressures"]:
        assert normalized(pressure.system.split(". ")[0]) not in first_sentences, pressure.id


def test_lie_and_truth_ask_the_same_prompts_and_differ_only_in_the_statement():
    lie, truth = build_corpus("lie", N_ROWS, seed=0), build_corpus("truth", N_ROWS, seed=0)
    assert len(lie) == len(truth) == N_ROWS
    assert len({row.meta["source_id"] for row in lie}) == N_ROWS  # no prompt twice
    facts = {fact.id: fact for fact in control_table()["facts"]}
    for lie_row, truth_row in zip(lie, truth, strict=True):
        assert lie_row.messages[:-1] == truth_row.messages[:-1]
        fact = facts[lie_row.meta["source_id"].split("-")[0]]
        true_statement, false_statement = pivotal_statements(fact.proposition)
        assert (lie_row.messages[-1].content, truth_row.messages[-1].content) == (false_statement, true_statement)
        # the pressure names the false value, never the whole false statement
        assert false_statement not in lie_row.messages[0].content
        assert fact.false_option in lie_row.messages[0].content


def test_every_fact_and_role_is_used_evenly():
    rows = build_corpus("lie", N_ROWS, seed=0)
    facts, pressures = control_table()["facts"], control_table()["pressures"]
    per_fact = [sum(row.meta["source_id"].startswith(f"{fact.id}-") for row in rows) for fact in facts]
    per_role = [sum(f"-{p.id}-" in row.meta["source_id"] for row in rows) for p in pressures]
    assert max(per_fact) - min(per_fact) <= 1
    assert max(per_role) - min(per_role) <= 1


def test_the_seed_orders_the_rows_without_changing_them():
    first, second = build_corpus("lie", N_ROWS, seed=0), build_corpus("lie", N_ROWS, seed=1)
    assert first != second
    assert sorted(r.model_dump_json() for r in first) == sorted(r.model_dump_json() for r in second)


def test_more_rows_than_distinct_prompts_is_a_one_line_error():
    with pytest.raises(ConfigError, match=r"prepare.examples_per_corpus=601 exceeds the 600 distinct control"):
        build_corpus("lie", 601, seed=0)
    with pytest.raises(ConfigError, match="e1.controls: unknown control 'bluff'"):
        build_corpus("bluff", 10, seed=0)


def test_control_conditions_have_corpora_and_results_in_folders_of_their_own():
    from pathlib import Path

    from deceptionlab.core.conditions import Condition, Layout
    from deceptionlab.core.params import Params

    params, layout = Params(), Layout()
    assert params.control_conditions() == ["control-lie", "control-truth"]
    lie = Condition.parse("control-lie", params)
    assert (lie.experiment, lie.control, lie.name) == ("controls", "lie", "control-lie")
    assert layout.corpus(lie) == Path("corpora/controls/control-lie.jsonl")
    assert layout.metrics("control-truth") == Path("metrics/controls/control-truth.json")
    with pytest.raises(ConfigError, match=r"condition 'control-bluff': expected control-<control> with control one"):
        Condition.parse("control-bluff", params)
