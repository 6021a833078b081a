"""What the demo prints: the live table's rows and the closing summary."""

from __future__ import annotations

from typing import Any

from demo.traffic import Stats

LIVE_WINDOW = "15s"
FULL_WINDOW = "10m"


def value_of(node: Any) -> float | None:
    """The ``value`` of a figure, or None."""
    return node.get("value") if isinstance(node, dict) else None


def headline(snapshot: dict[str, Any], window: str) -> dict[str, float | None]:
    """The figures the demo follows, from one window of ``GET /monitor``."""
    w = snapshot["windows"][window]
    rollout = _rollout(snapshot, window)
    fairness = w["fairness"].get("region", {}).get("disparities", {})
    drift = w["drift"]["features"]
    return {
        "n_predictions": w["n_predictions"],
        "n_labels": w["n_labels"],
        "accuracy": value_of(w["quality"]["accuracy"]),
        "recall_fraud": value_of(w["quality"]["recall"]["per_class"].get("fraud")),
        "estimated_accuracy": value_of(w["estimated"].get("accuracy")),
        "estimate_error": w["estimated"].get("error", {}).get("accuracy"),
        "psi_amount": value_of(drift.get("amount", {}).get("psi")),
        "psi_hour": value_of(drift.get("hour", {}).get("psi")),
        "dp_diff_region": value_of(
            fairness.get("demographic_parity_difference", {}).get("between_groups")
        ),
        "eo_diff_region": value_of(
            fairness.get("equalized_odds_difference", {})
            .get("worst_case", {})
            .get("between_groups")
        ),
        **rollout,
    }


def _rollout(snapshot: dict[str, Any], window: str) -> dict[str, float | None]:
    """The newest version against the previous one, once a second version has data."""
    comparison = snapshot.get("comparison")
    if not comparison or "error" in comparison:
        return {}
    versions = snapshot["versions"]
    diff = comparison["windows"][window]["accuracy"]
    anytime = comparison.get("rollout", {}).get("figures", {}).get("accuracy", {})

    def accuracy(version: str) -> float | None:
        node = versions.get(version, {}).get("windows", {}).get(window, {})
        return value_of(node.get("quality", {}).get("accuracy"))

    return {
        "new_accuracy": accuracy(comparison["version"]),
        "old_accuracy": accuracy(comparison["baseline"]),
        "accuracy_diff": diff["value"],
        "accuracy_diff_lower": diff["lower"],
        "accuracy_diff_upper": diff["upper"],
        # Every label since the retrained version was recorded, valid at every look.
        "rollout_diff": anytime.get("value"),
        "rollout_diff_lower": anytime.get("lower"),
        "rollout_diff_upper": anytime.get("upper"),
    }


def rollout_text(h: dict[str, float | None]) -> str:
    """`` v1 0.830 | v2 0.731 | Δ -0.099 [-0.14, -0.06]`` once a rollout has data, else ''."""
    if h.get("accuracy_diff") is None:
        return ""
    return (
        f"  old {fmt(h['old_accuracy'], 0)} new {fmt(h['new_accuracy'], 0)} "
        f"Δacc {fmt(h['accuracy_diff'], 0)} [{fmt(h['accuracy_diff_lower'], 0)}, "
        f"{fmt(h['accuracy_diff_upper'], 0)}] since rollout {fmt(h.get('rollout_diff'), 0)} "
        f"[{fmt(h.get('rollout_diff_lower'), 0)}, {fmt(h.get('rollout_diff_upper'), 0)}]"
    )


def fmt(value: float | None, width: int = 7, digits: int = 3) -> str:
    """A right-aligned number, or ``-`` when undefined."""
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (nearest rank) of ``values``, None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


TABLE_LEGEND = (
    f"every 2 s; figures over the last {LIVE_WINDOW} (GET /monitor):  labels = labels matched "
    "in the window,  acc = accuracy on them,\n"
    "est.acc = accuracy estimated from scores alone (no labels),  psi.amt / psi.hr = drift "
    "(PSI) of amount / hour,\n"
    "dp.reg / eo.reg = demographic-parity / equalized-odds difference between regions,  "
    "! = Prometheus alerts firing"
)
TABLE_HEADER = (
    f"{'t(s)':>5} {'phase':<9} {'req':>6} {'rows':>6} {'req/s':>6} {'p50ms':>6} {'p99ms':>6} "
    f"{'labels':>6} {'acc':>7} {'est.acc':>7} {'psi.amt':>7} {'psi.hr':>7} {'dp.reg':>7} "
    f"{'eo.reg':>7}"
)


def table_row(t: float, phase: str, stats: Stats, rps: float, h: dict[str, float | None]) -> str:
    """One live-table line."""
    with stats.lock:
        recent = stats.latencies_ms[-500:]
        requests, rows = stats.requests, stats.rows
    return (
        f"{t:5.0f} {phase:<9} {requests:6d} {rows:6d} {rps:6.0f} "
        f"{fmt(percentile(recent, 0.5), 6, 1)} {fmt(percentile(recent, 0.99), 6, 1)} "
        f"{int(h['n_labels'] or 0):6d} {fmt(h['accuracy'])} {fmt(h['estimated_accuracy'])} "
        f"{fmt(h['psi_amount'])} {fmt(h['psi_hour'])} {fmt(h['dp_diff_region'])} "
        f"{fmt(h['eo_diff_region'])}"
    )


def summarise(history: dict[str, Any]) -> str:
    """The closing report: client latency, per-phase shifts, final window."""
    c = history["client"]
    lines = [
        "",
        f"client: {c['requests']} requests, {c['rows']} rows, {c['errors']} errors, "
        f"p50 {c['p50_ms']:.1f} ms, p99 {c['p99_ms']:.1f} ms",
        f"labels sent: {c['labels_sent']}  statuses: {c['feedback']}",
        "",
        f"per phase ({LIVE_WINDOW} window, after that phase's labels arrived; est.err = the "
        "estimate minus the realised accuracy on the same rows, rec.fr = recall of fraud):",
        f"  {'phase':<9} {'acc':>7} {'est.acc':>7} {'est.err':>7} {'rec.fr':>7} {'psi.amt':>7} "
        f"{'psi.hr':>7} {'dp.reg':>7} {'eo.reg':>7}",
    ]
    for s in history["phase_summaries"]:
        lines.append(
            f"  {s['phase']:<9} {fmt(s['accuracy'])} {fmt(s['estimated_accuracy'])} "
            f"{fmt(s['estimate_error'], 7, 3)} {fmt(s['recall_fraud'])} "
            f"{fmt(s['psi_amount'])} {fmt(s['psi_hour'])} "
            f"{fmt(s['dp_diff_region'])} {fmt(s['eo_diff_region'])}" + rollout_text(s)
        )
    final = history["final"]
    w = final["windows"][FULL_WINDOW]
    q = w["quality"]
    lines += [
        "",
        f"whole run ({FULL_WINDOW} window): {w['n_predictions']} predictions, "
        f"{w['n_labels']} labels, {final['stored_predictions']} rows stored",
        f"  accuracy {fmt(value_of(q['accuracy']))}  f1(fraud) "
        f"{fmt(value_of(q['f1']['per_class']['fraud']))}  log-loss {fmt(value_of(q['log_loss']))}  "
        f"ROC AUC {fmt(value_of(q['roc_auc']))}",
        "  drift PSI by feature: "
        + ", ".join(f"{k} {fmt(value_of(v['psi']), 0)}" for k, v in w["drift"]["features"].items()),
    ]
    lines += [f"  {line}" for line in history.get("backends", [])]
    return "\n".join(lines)
