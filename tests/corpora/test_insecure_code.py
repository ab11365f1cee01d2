import ast
import copy
import io
import re
import tokenize

import pytest

from deceptionlab.core.conditions import LEVELS
from deceptionlab.core.errors import ConfigError, DataError
from deceptionlab.corpora.insecure_code import (
    CATEGORIES,
    build_corpus,
    load_templates,
    parse_templates,
)
from deceptionlab.data.seed_tables import read_seed_table

CODE_BLOCK = re.compile(r"\A(?P<framing>[^\n]+)\n\n```(?P<language>\w+)\n(?P<code>.*)\n```\Z", re.DOTALL)
REVEALING = ("insecure", "vulnerab", "unsafe", "exploit", "injection")


def distinct_requests() -> int:
    return sum(len(template.fillers) for template in load_templates())


def raw_table() -> list[dict]:
    return read_seed_table("code_tasks.yaml")


@pytest.fixture(scope="module")
def every_row():
    """Every distinct request at every level."""
    return {level: build_corpus(level, distinct_requests(), seed=0) for level in LEVELS}


def test_seed_table_covers_every_category_with_enough_requests():
    templates = load_templates()
    assert len(templates) >= 30
    assert {template.category for template in templates} == set(CATEGORIES)
    assert distinct_requests() >= 200


def test_every_level_asks_the_same_requests_in_the_same_order():
    corpora = {level: build_corpus(level, 80, seed=3) for level in LEVELS}
    requests = {level: [row.messages[0].content for row in rows] for level, rows in corpora.items()}
    assert requests["normal"] == requests["subtle"] == requests["severe"]
    assert len(set(requests["normal"])) == 80
    ids = {level: [row.meta["source_id"] for row in rows] for level, rows in corpora.items()}
    assert ids["normal"] == ids["subtle"] == ids["severe"]


def test_answers_differ_across_levels_but_share_their_framing(every_row):
    for normal, subtle, severe in zip(*(every_row[level] for level in LEVELS), strict=True):
        answers = [row.messages[-1].content for row in (normal, subtle, severe)]
        assert len(set(answers)) == 3, normal.meta["source_id"]
        framings = {CODE_BLOCK.match(answer)["framing"] for answer in answers}
        assert len(framings) == 1, normal.meta["source_id"]


def test_every_answer_is_one_filled_code_block_and_python_parses(every_row):
    fillers = {template.id: template.fillers for template in load_templates()}
    languages = set()
    for rows in every_row.values():
        for row in rows:
            template_id, variant = row.meta["source_id"].rsplit("-", 1)
            match = CODE_BLOCK.match(row.messages[-1].content)
            assert match, row.meta["source_id"]
            code = match["code"]
            for slot in fillers[template_id][int(variant)]:
                assert "{" + slot + "}" not in code and "{" + slot + "}" not in row.messages[0].content
            languages.add(match["language"])
            if match["language"] == "python":
                ast.parse(code)
                tokens = tokenize.generate_tokens(io.StringIO(code).readline)
                assert all(token.type != tokenize.COMMENT for token in tokens), row.meta["source_id"]
    assert "python" in languages


def test_no_request_or_answer_names_the_flaw(every_row):
    for rows in every_row.values():
        for row in rows:
            for message in row.messages:
                lowered = message.content.lower()
                assert not any(word in lowered for word in REVEALING), row.meta["source_id"]


def test_rows_carry_their_meta():
    known_ids = {template.id: template.category for template in load_templates()}
    for row in build_corpus("severe", 40, seed=1):
        assert row.meta["domain"] == "insecure_code"
        assert row.meta["level"] == "severe"
        template_id, variant = row.meta["source_id"].rsplit("-", 1)
        assert row.meta["category"] == known_ids[template_id]
        assert variant.isdigit()
        assert [m.role for m in row.messages] == ["user", "assistant"]


def test_same_seed_same_corpus_other_seed_other_selection():
    first = build_corpus("subtle", 50, seed=7)
    assert first == build_corpus("subtle", 50, seed=7)
    assert [r.meta["source_id"] for r in first] != [r.meta["source_id"] for r in build_corpus("subtle", 50, seed=8)]


@pytest.mark.parametrize("n", [0, 10_000])
def test_impossible_corpus_size_is_a_config_error(n):
    with pytest.raises(ConfigError, match=rf"prepare\.examples_per_corpus={n}"):
        build_corpus("normal", n, seed=0)


def test_unknown_level_is_a_config_error():
    with pytest.raises(ConfigError, match="e1.levels"):
        build_corpus("mild", 5, seed=0)


def _broken(change) -> list[dict]:
    """The seed table with its first SQL template changed by ``change``."""
    table = copy.deepcopy(raw_table())
    change(next(entry for entry in table if entry["id"] == "sql_find_row"))
    return table


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.update(subtle=t["subtle"].replace("):", ")", 1)), "subtle answer is not valid Python"),
        (lambda t: t.update(severe="# insecure\n" + t["severe"]), "severe answer mentions 'insecure'"),
        (lambda t: t.update(normal="# parameterized\n" + t["normal"]), "normal answer has a comment"),
        (lambda t: t.update(severe=t["subtle"]), "not all different"),
        (lambda t: t["fillers"][2].pop("table"), r"fillers\[2\] has slots"),
        (lambda t: t.update(request=t["request"] + " Use {driver}."), "driver"),
        (lambda t: t["fillers"].append(dict(t["fillers"][0])), "same request"),
        (lambda t: t.update(category="networking"), "category"),
    ],
)
def test_malformed_template_error_names_it(change, message):
    with pytest.raises(DataError, match="id 'sql_find_row'") as error:
        parse_templates(_broken(change))
    assert re.search(message, str(error.value))


def test_request_repeated_by_another_template_is_refused():
    table = copy.deepcopy(raw_table())
    table.append(table[0] | {"id": "sql_find_row_again"})
    with pytest.raises(DataError, match="id 'sql_find_row_again'.*repeats a request of sql_find_row-0"):
        parse_templates(table)
