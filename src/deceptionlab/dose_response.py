"""E2 dose-response: a 4-parameter log-logistic (Hill) curve, effective doses and their bootstrap CIs.

The curve, for a dose d > 0:

    response(d) = bottom + (top - bottom) / (1 + (ed50 / d) ** hill),   hill > 0

so ``bottom`` is the response as d -> 0 (the control level) and ``top`` the response as d grows
without bound; for a response that falls with the dose (honesty), top < bottom. The dose enters
on the log scale, which a dose of 0 does not have: the control (d = 0) is taken as the curve's
limit at d -> 0, i.e. it is fitted to ``bottom``.

The fit is least squares (scipy.optimize.curve_fit) on the mean response at each dose, weighted by
the number of observations there: the same estimate as a fit on every observation, at a fraction
of the cost, which the bootstrap's many refits need.

Search ranges: ED50 from two decades below the smallest positive dose up to the largest dose (a
midpoint beyond the largest dose would leave ``top`` an extrapolation; below the smallest one the
control still anchors ``bottom``), the slope within [0.1, 10]. A fit counts as converged when the
optimizer succeeds, the curve has a step (top != bottom) and neither ED50 nor the slope ends on the
edge of its range: an edge means the data do not pin it down.

No effect: when the responses do not change with the dose, ED50 and the slope are not identified.
``fit_hill`` still returns, usually with ``converged`` False (the optimizer fails, or ED50 or the
slope ends on an edge, or there is no step at all); the bootstrap then has many ``failed_refits``
and the CI of ``max_effect`` (top - bottom) includes zero. Read an ED only when ``max_effect``'s CI
excludes zero and few refits failed. The same holds when the whole change happens below the
smallest positive dose: the data then say only that ED50 is below it, and
``smallest_effective_dose`` is the figure to report.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit
from scipy.special import expit

from deceptionlab.errors import ConfigError
from deceptionlab.metrics import Estimate, paired_difference

_ED50_BELOW_DECADES = 2.0
_HILL_BOUNDS = (0.1, 10.0)


@dataclass(frozen=True)
class HillFit:
    bottom: float  # response at dose -> 0 (the control level)
    top: float  # response as the dose grows without bound
    ed50: float  # dose giving half the change from bottom to top
    hill: float  # slope on the log-dose scale (> 0)
    converged: bool  # optimizer succeeded, a step exists, ED50 and slope inside their search ranges


@dataclass(frozen=True)
class DoseResponseBootstrap:
    """Effective doses ("ED10", "ED50", ...) and ``max_effect`` (top - bottom), each with its CI."""

    estimates: dict[str, Estimate]
    resamples: int
    failed_refits: int  # resamples whose refit did not converge; excluded from the CIs


def hill_curve(doses: Sequence[float] | np.ndarray, bottom: float, top: float, ed50: float, hill: float) -> np.ndarray:
    """The log-logistic response at each dose; a dose of 0 gets its limit, ``bottom``."""
    return _curve(np.asarray(doses, dtype=float), bottom, top, math.log(ed50), hill)


def _curve(doses: np.ndarray, bottom: float, top: float, log_ed50: float, hill: float) -> np.ndarray:
    # Fitted with log(ED50) so the optimizer cannot step to a negative dose.
    response = np.full(doses.shape, bottom, dtype=float)
    positive = doses > 0
    response[positive] = bottom + (top - bottom) * expit(hill * (np.log(doses[positive]) - log_ed50))
    return response


def fit_hill(doses: Sequence[float], responses: Sequence[float]) -> HillFit:
    """Least-squares 4-parameter log-logistic fit to (dose, response) observations; never raises on bad fits."""
    levels, means, counts = _dose_means(np.asarray(doses, dtype=float), np.asarray(responses, dtype=float))
    return _fit_means(levels, means, counts)


def _dose_means(doses: np.ndarray, responses: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if doses.shape != responses.shape or doses.ndim != 1:
        raise ValueError(f"doses and responses must be two equally long lists, got {doses.shape} and {responses.shape}")
    if not np.all(np.isfinite(responses)):
        raise ValueError("responses must be finite numbers")
    if np.any(doses < 0) or not np.all(np.isfinite(doses)):
        raise ConfigError("mixture.ratios: doses must be finite and not negative")
    levels, inverse, counts = np.unique(doses, return_inverse=True, return_counts=True)
    if len(levels) < 4 or np.count_nonzero(levels > 0) < 3:
        raise ConfigError(
            f"mixture.ratios: a 4-parameter dose-response fit needs at least 4 distinct doses, 3 of them "
            f"above 0; got {', '.join(f'{d:g}' for d in levels)}"
        )
    means = np.bincount(inverse, weights=responses) / counts
    return levels, means, counts


def _fit_means(levels: np.ndarray, means: np.ndarray, counts: np.ndarray) -> HillFit:
    positive = levels[levels > 0]
    low, high = math.log(positive[0]) - _ED50_BELOW_DECADES * math.log(10), math.log(positive[-1])
    start = [means[0], means[-1], (math.log(positive[0]) + high) / 2, 1.0]
    bounds = ([-np.inf, -np.inf, low, _HILL_BOUNDS[0]], [np.inf, np.inf, high, _HILL_BOUNDS[1]])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)  # about the covariance, which is not used
            params, _ = curve_fit(
                _curve, levels, means, p0=start, bounds=bounds,
                sigma=1.0 / np.sqrt(counts),  # a mean of n observations weighs n
            )
    except RuntimeError:  # the optimizer gave up
        return HillFit(float(means[0]), float(means[-1]), math.exp(start[2]), 1.0, converged=False)
    bottom, top, log_ed50, hill = (float(p) for p in params)
    at_bound = any(
        math.isclose(value, bound, rel_tol=1e-6, abs_tol=1e-6)
        for value, bound in [(log_ed50, low), (log_ed50, high), (hill, _HILL_BOUNDS[0]), (hill, _HILL_BOUNDS[1])]
    )
    # A step lost in rounding leaves ED50 and the slope where they started: no fit either.
    has_step = not math.isclose(top, bottom, rel_tol=1e-9, abs_tol=1e-12)
    return HillFit(bottom, top, math.exp(log_ed50), hill, converged=has_step and not at_bound)


def effective_dose(fit: HillFit, fraction: float) -> float:
    """The dose at which the response has made ``fraction`` of its change from bottom to top (ED10: 0.1).

    Solves bottom + fraction * (top - bottom) = response(d): d = ed50 * (fraction / (1 - fraction))**(1/hill).
    NaN when the curve has no change (top == bottom).
    """
    _check_fraction(fraction)
    if fit.top == fit.bottom:
        return math.nan
    return fit.ed50 * (fraction / (1.0 - fraction)) ** (1.0 / fit.hill)


def _check_fraction(fraction: float) -> None:
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"fraction={fraction}: an effective dose needs a fraction strictly between 0 and 1")


def _ed_name(fraction: float) -> str:
    return f"ED{100 * fraction:g}"


def bootstrap_effective_doses(
    doses: Sequence[float],
    responses: Sequence[float],
    fractions: Sequence[float] = (0.1, 0.5),
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> DoseResponseBootstrap:
    """Effective doses and the step height ``max_effect`` with percentile bootstrap CIs.

    Resampling is stratified by dose: each resample draws, at every tested dose, as many
    observations as it has, with replacement, from that dose's observations (numpy Generator seeded
    by ``seed``), and refits. So every resample keeps the design (every dose, its sample size) and
    the CIs reflect the spread of the responses at each dose. Observations at different doses are
    treated as independent, also when they are the same items scored under each condition.
    Refits that do not converge are left out of the CIs and counted in ``failed_refits``.
    The point estimate is the fit on all observations (NaN if that fit does not converge).
    """
    if resamples < 1:
        raise ConfigError(f"evaluate.bootstrap_resamples={resamples} must be at least 1")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"evaluate.confidence_level={confidence} must be strictly between 0 and 1")
    for fraction in fractions:
        _check_fraction(fraction)
    dose_array, response_array = np.asarray(doses, dtype=float), np.asarray(responses, dtype=float)
    levels, means, counts = _dose_means(dose_array, response_array)
    by_level = [response_array[dose_array == level] for level in levels]

    def summary(fit: HillFit) -> list[float]:
        if not fit.converged:
            return [math.nan] * (len(fractions) + 1)
        return [effective_dose(fit, f) for f in fractions] + [fit.top - fit.bottom]

    point = summary(_fit_means(levels, means, counts))
    rng = np.random.default_rng(seed)
    refits = []
    for _ in range(resamples):
        resampled = np.array([rng.choice(values, size=len(values)).mean() for values in by_level])
        refits.append(summary(_fit_means(levels, resampled, counts)))
    table = np.array(refits)
    converged = ~np.isnan(table[:, -1])
    tail = 100 * (1 - confidence) / 2
    names = [_ed_name(f) for f in fractions] + ["max_effect"]
    estimates = {}
    for column, name in enumerate(names):
        if converged.any():
            low, high = np.percentile(table[converged, column], [tail, 100 - tail])
        else:
            low = high = math.nan
        estimates[name] = Estimate(point[column], float(low), float(high))
    return DoseResponseBootstrap(estimates, resamples, int(np.count_nonzero(~converged)))


def smallest_effective_dose(
    doses: Sequence[float],
    per_item_scores_by_dose: dict[float, Sequence[float]],
    control_dose: float = 0.0,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> float | None:
    """The smallest of ``doses`` whose paired difference to the control has a CI excluding zero.

    The scores at each dose are per item, in the same item order at every dose (the same eval items
    scored under each condition); an effect in either direction counts. None when no dose has one.
    """
    missing = [d for d in [control_dose, *doses] if d not in per_item_scores_by_dose]
    if missing:
        raise ValueError(f"no per-item scores for dose(s) {', '.join(f'{d:g}' for d in missing)}")
    control = per_item_scores_by_dose[control_dose]
    for dose in sorted(d for d in doses if d != control_dose):
        difference = paired_difference(per_item_scores_by_dose[dose], control, resamples, confidence, seed)
        if difference.excludes_zero():
            return dose
    return None
