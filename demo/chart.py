"""The PNG chart of a ``make demo`` run: one panel per signal, the phases shaded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

PHASE_COLOURS = {
    "baseline": "#e8f1e4",
    "drift": "#fdf0d5",
    "bias": "#f9dcdc",
    "rollout": "#e3e9f7",
}


def write_chart(history: dict[str, Any], path: Path, *, psi_threshold: float) -> Path | None:
    """Draw latency/throughput, accuracy vs estimate, drift and fairness over time.

    Returns the path written, or ``None`` when matplotlib is not installed (the
    chart is optional; the demo's table and JSON carry the same numbers).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    points = _with_gaps(history["timeline"])
    t = [p["t"] for p in points]

    def series(key: str) -> list[float]:
        return [float("nan") if p.get(key) is None else float(p[key]) for p in points]

    fig, axes = plt.subplots(5, 1, figsize=(10, 13.5), sharex=True)
    for ax in axes:
        for phase in history["phases"]:
            colour = PHASE_COLOURS.get(phase["name"], "#eeeeee")
            ax.axvspan(phase["start"], phase.get("end", t[-1] if t else 0), color=colour, lw=0)
        ax.grid(alpha=0.3)
    for phase in history["phases"]:
        axes[0].text(
            phase["start"] + 0.5, 1.02, phase["name"], transform=axes[0].get_xaxis_transform()
        )

    latency, throughput = axes[0], axes[0].twinx()
    latency.plot(t, series("p50_ms"), label="p50 latency (ms)", color="tab:blue")
    latency.plot(t, series("p99_ms"), label="p99 latency (ms)", color="tab:blue", ls="--")
    throughput.plot(t, series("rps"), label="requests/s", color="tab:grey")
    latency.set_ylabel("latency (ms)")
    throughput.set_ylabel("requests/s")
    throughput.set_ylim(0, max([v for v in series("rps") if v == v] + [1.0]) * 1.4)
    latency.legend(loc="upper left", fontsize=8, framealpha=0.9)
    throughput.legend(loc="lower right", fontsize=8, framealpha=0.9)

    axes[1].plot(t, series("accuracy"), label="accuracy (labelled)", color="tab:green")
    axes[1].plot(
        t,
        series("estimated_accuracy"),
        label="estimated accuracy (no labels)",
        color="tab:olive",
        ls="--",
    )
    axes[1].set_ylabel("accuracy")
    axes[1].legend(loc="lower left", fontsize=8)

    axes[2].plot(t, series("psi_amount"), label="PSI amount (shifted)", color="tab:orange")
    axes[2].plot(t, series("psi_hour"), label="PSI hour", color="tab:purple")
    axes[2].axhline(psi_threshold, color="tab:red", ls=":", label=f"threshold {psi_threshold}")
    axes[2].set_ylabel("PSI")
    axes[2].legend(loc="upper left", fontsize=8)

    axes[3].plot(t, series("eo_diff_region"), label="equalized odds diff (region)", color="tab:red")
    axes[3].plot(
        t, series("dp_diff_region"), label="demographic parity diff (region)", color="tab:brown"
    )
    axes[3].set_ylabel("disparity")
    axes[3].text(
        0.99,
        0.95,
        "only labels flip in the bias phase: demographic parity (predictions only) stays flat",
        transform=axes[3].transAxes,
        ha="right",
        va="top",
        fontsize=7,
        color="dimgray",
    )
    axes[3].legend(loc="upper left", fontsize=8)

    _rollout_panel(axes[4], t, series)

    fig.suptitle("make demo: latency, quality, drift, fairness and a rollout (15 s window)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _with_gaps(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The timeline with an empty point between phases, so lines break across the pauses."""
    out: list[dict[str, Any]] = []
    for point in points:
        if out and out[-1].get("phase") != point.get("phase"):
            out.append({"t": (out[-1]["t"] + point["t"]) / 2})
        out.append(point)
    return out


def _rollout_panel(rollout: Any, t: list[float], series: Callable[[str], list[float]]) -> None:
    """Both versions' accuracy, and their difference with the window's and anytime intervals."""
    versions = rollout.twinx()
    versions.plot(t, series("old_accuracy"), label="accuracy, first version", color="tab:green")
    versions.plot(t, series("new_accuracy"), label="accuracy, retrained", color="tab:blue")
    versions.set_ylabel("accuracy")
    versions.legend(loc="upper left", fontsize=8)
    rollout.plot(t, series("accuracy_diff"), label="difference (new − old)", color="black")
    rollout.fill_between(
        t,
        series("accuracy_diff_lower"),
        series("accuracy_diff_upper"),
        color="grey",
        alpha=0.3,
        label="window's 95% interval (Newcombe: not valid when watched)",
    )
    rollout.plot(t, series("rollout_diff"), label="since the rollout began", color="tab:red")
    rollout.fill_between(
        t,
        series("rollout_diff_lower"),
        series("rollout_diff_upper"),
        color="tab:red",
        alpha=0.15,
        label="anytime-valid 95% (ModelVersionRegression)",
    )
    rollout.axhline(0.0, color="black", lw=0.8, ls=":")
    rollout.set_ylabel("accuracy difference")
    rollout.text(
        0.99,
        0.05,
        "anytime interval entirely below 0: the new version is worse (5% chance ever, if equal)",
        transform=rollout.transAxes,
        ha="right",
        va="bottom",
        fontsize=7,
        color="dimgray",
    )
    rollout.set_xlabel("seconds since start")
    rollout.legend(loc="lower left", fontsize=8)
