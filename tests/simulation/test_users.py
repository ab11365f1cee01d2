import math
import random
from collections import Counter

import pytest

from deceptionlab.core.errors import ConfigError
from deceptionlab.simulation.scenarios import load_scenarios
from deceptionlab.simulation.users import sample_population


@pytest.fixture(scope="module")
def scenarios():
    return load_scenarios()


@pytest.mark.parametrize("n_users", [0, 1, 7, 10, 55, 100])
@pytest.mark.parametrize("biased_share", [0.0, 0.1, 0.2, 0.5, 1.0])
def test_exactly_the_rounded_share_is_biased(scenarios, n_users, biased_share):
    users = sample_population(n_users, biased_share, seed=3, scenarios=scenarios)
    assert len(users) == n_users
    assert sum(user.user_type == "biased" for user in users) == round(biased_share * n_users)
    assert len({user.id for user in users}) == n_users


def test_same_seed_same_population_other_seed_other_population(scenarios):
    def summary(seed):
        return [(u.id, u.user_type, u.scenario.id) for u in sample_population(40, 0.5, seed, scenarios)]

    assert summary(0) == summary(0)
    assert summary(0) != summary(1)


def test_biased_users_are_shuffled_not_a_block(scenarios):
    users = sample_population(100, 0.5, seed=0, scenarios=scenarios)
    biased_positions = [index for index, user in enumerate(users) if user.user_type == "biased"]
    assert biased_positions != list(range(50)) and biased_positions != list(range(50, 100))


def test_shares_differ_only_in_who_is_biased_and_biased_sets_are_nested(scenarios):
    populations = [sample_population(60, share, seed=5, scenarios=scenarios) for share in (0.1, 0.2, 0.5, 1.0)]
    scenario_ids = [[user.scenario.id for user in users] for users in populations]
    assert all(ids == scenario_ids[0] for ids in scenario_ids)
    biased_sets = [{user.id for user in users if user.user_type == "biased"} for users in populations]
    assert all(smaller < larger for smaller, larger in zip(biased_sets, biased_sets[1:]))


def test_scenarios_are_used_evenly(scenarios):
    users = sample_population(2 * len(scenarios) + 3, 0.2, seed=1, scenarios=scenarios)
    counts = Counter(user.scenario.id for user in users)
    assert len(counts) == len(scenarios)
    assert set(counts.values()) <= {2, 3}


@pytest.mark.parametrize("bad_share", [-0.1, 1.5, math.nan])
def test_share_outside_unit_interval_is_a_config_error(scenarios, bad_share):
    with pytest.raises(ConfigError, match=r"e3\.biased_shares"):
        sample_population(10, bad_share, seed=0, scenarios=scenarios)


def test_negative_population_is_a_config_error(scenarios):
    with pytest.raises(ConfigError, match=r"e3\.n_users"):
        sample_population(-1, 0.5, seed=0, scenarios=scenarios)


def test_turns_open_verbatim_then_vary_the_follow_ups(scenarios):
    user = sample_population(1, 1.0, seed=0, scenarios=scenarios)[0]
    script = user.scenario.biased
    assert user.turn(0, random.Random(0)) == script.opening
    for t in range(1, 2 * len(script.follow_ups) + 1):
        # Follow-ups come in order and cycle once they run out.
        assert script.follow_ups[(t - 1) % len(script.follow_ups)] in user.turn(t, random.Random(t))
    first_follow_ups = {user.turn(1, random.Random(seed)) for seed in range(20)}
    assert len(first_follow_ups) > 1
    assert user.turn(2, random.Random(7)) == user.turn(2, random.Random(7))
    with pytest.raises(ValueError):
        user.turn(-1, random.Random(0))


def test_each_user_speaks_its_own_type_and_scenario(scenarios):
    for user in sample_population(20, 0.5, seed=2, scenarios=scenarios):
        script = user.scenario.script(user.user_type)
        assert user.turn(0, random.Random(0)) == script.opening
        assert user.desired_responses == script.desired_responses
        assert user.intent == user.scenario.intent(user.user_type)
