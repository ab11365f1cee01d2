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
edge of its range: an edge means the data do not pin it down (``on_edge``). In the bootstrap an edge
is an answer, not a failure: a refit is kept whenever the optimizer solved it with a step.

No effect: when the responses do not change with the dose, ED50 and the slope are not identified.
``fit_hill`` still returns, usually with ``converged`` False (the optimizer fails, or ED50 or the
slope ends on an edge, or there is no step at all); the CI of ``max_effect`` (top - bottom) then
includes zero. Read an ED only when ``unresolved_reasons``
is empty: the point fit converged, at most ``report.max_failed_refit_share`` of the refits failed,
and ``max_effect``'s CI excludes zero. The same holds when the whole change happens below the
smallest positive dose: the data then say only that ED50 is below it, and
``smallest_effective_dose`` is the figure to report.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.optimize import OptimizeWarning, curve_fit
from scipy.special import expit

from deceptionlab.core.errors import ConfigError
from deceptionlab.core.stats import Estimate, paired_difference

_ED50_BELOW_DECADES = 2.0
_HILL_BOUNDS = (0.1, 10.0)


@dataclass(frozen=True)
class HillFit:
    bottom: float  # response at dose -> 0 (the control level)
    top: float  # response as the dose grows without bound
    ed50: float  # dose giving half the change from bottom to top
    hill: float  # slope on the log-dose scale (> 0)
    converged: bool  # optimizer succeeded, a step exists, ED50 and slope inside their search ranges
    on_edge: bool = False  # optimizer succeeded and a step exists, but ED50 or the slope ends on its range's edge

    @property
    def solved(self) -> bool:
        """The constrained least-squares problem has a solution with a step, on an edge or not."""
        return self.converged or self.on_edge


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
    return HillFit(bottom, top, math.exp(log_ed50), hill, converged=has_step and not at_bound, on_edge=has_step and at_bound)


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
    per_item_by_dose: Mapping[float, Sequence[float]],
    fractions: Sequence[float] = (0.1, 0.5),
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> DoseResponseBootstrap:
    """Effective doses and the step height ``max_effect`` with percentile bootstrap CIs, items paired.

    ``per_item_by_dose`` holds, at every dose, the same items' scores in the same order (the same
    evaluation items scored under each condition). Each resample (``scipy.stats.bootstrap`` with
    ``paired=True``, seeded by ``seed``) draws one set of item indices and takes it at every dose,
    so an item's difficulty, shared across doses, stays in every resample, and refits the curve on
    the doses' means. Resampling each dose on its own would treat a paired design as independent
    samples and make the intervals too wide. A refit whose ED50 or slope ends on the edge of its search
    range is kept: that constrained least-squares estimate is the resample's answer (a steep step
    between two tested doses sends the slope to its upper edge, and dropping those refits would cut the
    steep tail off the intervals). Refits the optimizer gave up on, or with no step at all, are left out
    of the CIs and counted in ``failed_refits``: read the CIs only when few failed (``unresolved_reasons``).
    The point estimate is the fit on all items (NaN unless that fit converged inside the ranges).
    """
    if resamples < 1:
        raise ConfigError(f"evaluate.bootstrap_resamples={resamples} must be at least 1")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"evaluate.confidence_level={confidence} must be strictly between 0 and 1")
    for fraction in fractions:
        _check_fraction(fraction)
    levels = np.array(sorted(per_item_by_dose), dtype=float)
    samples = [np.asarray(per_item_by_dose[level], dtype=float) for level in levels]
    if len({sample.size for sample in samples}) != 1:
        raise ValueError("every dose needs the same items (paired scores of equal length)")
    doses = np.repeat(levels, samples[0].size)
    _, means, counts = _dose_means(doses, np.concatenate(samples))

    def summary(fit: HillFit, usable: bool) -> np.ndarray:
        if not usable:
            return np.full(len(fractions) + 1, math.nan)
        return np.array([effective_dose(fit, f) for f in fractions] + [fit.top - fit.bottom])

    def refit(*resampled: np.ndarray) -> np.ndarray:
        fit = _fit_means(levels, np.array([sample.mean() for sample in resampled]), counts)
        return summary(fit, fit.solved)

    point_fit = _fit_means(levels, means, counts)
    point = summary(point_fit, point_fit.converged)
    with warnings.catch_warnings():
        # scipy's own interval ignores failed (NaN) refits badly and warns; the CIs are taken below.
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap(samples, refit, paired=True, vectorized=False, n_resamples=resamples,
                                 method="percentile", rng=np.random.default_rng(seed))
    table = result.bootstrap_distribution.T  # one row per resample
    converged = ~np.isnan(table[:, -1])
    tail = 100 * (1 - confidence) / 2
    names = [_ed_name(f) for f in fractions] + ["max_effect"]
    estimates = {}
    for column, name in enumerate(names):
        if converged.any():
            low, high = np.percentile(table[converged, column], [tail, 100 - tail])
        else:
            low = high = math.nan
        estimates[name] = Estimate(float(point[column]), float(low), float(high))
    return DoseResponseBootstrap(estimates, resamples, int(np.count_nonzero(~converged)))


def unresolved_reasons(fit: HillFit, boot: DoseResponseBootstrap, max_failed_refit_share: float) -> list[str]:
    """Why the fit's step and effective doses cannot be read; empty when they can.

    Resolved needs all three: the fit to the measured points converged; few refits failed (the CIs
    come from the refits that converged, so many failures leave CIs of a biased few); and the CI of
    ``max_effect`` excludes zero.
    """
    reasons = []
    if not fit.converged:
        reasons.append("the fit to the measured points did not converge")
    if boot.failed_refits > max_failed_refit_share * boot.resamples:
        reasons.append(f"{boot.failed_refits} of {boot.resamples} bootstrap refits did not converge "
                       f"(more than {max_failed_refit_share:.0%})")
    if not boot.estimates["max_effect"].excludes_zero():
        reasons.append("the CI of max_effect includes zero")
    return reasons


def smallest_effective_dose(
    doses: Sequence[float],
    per_item_scores_by_dose: dict[float, Sequence[float]],
    control_dose: float = 0.0,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> float | None:
    """The smallest dose reached by a fixed-sequence test from the largest dose down.

    Each dose's paired difference to the control is tested in order of decreasing dose, each at
    the full level (a CI at ``confidence`` excluding zero); the sequence stops at the first dose
    without an effect, and the smallest dose before it is returned. Testing in an order fixed in
    advance keeps the family-wise error rate over all doses at 1 - ``confidence`` with no
    correction (a monotone dose-response makes the largest dose the likeliest to show an effect),
    where testing every dose at the full level would claim some effect far more often on flat data.

    The scores at each dose are per item, in the same item order at every dose; an effect in either
    direction counts. None when the largest dose has none.
    """
    missing = [d for d in [control_dose, *doses] if d not in per_item_scores_by_dose]
    if missing:
        raise ValueError(f"no per-item scores for dose(s) {', '.join(f'{d:g}' for d in missing)}")
    control = per_item_scores_by_dose[control_dose]
    smallest = None
    for dose in sorted((d for d in doses if d != control_dose), reverse=True):
        difference = paired_difference(per_item_scores_by_dose[dose], control, resamples, confidence, seed)
        if not difference.excludes_zero():
            break
        smallest = dose
    return smallest
