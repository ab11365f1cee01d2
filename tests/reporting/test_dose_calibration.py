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
showed, gives 4 or more 88% of the time). The effect half is not in the suite yet: with
``report.max_failed_refit_share: 0.05`` only 20 of 30 clear-effect datasets (seeds 1000-1029, 200
refits) came out resolved, so that threshold or the fit's search ranges still need work (issue 18).
"""

from __future__ import annotations

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


@pytest.mark.slow  # about 2-4 minutes on 2 cores
@pytest.mark.parametrize("replicates", [30])
def test_flat_data_rarely_yield_a_claimed_effect(replicates):
    claims = sum(claims_an_effect(fit_dose_response(simulate(None, seed), PARAMS)) for seed in range(replicates))
    assert claims <= 4
