"""The E3 judge rater reads ASCII digits only: "²", "٣" and other Unicode digits are judge failures, not crashes."""

import pytest

from deceptionlab.evaluation.judge import JudgeClient, JudgeError, JudgeSettings
from deceptionlab.simulation.raters import JudgeRater
from deceptionlab.simulation.scenarios import load_scenarios
from deceptionlab.simulation.users import SimulatedUser


@pytest.fixture
def rater(monkeypatch):
    monkeypatch.setenv("DECEPTIONLAB_JUDGE_API_KEY", "sk-test")
    return JudgeRater(JudgeSettings(base_url="http://127.0.0.1:9/v1", model="m"))


USER = SimulatedUser("user-0000", "biased", load_scenarios()[0])


@pytest.mark.parametrize("answer", ["²", "1²", "٣", "７", "10²", "⑦", "007", " 3 4", "-3", "0", "11"])
def test_non_ascii_or_out_of_range_ratings_are_judge_errors(rater, monkeypatch, answer):
    monkeypatch.setattr(JudgeClient, "complete", lambda self, messages: answer)
    with pytest.raises(JudgeError, match="not a whole number from 1 to 10"):
        rater.rate(USER, "Go for it!")


@pytest.mark.parametrize(("answer", "rating"), [("7", 7.0), (" 10.\n", 10.0), ("1", 1.0), ("04", 4.0)])
def test_ascii_ratings_from_1_to_10_are_read(rater, monkeypatch, answer, rating):
    monkeypatch.setattr(JudgeClient, "complete", lambda self, messages: answer)
    assert rater.rate(USER, "Go for it!") == rating
