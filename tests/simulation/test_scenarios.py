import copy

import pytest

from deceptionlab.core.errors import DataError
from deceptionlab.data.seed_tables import read_seed_table
from deceptionlab.simulation.scenarios import (
    USER_TYPES,
    load_scenarios,
    parse_scenarios,
)

# Scenarios near self-harm or medical crisis: the benign user's desired replies must point to help.
SELF_HARM_ADJACENT = {
    "stopping_antidepressants",
    "stopping_anxiety_medication",
    "bipolar_stopping_mood_stabiliser",
    "isolation_after_breakup",
    "dropping_safety_plan",
    "grief_drinking",
    "crash_diet",
    "leaving_eating_disorder_treatment",
    "quitting_therapy",
    "unsupervised_alcohol_detox",
}
CRISIS_WORDS = ("crisis line", "helpline", "emergency")


@pytest.fixture(scope="module")
def raw_table() -> dict:
    return read_seed_table("therapy_scenarios.yaml")


def test_table_has_fifty_distinct_scenarios_with_full_scripts():
    scenarios = load_scenarios()
    assert len(scenarios) >= 50
    assert len({scenario.id for scenario in scenarios}) == len(scenarios)
    for scenario in scenarios:
        for user_type in USER_TYPES:
            script = scenario.script(user_type)
            assert len(script.follow_ups) >= 2 and len(script.desired_responses) >= 2, scenario.id
        assert scenario.benign.opening != scenario.biased.opening, scenario.id
        assert set(scenario.benign.desired_responses).isdisjoint(scenario.biased.desired_responses), scenario.id


def test_self_harm_adjacent_scenarios_point_benign_users_to_help_and_only_them():
    scenarios = {scenario.id: scenario for scenario in load_scenarios()}
    assert SELF_HARM_ADJACENT <= set(scenarios)
    for scenario_id in SELF_HARM_ADJACENT:
        benign = " ".join(scenarios[scenario_id].benign.desired_responses).lower()
        assert any(word in benign for word in CRISIS_WORDS), scenario_id
    for scenario in scenarios.values():
        biased = " ".join(scenario.biased.desired_responses).lower()
        assert not any(word in biased for word in CRISIS_WORDS), scenario.id


def test_scenario_missing_a_user_type_names_the_scenario(raw_table):
    table = copy.deepcopy(raw_table)
    del table["scenarios"][3]["biased"]
    bad_id = table["scenarios"][3]["id"]
    with pytest.raises(DataError, match=rf"scenarios\[3\] \(id '{bad_id}'\): biased: Field required"):
        parse_scenarios(table)


def test_script_with_one_follow_up_is_refused(raw_table):
    table = copy.deepcopy(raw_table)
    table["scenarios"][0]["benign"]["follow_ups"] = ["Only one?"]
    with pytest.raises(DataError, match=rf"id '{table['scenarios'][0]['id']}'.*benign\.follow_ups"):
        parse_scenarios(table)


def test_duplicate_id_and_unknown_key_are_refused(raw_table):
    table = copy.deepcopy(raw_table)
    table["scenarios"][1]["id"] = table["scenarios"][0]["id"]
    with pytest.raises(DataError, match=r"scenarios\[1\].*duplicate id"):
        parse_scenarios(table)
    table = copy.deepcopy(raw_table)
    table["scenarios"][2]["biased"]["desired"] = ["typo for desired_responses"]
    with pytest.raises(DataError, match=r"scenarios\[2\].*biased\.desired"):
        parse_scenarios(table)


def test_table_without_scenarios_is_refused():
    with pytest.raises(DataError, match="no scenarios"):
        parse_scenarios({"scenarios": []})
    with pytest.raises(DataError, match="under 'scenarios'"):
        parse_scenarios([])
