"""Ratios paired within each round: this VM's speed swings by up to 1.5× between minutes, so two configurations are
compared round by round (they ran next to each other), not through medians pooled over the whole run."""
import statistics


def median_step(runs):
    """The median step (ms) over every step of every run."""
    return statistics.median(t for r in runs for t in r["step_ms_all"])


def paired(nums, dens):
    """Per round, the ratio of the two configurations' median steps; returns (median, lowest, highest)."""
    ratios = [statistics.median(a["step_ms_all"]) / statistics.median(b["step_ms_all"]) for a, b in zip(nums, dens)]
    return statistics.median(ratios), min(ratios), max(ratios)


def spread(ratio, unit=""):
    mid, lo, hi = ratio
    return f"{mid:.2f}{unit} ({lo:.2f}–{hi:.2f})"
