"""Alerts watched every minute: false alarms, detection delay and coverage, today vs sequential.

Simulated label and feature streams, one minute bucket at a time (labels a minute are
Poisson, correct ones binomial: counts, not labels), evaluated as Prometheus evaluates
a rule once a minute with its ``for:`` (an alert fires once its condition has held at
16 consecutive evaluations for ``for: 15m``; an *alarm* is one rise to firing). The
gauge a minute is what the monitor would export from the store's buckets, computed by
the library's own functions (``compare``, ``drift``, ``sequential``).

- Rollouts (7 days; 300 labels a minute, 10% on the canary; baseline 0.80): today's
  ``ModelVersionRegression`` (Newcombe 95% on the 1h window, upper < 0, ≥ 200 labels a
  side, ``for: 15m``) against the anytime interval over every label since the rollout
  began (``sequential.proportion_difference_cs``, upper < 0, ``for: 15m``), with an
  equal canary and ones 2, 5 and 10 points worse (the worse ones over their first day).
  Coverage: the share of rollouts whose true difference is inside the interval at every
  minute it is shown.
- Accuracy against 0.80 (30 days): today's ``ModelAccuracyLow`` (1h point estimate <
  0.80, ≥ 200 labels, ``for: 15m``) against the shipped ``ModelAccuracyLow``: the
  Bernoulli CUSUM (p0 0.80, p1 0.75, the ``MONITOR_ACCURACY_*`` defaults) over the
  per-minute buckets of the last ``MONITOR_ALERT_LOOKBACK`` (24h) above ``h``
  (``MONITOR_CUSUM_H``) for 15m, for a model at 0.82 (4, 10, 30 labels a
  minute), 0.85 (4 a minute) and exactly 0.80 (30 a minute: the stated ARL checked), and
  a drop from 0.85 to 0.75 at a known minute (30 a minute).
- Drift: ``ModelFeatureDrift`` (PSI ≥ 0.2 on the 1h window, ≥ 200 predictions, for 15m),
  10 decile bins of the reference, at 4 predictions a minute (the noisiest the guard
  allows), without drift and with the feature's mean moved by half a standard deviation.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from statistics import NormalDist

import numpy as np
from scipy.ndimage import minimum_filter1d

from bench.results import replace_section
from instrumentation.config import parse_duration
from instrumentation.environment import (
    MONITOR_ACCURACY_THRESHOLD,
    MONITOR_ACCURACY_WORSE,
    MONITOR_ALERT_LOOKBACK,
    MONITOR_CUSUM_H,
    MONITOR_ROLLOUT_ALPHA,
)
from instrumentation.metrics.compare import proportion_difference
from instrumentation.metrics.drift import psi
from instrumentation.metrics.sequential import (
    DEFAULT_ALPHA,
    DEFAULT_V_OPT,
    bernoulli_cusum_arl,
    bernoulli_increment,
    proportion_difference_cs,
)

MINUTES_A_DAY = 1_440
FOR_MINUTES = 15
WINDOW = 60
# The shipped rules' parameters: the defaults of the variables the monitor reads.
THRESHOLD = float(MONITOR_ACCURACY_THRESHOLD.text)
P1 = float(MONITOR_ACCURACY_WORSE.text)
H_ACCURACY = float(MONITOR_CUSUM_H.text)
"""The accuracy CUSUM's threshold: ARL ≥ 90 days at 30 labels a minute at exactly 0.80."""
LOOKBACK = round(parse_duration(MONITOR_ALERT_LOOKBACK.text, variable="lookback") / 60)
"""Minutes the CUSUM is computed over, as the monitor does (``aggregates.alerts``)."""
assert float(MONITOR_ROLLOUT_ALPHA.text) == DEFAULT_ALPHA  # the rollout rule's alpha

ROLLOUT_LABELS, CANARY_SHARE, BASELINE = 300.0, 0.10, 0.80


@dataclass
class Row:
    """One line of the side-by-side table."""

    scenario: str
    rule: str
    alarms_per_30d: float | None = None
    share_alarmed: float | None = None
    median_delay: float | None = None
    p90_delay: float | None = None
    coverage: float | None = None
    runs: int = 0

    def cells(self) -> list[str]:
        """The row as Markdown table cells."""

        def show(value: float | None, fmt: str) -> str:
            if value is None:
                return "—"
            return "never" if math.isinf(value) else format(value, fmt)

        return [
            self.scenario,
            self.rule,
            show(self.alarms_per_30d, ".2f"),
            show(None if self.share_alarmed is None else 100 * self.share_alarmed, ".1f"),
            show(self.median_delay, ".0f"),
            show(self.p90_delay, ".0f"),
            show(None if self.coverage is None else 100 * self.coverage, ".1f"),
        ]


