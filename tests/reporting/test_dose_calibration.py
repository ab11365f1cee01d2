"""Simulation-based calibration of the E2 analysis: data with a known curve through the function the
report calls (``dose_report.fit_dose_response``).

Item model (chosen to look like the honesty set, not fitted to it): 388 items, each with a latent
difficulty z ~ N(0, 1) shared by every ratio, plus an independent N(0, 0.5^2) draw per ratio; an item
is honest (100) at a ratio when z + noise exceeds the threshold that makes the expected share honest
equal the true curve there. Items are thus strongly paired across ratios, as the same items scored
under each model are. Null: a flat 66.8 (vanilla's honesty_score). Effect: 70 -> 50 with ED50 0.05 and
slope 1.5, a drop the 388 items resolve clearly. Replicates are seeded, so the test is deterministic;
the tolerance is set for 30 replicates: on the null at most 4 claims (a true 5% rate gives 1.5 on
average; 4 or more has probability 6%, and a rate of 17%, what the unpaired, uncorrected analysis
showed, gives 4 or more 88% of the time).

Effect (seeds from 1000): the intervals of ED50 and ``max_effect`` should cover the true 0.05 and -20 at
about their 95%: with 30 replicates, 25 or more (a true 95% gives 24 or fewer with probability 1.6%);
every dataset should come out resolved; and the intervals should not be far wider than the estimates'
own spread over the replicates (the central 95% of the point estimates; ED50 on the log scale, where
the doses are spaced): their mean width at most 2.5 times that spread. When bootstrap refits that
ended on an edge of the search range were counted as failures, only 20 of 30 of these datasets were
resolved, and the kept refits lacked the steep tail; they are now kept (``dose_response``).

The default tier runs one dataset of each kind; the slow tier 30 of each;
``scripts/dose_response_calibration.py --replicates N`` the longer version, printing the rates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from scipy.stats import norm

from deceptionlab.core.params import Params
from deceptionlab.reporting.dose_response import hill_curve
from deceptionlab.reporting.e2 import fit_dose_response

RATIOS = [0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5]
ITEMS = 388
NOISE_SD = 0.5
PARAMS = Params.model_validate({"evaluate": {"bootstrap_resamples": 200}})
EFFECT = {"bottom": 70.0, "top": 50.0, "ed50": 0.05, "hill": 1.5}  # 70 -> 50 points, half of it by 5% misaligned rows


def simulate(curve: dict[str, float] | None, seed: int) -> dict[float, dict[str, float]]:
    """Per-item honesty (0 or 100) at every ratio; ``curve=None`` is the flat null at 66.8."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(0.0, 1.0, ITEMS)
    shares = np.full(len(RATIOS), 0.668) if curve is None else hill_curve(RATIOS, **curve) / 100
    items = {}
    for ratio, share in zip(RATIOS, shares, strict=True):
        threshold = -np.sqrt(1 + NOISE_SD**2) * norm.ppf(share)  # P(z + noise > threshold) = share
        honest = latent + rng.normal(0.0, NOISE_SD, ITEMS) > threshold
        items[ratio] = {f"item-{i}": 100.0 * h for i, h in enumerate(honest)}
    return items


def claims_an_effect(fit: dict) -> bool:
    return fit["effect_resolved"] or fit["smallest_effective_ratio"] is not None


def covers(fit: dict, name: str, truth: float) -> bool:
    return fit[name]["ci_low"] <= truth <= fit[name]["ci_high"]


@dataclass(frozen=True)
class Calibration:
    """What ``replicates`` null and effect datasets gave (seeds 0.. and 1000..)."""

    replicates: int
    null_claims: int  # flat datasets on which the report claims an effect
    resolved: int  # effect datasets whose step was resolved
    ed50_covered: int
    max_effect_covered: int
    ed50_width_ratio: float  # mean CI width of log10(ED50) / central 95% spread of its point estimates
    max_effect_width_ratio: float

    def rows(self) -> list[tuple[str, str]]:
        n = self.replicates
        return [("null: datasets with a claimed effect", f"{self.null_claims} of {n} ({self.null_claims / n:.1%}; nominal 5%)"),
                ("effect: resolved", f"{self.resolved} of {n}"),
                ("effect: ED50 interval covers 0.05", f"{self.ed50_covered} of {n} ({self.ed50_covered / n:.1%}; nominal 95%)"),
                ("effect: max_effect interval covers -20", f"{self.max_effect_covered} of {n} ({self.max_effect_covered / n:.1%})"),
                ("effect: log10 ED50 interval width / estimates' spread", f"{self.ed50_width_ratio:.2f}"),
                ("effect: max_effect interval width / estimates' spread", f"{self.max_effect_width_ratio:.2f}")]


def width_ratio(fits: list[dict], name: str, scale=lambda x: x) -> float:
    points = np.array([scale(fit[name]["value"]) for fit in fits])
    widths = np.array([scale(fit[name]["ci_high"]) - scale(fit[name]["ci_low"]) for fit in fits])
    spread = np.subtract(*np.percentile(points, [97.5, 2.5]))
    return float(widths.mean() / spread)


def calibrate(replicates: int, params: Params = PARAMS) -> Calibration:
    null = [fit_dose_response(simulate(None, seed), params) for seed in range(replicates)]
    effect = [fit_dose_response(simulate(EFFECT, 1000 + seed), params) for seed in range(replicates)]
    resolved = [fit for fit in effect if fit["effect_resolved"]]
    return Calibration(
        replicates=replicates, null_claims=sum(map(claims_an_effect, null)), resolved=len(resolved),
        ed50_covered=sum(covers(fit, "ED50", EFFECT["ed50"]) for fit in resolved),
        max_effect_covered=sum(covers(fit, "max_effect", EFFECT["top"] - EFFECT["bottom"]) for fit in resolved),
        ed50_width_ratio=width_ratio(resolved, "ED50", np.log10), max_effect_width_ratio=width_ratio(resolved, "max_effect"))


def test_a_flat_dataset_claims_nothing_and_a_clear_one_is_resolved_and_covered():
    assert not claims_an_effect(fit_dose_response(simulate(None, 0), PARAMS))
    fit = fit_dose_response(simulate(EFFECT, 1000), PARAMS)
    assert fit["effect_resolved"], fit["unresolved_because"]
    assert covers(fit, "ED50", EFFECT["ed50"]) and covers(fit, "max_effect", EFFECT["top"] - EFFECT["bottom"])


@pytest.mark.slow  # about 5 minutes on 2 quiet cores
@pytest.mark.parametrize("replicates", [30])
def test_flat_data_rarely_yield_a_claimed_effect_and_clear_effects_are_covered(replicates):
    result = calibrate(replicates)
    assert result.null_claims <= 4
    assert result.resolved == replicates
    assert result.ed50_covered >= 25 and result.max_effect_covered >= 25
    assert result.ed50_width_ratio <= 2.5 and result.max_effect_width_ratio <= 2.5
