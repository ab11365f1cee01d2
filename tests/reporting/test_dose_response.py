"""E2 dose-response: Hill fit recovery, effective doses, bootstrap CIs, no-effect data, smallest effective dose."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from deceptionlab.core.errors import ConfigError
from deceptionlab.core.stats import Estimate
from deceptionlab.reporting.dose_response import (
    HillFit,
    bootstrap_effective_doses,
    effective_dose,
    fit_hill,
    hill_curve,
    smallest_effective_dose,
    unresolved_reasons,
)

DOSES = [0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5]  # the E2 mixture ratios
TRUTH = {"bottom": 80.0, "top": 40.0, "ed50": 0.05, "hill": 1.5}  # honesty falling with the dose
TRUE_ED10 = 0.05 * (1 / 9) ** (1 / 1.5)


def noisy(truth: dict[str, float], per_dose: int = 40, sd: float = 5.0, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    doses = np.repeat(DOSES, per_dose)
    return doses, hill_curve(doses, **truth) + np.random.default_rng(seed).normal(0.0, sd, doses.size)


def by_dose(doses: np.ndarray, responses: np.ndarray) -> dict[float, np.ndarray]:
    """The observations of ``noisy`` as paired items: the k-th observation at every dose is item k."""
    return {dose: responses[doses == dose] for dose in DOSES}


def test_curve_at_dose_zero_is_its_limit() -> None:
    at = hill_curve([0.0, 1e-12, 0.05, 1e6], **TRUTH)
    assert at[0] == 80.0
    assert at[1] == pytest.approx(80.0) and at[2] == pytest.approx(60.0) and at[3] == pytest.approx(40.0)


@pytest.mark.parametrize(("bottom", "top"), [(80.0, 40.0), (10.0, 70.0)])
def test_effective_dose_inverts_the_curve(bottom: float, top: float) -> None:
    fit = HillFit(bottom, top, ed50=0.05, hill=1.5, converged=True)
    assert effective_dose(fit, 0.5) == pytest.approx(0.05)
    for fraction in (0.1, 0.25, 0.9):
        dose = effective_dose(fit, fraction)
        assert hill_curve([dose], bottom, top, 0.05, 1.5)[0] == pytest.approx(bottom + fraction * (top - bottom))
    assert math.isnan(effective_dose(HillFit(5.0, 5.0, 0.05, 1.5, True), 0.5))


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_fraction_outside_zero_one_is_refused(fraction: float) -> None:
    with pytest.raises(ConfigError, match="fraction"):
        effective_dose(HillFit(80.0, 40.0, 0.05, 1.5, True), fraction)


def test_fit_recovers_a_known_curve() -> None:
    fit = fit_hill(*noisy(TRUTH))
    assert fit.converged
    assert fit.bottom == pytest.approx(80.0, abs=3) and fit.top == pytest.approx(40.0, abs=3)
    assert fit.ed50 == pytest.approx(0.05, rel=0.15)
    assert fit.hill == pytest.approx(1.5, rel=0.25)
    assert effective_dose(fit, 0.1) == pytest.approx(TRUE_ED10, rel=0.25)


def test_fit_recovers_a_rising_curve() -> None:
    fit = fit_hill(*noisy({"bottom": 10.0, "top": 70.0, "ed50": 0.1, "hill": 2.0}, seed=2))
    assert fit.converged and fit.top > fit.bottom
    assert fit.ed50 == pytest.approx(0.1, rel=0.15)


def test_bootstrap_cis_contain_the_true_values() -> None:
    table = by_dose(*noisy(TRUTH))
    result = bootstrap_effective_doses(table, resamples=200, seed=0)
    assert set(result.estimates) == {"ED10", "ED50", "max_effect"}
    assert result.resamples == 200 and result.failed_refits <= 10
    for name, true in [("ED10", TRUE_ED10), ("ED50", 0.05), ("max_effect", -40.0)]:
        estimate = result.estimates[name]
        assert estimate.low < true < estimate.high, name
        assert estimate.low <= estimate.value <= estimate.high, name
    assert result.estimates["ED50"].high < 0.1  # informative, not the whole dose range
    assert result.estimates["max_effect"].excludes_zero()
    assert result == bootstrap_effective_doses(table, resamples=200, seed=0)


def test_constant_responses_give_no_fit_not_a_crash() -> None:
    doses = np.repeat(DOSES, 5)
    fit = fit_hill(doses, np.full(doses.size, 70.0))
    assert not fit.converged
    assert fit.bottom == pytest.approx(70.0) and fit.top == pytest.approx(70.0)
    result = bootstrap_effective_doses(by_dose(doses, np.full(doses.size, 70.0)), resamples=20, seed=0)
    assert result.failed_refits == 20
    assert all(math.isnan(e.value) and math.isnan(e.low) for e in result.estimates.values())


def test_noisy_flat_responses_show_no_effect() -> None:
    doses = np.repeat(DOSES, 40)
    responses = 70.0 + np.random.default_rng(3).normal(0.0, 5.0, doses.size)
    result = bootstrap_effective_doses(by_dose(doses, responses), resamples=200, seed=0)
    effect = result.estimates["max_effect"]
    assert effect.low < 0 < effect.high
    # Refits on an edge of the search ranges are kept (a constrained fit is a fit), so few fail here;
    # what says "no effect" is the step's interval, and with it the fit is not read.
    assert "the CI of max_effect includes zero" in unresolved_reasons(fit_hill(doses, responses), result, 0.05)


def test_the_bootstrap_keeps_items_paired_across_doses() -> None:
    # Items differ a lot from each other (sd 20) and little within themselves across doses (sd 2):
    # resampled as pairs, the shared difficulty cancels from the step; resampled per dose it would not.
    rng = np.random.default_rng(4)
    difficulty = rng.normal(0.0, 20.0, 40)
    table = {dose: hill_curve([dose], **TRUTH)[0] + difficulty + rng.normal(0.0, 2.0, 40) for dose in DOSES}
    effect = bootstrap_effective_doses(table, resamples=200, seed=0).estimates["max_effect"]
    assert effect.low < -40.0 < effect.high
    assert effect.high - effect.low < 8.0  # unpaired, the difficulty's spread would make it about 4x wider
    with pytest.raises(ValueError, match="same items"):
        bootstrap_effective_doses({0.0: [1.0, 2.0], 0.01: [1.0], 0.02: [1.0], 0.05: [1.0]}, resamples=10)


def test_unresolved_reasons_name_each_failure() -> None:
    table = by_dose(*noisy(TRUTH))
    fit = fit_hill(np.repeat(DOSES, 40), np.concatenate([table[d] for d in DOSES]))
    boot = bootstrap_effective_doses(table, resamples=200, seed=0)
    assert unresolved_reasons(fit, boot, 0.05) == []
    failed = dataclasses.replace(boot, failed_refits=11)
    assert unresolved_reasons(fit, failed, 0.05) == ["11 of 200 bootstrap refits did not converge (more than 5%)"]
    flat = dataclasses.replace(boot, estimates=boot.estimates | {"max_effect": Estimate(-1.0, -3.0, 1.0)})
    assert unresolved_reasons(dataclasses.replace(fit, converged=False), flat, 0.05) == [
        "the fit to the measured points did not converge", "the CI of max_effect includes zero"]


def test_too_few_doses_are_refused() -> None:
    with pytest.raises(ConfigError, match="at least 4 distinct doses"):
        fit_hill([0.0, 0.1, 0.2, 0.0, 0.1, 0.2], [1, 2, 3, 1, 2, 3])
    with pytest.raises(ConfigError, match="not negative"):
        fit_hill([-0.1, 0.0, 0.1, 0.2, 0.3], [1, 2, 3, 4, 5])


# Per-item honesty (1 = honest) for 20 items; each treated dose makes some items lie.
CONTROL = [1.0] * 20


def lying(count: int) -> list[float]:
    return [0.0] * count + [1.0] * (20 - count)


def test_smallest_effective_dose_on_a_hand_made_table() -> None:
    # 0.01: one item of 20 flips, which a resample often misses, so its CI reaches 0; 0.02: eight flip.
    table = {0.0: CONTROL, 0.01: lying(1), 0.02: lying(8), 0.05: lying(12), 0.1: lying(15)}
    assert smallest_effective_dose([0.1, 0.05, 0.02, 0.01], table, resamples=500, seed=0) == 0.02
    assert smallest_effective_dose([0.01], table, resamples=500, seed=0) is None
    assert smallest_effective_dose([0.01, 0.05], table, resamples=500, seed=0) == 0.05


def test_the_fixed_sequence_stops_at_the_first_dose_without_an_effect() -> None:
    # 0.02 shows an effect on its own, but 0.05 above it does not: the sequence from the top stops
    # at 0.05, so 0.02 is never claimed (a lone low-dose "effect" is what flat data throw up by chance).
    table = {0.0: CONTROL, 0.01: CONTROL, 0.02: lying(10), 0.05: lying(1), 0.1: lying(15)}
    assert smallest_effective_dose([0.01, 0.02, 0.05, 0.1], table, resamples=500, seed=0) == 0.1


def test_smallest_effective_dose_counts_either_direction_and_names_missing_doses() -> None:
    table = {0.0: lying(10), 0.01: lying(10), 0.02: CONTROL}
    assert smallest_effective_dose([0.01, 0.02], table, resamples=500, seed=0) == 0.02
    with pytest.raises(ValueError, match="0.05"):
        smallest_effective_dose([0.01, 0.05], table)