# --- Prometheus' view ------------------------------------------------------------------


def firing(condition: np.ndarray, for_minutes: int = FOR_MINUTES) -> np.ndarray:
    """Per minute, whether the alert fires: its condition true at the last for+1 looks."""
    held = np.cumsum(condition, axis=1, dtype=np.int64)
    looks = for_minutes + 1
    run = held.copy()
    run[:, looks:] = held[:, looks:] - held[:, :-looks]
    return run == looks


def alarms(fire: np.ndarray) -> np.ndarray:
    """Alarms (rises to firing) per replicate."""
    rises = fire[:, 1:] & ~fire[:, :-1]
    return rises.sum(axis=1) + fire[:, 0]


def first_alarm(fire: np.ndarray, start: int = 0) -> np.ndarray:
    """Minutes from ``start`` to the first firing minute at or after it (inf if none)."""
    after = fire[:, start:]
    hit = after.any(axis=1)
    return np.where(hit, after.argmax(axis=1).astype(float) + 1.0, np.inf)


def _quantile(values: np.ndarray, q: float) -> float:
    return float(np.quantile(values, q, method="inverted_cdf"))


def _window(counts: np.ndarray, width: int = WINDOW) -> np.ndarray:
    total = np.cumsum(counts, axis=1)
    total[:, width:] = total[:, width:] - total[:, :-width]
    return total


def _labels(
    rng: np.random.Generator, shape: tuple[int, int], rate: float, p: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray]:
    n = rng.poisson(rate, shape)
    return rng.binomial(n, p), n


def _each(func: Callable[..., tuple[float | None, float | None]], *arrays: np.ndarray) -> tuple:
    """``func`` at every (replicate, minute), as two float arrays (NaN where undefined)."""
    lower, upper = np.full(arrays[0].shape, np.nan), np.full(arrays[0].shape, np.nan)
    for index in np.ndindex(arrays[0].shape):
        low, up = func(*(int(a[index]) for a in arrays))
        if low is not None and up is not None:
            lower[index], upper[index] = low, up
    return lower, upper


def _fixed(k_a: int, n_a: int, k_b: int, n_b: int) -> tuple[float | None, float | None]:
    d = proportion_difference(k_a, n_a, k_b, n_b)
    return d.lower, d.upper


def _anytime(k_a: int, n_a: int, k_b: int, n_b: int) -> tuple[float | None, float | None]:
    d = proportion_difference_cs(k_a, n_a, k_b, n_b)
    return d.lower, d.upper


# --- scenarios -------------------------------------------------------------------------


def rollouts(rng: np.random.Generator, runs: int, minutes: int, canary: float) -> list[Row]:
    """A canary at ``canary`` against the 0.80 baseline: both rules, both intervals."""
    shape = (runs, minutes)
    k_a, n_a = _labels(rng, shape, ROLLOUT_LABELS * CANARY_SHARE, canary)
    k_b, n_b = _labels(rng, shape, ROLLOUT_LABELS * (1 - CANARY_SHARE), BASELINE)
    truth = canary - BASELINE
    name = "equal canary" if truth == 0 else f"canary {round(-100 * truth)} pts worse"
    name += f", {minutes // MINUTES_A_DAY} d rollouts"
    rows = []
    for rule, sums, func, gate in (
        ("today: Newcombe 95%, 1h window", _window, _fixed, 200),
        ("new: anytime 95% since the rollout began", partial(np.cumsum, axis=1), _anytime, 1),
    ):
        wk_a, wn_a, wk_b, wn_b = (sums(x) for x in (k_a, n_a, k_b, n_b))
        lower, upper = _each(func, wk_a, wn_a, wk_b, wn_b)
        shown = (wn_a >= gate) & (wn_b >= gate) & ~np.isnan(upper)
        fire = firing(shown & (upper < 0))
        outside = shown & ((lower > truth) | (upper < truth))
        delays = first_alarm(fire)
        row = Row(name, rule, coverage=float(1.0 - outside.any(axis=1).mean()), runs=runs)
        row.share_alarmed = float(np.isfinite(delays).mean())
        if truth == 0:
            row.alarms_per_30d = float(alarms(fire).sum() / (runs * minutes) * 30 * MINUTES_A_DAY)
        else:
            row.median_delay = _quantile(delays, 0.5)
            row.p90_delay = _quantile(delays, 0.9)
        rows.append(row)
    return rows


def _cusum_path(k: np.ndarray, n: np.ndarray, lookback: int = LOOKBACK) -> np.ndarray:
    """The accuracy CUSUM a minute over the last ``lookback`` minute buckets, as exported.

    Restarted from 0 at the look-back's oldest bucket, the CUSUM is its largest suffix
    sum: ``P_t − min(P_j)`` over the prefix sums ``P`` of the ``lookback + 1`` points
    ending at ``t`` (``P`` starting at 0), a sliding minimum.
    """
    increments = bernoulli_increment(k, n, p0=THRESHOLD, p1=P1)  # numpy arrays in, out
    prefix = np.concatenate([np.zeros((k.shape[0], 1)), np.cumsum(increments, axis=1)], axis=1)
    padded = np.concatenate([np.full((k.shape[0], lookback), np.inf), prefix], axis=1)
    lowest = minimum_filter1d(padded, size=lookback + 1, axis=1, origin=lookback // 2)
    return prefix[:, 1:] - lowest[:, lookback + 1 :]


def _accuracy_rules(k: np.ndarray, n: np.ndarray) -> dict[str, np.ndarray]:
    window_k, window_n = _window(k), _window(n)
    with np.errstate(invalid="ignore", divide="ignore"):
        today = (window_n >= 200) & (window_k / window_n < THRESHOLD)
    return {
        "today: 1h accuracy < 0.80, ≥ 200 labels": firing(today),
        f"new: accuracy CUSUM > {H_ACCURACY}": firing(_cusum_path(k, n) > H_ACCURACY),
    }


def steady_accuracy(rng: np.random.Generator, runs: int, days: int, p: float, rate: float) -> list:
    """A model steadily at ``p``: false accuracy alarms per 30 days, both rules."""
    k, n = _labels(rng, (runs, days * MINUTES_A_DAY), rate, p)
    name = f"accuracy {p:.2f} vs 0.80, {rate:g} labels/min"
    rules = _accuracy_rules(k, n)
    if p == THRESHOLD:  # the stated ARL is for the statistic alone: check it without `for:`
        rules[f"new: accuracy CUSUM > {H_ACCURACY}, no for: (its ARL)"] = firing(
            _cusum_path(k, n) > H_ACCURACY, 0
        )
    rows = []
    for rule, fire in rules.items():
        per_30d = float(alarms(fire).sum() / (runs * days) * 30)
        share = float(alarms(fire).astype(bool).mean()) if days == 30 else None
        rows.append(Row(name, rule, alarms_per_30d=per_30d, share_alarmed=share))
    return rows


def accuracy_drop(rng: np.random.Generator, runs: int, rate: float = 30.0) -> list[Row]:
    """0.85 for a day, then 0.75: minutes from the drop to each rule's alarm."""
    change, horizon = MINUTES_A_DAY, 12 * 60
    p = np.where(np.arange(change + horizon) < change, 0.85, 0.75)
    k, n = _labels(rng, (runs, change + horizon), rate, p[None, :])
    rows = []
    for rule, fire in _accuracy_rules(k, n).items():
        before = alarms(fire[:, :change]).sum() / (runs * change / MINUTES_A_DAY) * 30
        delays = first_alarm(fire, change)
        rows.append(
            Row(
                f"drop 0.85 → 0.75, {rate:g} labels/min",
                rule,
                alarms_per_30d=float(before),
                share_alarmed=float(np.isfinite(delays).mean()),
                median_delay=_quantile(delays, 0.5),
                p90_delay=_quantile(delays, 0.9),
            )
        )
    return rows


def drift(rng: np.random.Generator, runs: int, days: int, shift: float, rate: float) -> Row:
    """``ModelFeatureDrift`` on decile bins; ``shift`` (in sd) applied from the second hour."""
    edges = [NormalDist().inv_cdf(q / 10) for q in range(1, 10)]
    moved = NormalDist(shift, 1.0)
    cdf = [0.0, *(moved.cdf(e) for e in edges), 1.0]
    shares = np.diff(cdf)
    minutes = days * MINUTES_A_DAY
    start = 60 if shift else 0
    counts = np.zeros((runs, minutes, 10), dtype=np.int64)
    counts[:, :start] = rng.multinomial(rng.poisson(rate, (runs, start)), [0.1] * 10)
    counts[:, start:] = rng.multinomial(rng.poisson(rate, (runs, minutes - start)), shares)
    window = np.cumsum(counts, axis=1)
    window[:, WINDOW:] = window[:, WINDOW:] - window[:, :-WINDOW]
    reference = np.full(10, 0.1)
    flagged = np.zeros((runs, minutes), dtype=bool)
    for index in np.ndindex(runs, minutes):
        current = window[index]
        if current.sum() >= 200:
            value = psi(reference, current).value
            flagged[index] = value is not None and value >= 0.2
    fire = firing(flagged)
    name = f"drift {'absent' if not shift else f'{shift:g} sd'}, {rate:g} predictions/min"
    row = Row(name, "today: PSI ≥ 0.2 on 1h, ≥ 200 (unchanged)")
    row.alarms_per_30d = float(alarms(fire).sum() / (runs * days) * 30) if not shift else None
    if shift:
        delays = first_alarm(fire, start)
        row.share_alarmed = float(np.isfinite(delays).mean())
        row.median_delay = _quantile(delays, 0.5)
        row.p90_delay = _quantile(delays, 0.9)
        shares_psi = psi(reference, shares * 1e6).value
        row.scenario += f" (PSI {shares_psi:.2f})"
    return row


# --- the stated figures and the table ----------------------------------------------------


def stated_arl() -> list[str]:
    """The accuracy CUSUM's ARL and delays from the Markov chain, per label rate."""
    lines = [
        "| labels/min | ARL at 0.80 (days) | ARL at 0.82 (days) | delay at 0.75 (min) |",
        "|---|---|---|---|",
    ]
    for rate in (4.0, 10.0, 30.0, 300.0):
        at = partial(bernoulli_cusum_arl, H_ACCURACY, p0=THRESHOLD, p1=P1, labels_per_bucket=rate)
        lines.append(
            f"| {rate:g} | {at(p=0.80) / MINUTES_A_DAY:,.0f} | "
            f"{at(p=0.82) / MINUTES_A_DAY:,.3g} | {at(p=0.75):,.0f} |"
        )
    return lines


def _find(rows: list[Row], scenario: str, rule: str) -> Row:
    return next(r for r in rows if r.scenario.startswith(scenario) and r.rule.startswith(rule))


def targets(rows: list[Row]) -> list[tuple[str, str, str, str, bool]]:
    """The issue's targets table: figure, today, target, measured, met."""

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.1f}%"

    def minutes(value: float | None) -> str:
        return "n/a" if value is None or math.isinf(value) else f"{value / 60:.2f} h"

    equal_new = _find(rows, "equal canary", "new")
    equal_old = _find(rows, "equal canary", "today")
    worse = _find(rows, "canary 5 pts", "new")
    worse_old = _find(rows, "canary 5 pts", "today")
    out = [
        (
            "equal canary, 7-day rollout watched every minute: rollouts with a regression alarm",
            pct(equal_old.share_alarmed),
            "≤ 5%",
            pct(equal_new.share_alarmed),
            (equal_new.share_alarmed or 0) <= 0.05,
        ),
        (
            "canary 5 pts worse, 300 labels/min, 10% share: median time to alarm",
            minutes(worse_old.median_delay),
            "≤ 2 h",
            minutes(worse.median_delay),
            (worse.median_delay or math.inf) <= 120,
        ),
    ]
    for rate in ("4", "10", "30"):
        new = _find(rows, f"accuracy 0.82 vs 0.80, {rate} labels", "new")
        old = _find(rows, f"accuracy 0.82 vs 0.80, {rate} labels", "today")
        out.append(
            (
                f"model at 0.82, threshold 0.80, {rate} labels/min: false alarms per 30 days",
                f"{old.alarms_per_30d:.1f}",
                "≤ 1",
                f"{new.alarms_per_30d:.2f}",
                (new.alarms_per_30d or 0) <= 1,
            )
        )
    drop, drop_old = _find(rows, "drop", "new"), _find(rows, "drop", "today")
    out.append(
        (
            "drop 0.85 → 0.75 at a known minute, 30 labels/min: median time to alarm",
            minutes(drop_old.median_delay),
            "≤ 1.5 h",
            minutes(drop.median_delay),
            (drop.median_delay or math.inf) <= 90,
        )
    )
    new_rows = [r for r in rows if r.rule.startswith("new") and r.coverage is not None]
    old_cover = [r.coverage for r in rows if r.rule.startswith("today") and r.coverage is not None]
    worst = min(new_rows, key=lambda r: r.coverage or 0.0)
    cover = worst.coverage or 0.0
    error = math.sqrt(cover * (1 - cover) / max(worst.runs, 1))
    out.append(
        (
            "coverage of every 95% interval under per-minute looks (worst rollout scenario: "
            f"{worst.scenario}, {worst.runs} runs)",
            pct(min(old_cover)),
            "≥ 95%",
            f"{pct(cover)} ± {100 * error:.1f}",
            cover >= 0.95,
        )
    )
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Run every scenario; returns the headline figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer replicates (under a minute)")
    parser.add_argument("--seed", type=int, default=20261206)
    parser.add_argument("--no-write", action="store_true", help="leave bench/RESULTS.md alone")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    started = time.monotonic()
    equal_runs, worse_runs, runs_30d, drop_runs = (
        (30, 40, 2, 40) if args.quick else (600, 300, 10, 200)
    )
    rows: list[Row] = []

    def done(what: str) -> None:
        print(f"  {what} ({time.monotonic() - started:.0f} s)", flush=True)

    rows += rollouts(rng, equal_runs, 7 * MINUTES_A_DAY, BASELINE)
    done(f"equal canary, {equal_runs} rollouts of 7 days")
    for worse in (0.02, 0.05, 0.10):
        rows += rollouts(rng, worse_runs, MINUTES_A_DAY, BASELINE - worse)
    done(f"worse canaries, {worse_runs} rollouts each (first day)")
    for p, rate in ((0.82, 4.0), (0.82, 10.0), (0.82, 30.0), (0.85, 4.0), (0.80, 30.0)):
        runs = runs_30d * (3 if p == 0.80 else 1)
        rows += steady_accuracy(rng, runs, 30, p, rate)
    done(f"steady accuracy, {runs_30d} × 30 days each")
    rows += accuracy_drop(rng, drop_runs)
    done(f"drop, {drop_runs} runs")
    rows.append(drift(rng, runs_30d, 30 if not args.quick else 7, 0.0, 4.0))
    rows.append(drift(rng, drop_runs // 2, 1, 0.5, 4.0))
    done("drift")

    lines = [
        "| scenario | rule | alarms per 30 days | runs alarmed % | median delay (min) "
        "| p90 delay (min) | coverage % |",
        "|---|---|---|---|---|---|---|",
        *("| " + " | ".join(row.cells()) + " |" for row in rows),
    ]
    goal = targets(rows)
    table = [
        "| figure | today | target | measured | |",
        "|---|---|---|---|---|",
        *(
            f"| {f} | {t} | {g} | {m} | {'met' if ok else '**missed**'} |"
            for f, t, g, m, ok in goal
        ),
    ]
    command = "python -m bench.alerts" + (" --quick" if args.quick else "")
    text = "\n".join(
        [
            f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')} in "
            f"{time.monotonic() - started:.0f} s with `{command}` (seed {args.seed}); "
            f"α = {DEFAULT_ALPHA}, v_opt = {DEFAULT_V_OPT:,.0f}, h = {H_ACCURACY}, "
            f"CUSUM look-back {LOOKBACK // 60} h, all rules `for: {FOR_MINUTES}m` "
            "(the shipped rules' parameters).",
            "",
            *table,
            "",
            *lines,
            "",
            "The accuracy CUSUM's stated run lengths (Markov chain, "
            "`sequential.bernoulli_cusum_arl`; delays exclude the 15 minutes of `for:`):",
            "",
            *stated_arl(),
        ]
    )
    print("\n" + text)
    if not args.no_write and not args.quick:
        replace_section("alerts", text)
    return {
        "equal_rollouts_alarmed": _find(rows, "equal canary", "new").share_alarmed or 0.0,
        "canary_5_median_minutes": _find(rows, "canary 5 pts", "new").median_delay or math.inf,
        "drop_median_minutes": _find(rows, "drop", "new").median_delay or math.inf,
        "worst_coverage": min(
            r.coverage for r in rows if r.rule.startswith("new") and r.coverage is not None
        ),
    }


if __name__ == "__main__":
    main()
