"""The report's figures, PNGs next to the report: the speedup of every configuration, one plot per
parameter sweep (speedup and acceptance against the parameter) and one per track over time.

Every whisker spans the per-rep ratios (`evidence.rep_ratios`); a figure that is not conclusive is
drawn hollow (hatched bars), so a glance cannot mistake it for a result. Each PNG is written whole
(temp + rename), and a PNG of ours the regenerated report no longer shows is removed.
"""

from __future__ import annotations

import io
import os
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..fileio import write_bytes_atomic
from .evidence import Row, conclusive

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PREFIX = "research_report_"
CHART_NAME = f"{PREFIX}speedup.png"
MAX_BARS = 30  # the speedup chart shows the latest configurations; the tables keep them all
EXPLAIN = "filled: conclusive; hollow/hatched: inconclusive, unstable or cut short (not a result)"


def _pyplot(cache_dir: str) -> Any:
    """pyplot on the Agg backend, its font cache under our cache dir (never ~/.config)."""
    os.environ.setdefault("MPLCONFIGDIR", os.path.join(cache_dir, "matplotlib"))
    os.makedirs(os.environ["MPLCONFIGDIR"], exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Figure, path: str) -> None:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())


def whiskers(rows: list[Row]) -> list[list[float]]:
    """[below, above] each speedup: down to the lowest and up to the highest per-rep ratio."""
    lo, hi = [], []
    for r in rows:
        sp, rs = r["speedup"], r["ratio_spread"]
        lo.append(max(sp - rs["min"], 0.0) if rs else 0.0)
        hi.append(max(rs["max"] - sp, 0.0) if rs else 0.0)
    return [lo, hi]


def _cv(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def speedup_chart(plt: Any, rows: list[Row], path: str) -> None:
    """One bar per configuration (latest MAX_BARS), absolute t/s on top, verdict and CV in the label."""
    rows = rows[-MAX_BARS:]
    labels = [
        f"t{r['track']['id']} {r['config']}\n{r['model'][:24]}\n{r['run'][:17]}\n"
        f"mt {r['settings']['max_tokens']}, th {r['settings']['threads']}, {r['reps']} reps\n{r['run_verdict']}\n"
        f"CV {_cv(r['cv'])} / base {_cv(r['base']['cv'])}"
        for r in rows
    ]
    fig, ax = plt.subplots(figsize=(max(6, 1.7 * len(rows)), 6))
    x = range(len(rows))
    ok = [conclusive(r) for r in rows]
    bars = ax.bar(x, [r["speedup"] for r in rows], yerr=whiskers(rows), capsize=4, edgecolor="#4878a8")
    for bar, good in zip(bars, ok, strict=True):
        bar.set_facecolor("#4878a8" if good else "white")
        bar.set_hatch("" if good else "//")
    for i, r in enumerate(rows):
        ax.annotate(
            f"{r['speedup']:.2f}x\n{r['decode_tps']['median']:.1f}/{r['base']['decode_tps']['median']:.1f} t/s",
            (i, r["speedup"]),
            textcoords="offset points",
            xytext=(12, 2),
            fontsize=6,
        )
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xticks(list(x), labels, fontsize=6)
    ax.set_ylabel("decode speedup over greedy baseline (x)")
    ax.set_title(
        "Speedup per run and configuration (bar: median/median; whiskers: per-rep ratios min-max)\n" + EXPLAIN,
        fontsize=8,
    )
    _save(plt, fig, path)


def _positions(values: list[Any]) -> tuple[dict[str, float], list[tuple[float, str]]]:
    """x for each parameter value (itself when numeric, else an index) and a tick at each value."""
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    uniq = sorted({repr(v): v for v in values}.values(), key=lambda v: (str(type(v)), v))
    xs = [float(v) if numeric else float(i) for i, v in enumerate(uniq)]
    return {repr(v): x for v, x in zip(uniq, xs, strict=True)}, [(x, str(v)) for v, x in zip(uniq, xs, strict=True)]


def _points(ax: Axes, xs: list[float], ys: list[float], rows: list[Row], color: str, err: Any = None) -> None:
    """Filled markers for conclusive rows, hollow for the rest, with optional whiskers."""
    if err is not None:
        ax.errorbar(xs, ys, yerr=err, fmt="none", ecolor=color, capsize=3, linewidth=1)
    for x, y, r in zip(xs, ys, rows, strict=True):
        ax.plot([x], [y], "o", color=color, markerfacecolor=color if conclusive(r) else "white", markersize=6)


def _series_label(others: dict[str, Any], varying: list[str]) -> str:
    return ", ".join(f"{k}={others.get(k)}" for k in varying) or "all runs"


def sweep_chart(plt: Any, sweep: dict[str, Any], path: str) -> None:
    """Speedup (with per-rep whiskers) and acceptance rate against the swept parameter, one line
    per series (combination of the other parameters). A method without acceptance (MoE expert
    reduction) shows its agreement with the baseline's output instead."""
    p = sweep["param"]
    all_rows = [r for s in sweep["series"] for r in s["rows"]]
    pos, ticks = _positions([r["params"][p] for r in all_rows])
    second = "acceptance_rate" if any(r["acceptance_rate"] is not None for r in all_rows) else "agree_frac"
    varying = sweep["varying"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6.4), sharex=True)
    for i, s in enumerate(sweep["series"]):
        color = f"C{i % 10}"
        rows = sorted(s["rows"], key=lambda r: pos[repr(r["params"][p])])
        xs = [pos[repr(r["params"][p])] for r in rows]
        _points(top, xs, [r["speedup"] for r in rows], rows, color, whiskers(rows))
        _trend(top, xs, [r["speedup"] for r in rows], rows, color, _series_label(s["others"], varying))
        with_second = [r for r in rows if r[second] is not None]
        if with_second:
            xs2 = [pos[repr(r["params"][p])] for r in with_second]
            _points(bottom, xs2, [r[second] for r in with_second], with_second, color)
            _trend(bottom, xs2, [r[second] for r in with_second], with_second, color)
    top.axhline(1.0, color="grey", linestyle="--", linewidth=1)
    top.set_ylabel("decode speedup (x)")
    bottom.set_ylabel("acceptance rate" if second == "acceptance_rate" else "agreement with baseline output")
    bottom.set_ylim(-0.05, 1.05)
    bottom.set_xlabel(p)
    bottom.set_xticks([x for x, _ in ticks], [t for _, t in ticks])
    if varying:
        top.legend(fontsize=7)
    st = sweep["settings"]
    top.set_title(
        f"Track {sweep['track']['id']} ({sweep['track']['name']}): {p} on {sweep['model']}, {sweep['workload']}\n"
        f"max_tokens {st['max_tokens']}, threads {st['threads']}, {st['backend']}, build {st['build'] or '-'}\n"
        f"whiskers: per-rep ratios min-max; lines: median of the conclusive points\n{EXPLAIN}",
        fontsize=7,
    )
    _save(plt, fig, path)


def _trend(ax: Axes, xs: list[float], ys: list[float], rows: list[Row], color: str, label: str | None = None) -> None:
    """The line through a sweep: the median at each value (several runs may measure one) of the
    conclusive points only, solid; dotted through every point when none is conclusive."""
    import statistics

    good = [conclusive(r) for r in rows]
    use = good if any(good) else [True] * len(rows)
    by: dict[float, list[float]] = {}
    for x, y, keep in zip(xs, ys, use, strict=True):
        if keep:
            by.setdefault(x, []).append(y)
    line = [(x, statistics.median(v)) for x, v in sorted(by.items())]
    style = "-" if any(good) else ":"
    ax.plot([x for x, _ in line], [y for _, y in line], style, color=color, linewidth=1, label=label)


def _when(row: Row) -> datetime | None:
    try:
        return datetime.fromisoformat(str(row["date"]).replace("Z", "+00:00"))
    except ValueError:
        return None


def over_time_chart(plt: Any, track: dict[str, Any], rows: list[Row], path: str) -> None:
    """Every configuration's speedup by its run's start time, one colour per model, workload,
    max_tokens and threads (figures from different settings are not one trend)."""
    fig, ax = plt.subplots(figsize=(8, 4.6))
    groups: dict[str, list[Row]] = {}
    for r in rows:
        if _when(r):
            st = r["settings"]
            label = f"{r['model']} / {r['workload']} / max_tokens {st['max_tokens']}, threads {st['threads']}"
            groups.setdefault(label, []).append(r)
    for i, (label, mine) in enumerate(sorted(groups.items())):
        color = f"C{i % 10}"
        xs = [_when(r) for r in mine]
        _points(ax, xs, [r["speedup"] for r in mine], mine, color, whiskers(mine))  # type: ignore[arg-type]
        ax.plot([], [], "o", color=color, label=label)
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_ylabel("decode speedup over greedy baseline (x)")
    ax.set_xlabel("run start (UTC)")
    ax.legend(fontsize=7)
    _date_axis(ax, [w for r in rows if (w := _when(r))])
    ax.set_title(
        f"Track {track['id']} ({track['name']}) over time: every configuration of every run\n"
        f"whiskers: per-rep ratios min-max; {EXPLAIN}",
        fontsize=8,
    )
    _save(plt, fig, path)


def _date_axis(ax: Axes, when: list[datetime]) -> None:
    """Concise date ticks; runs on one day (or one run) get a few hours of room, not years."""
    from datetime import timedelta

    import matplotlib.dates as mdates

    loc = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    if when and max(when) - min(when) < timedelta(hours=6):
        ax.set_xlim(min(when) - timedelta(hours=3), max(when) + timedelta(hours=3))  # type: ignore[arg-type]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:48]


def sweep_name(sweep: dict[str, Any], taken: set[str]) -> str:
    """A readable, unique file name: track, parameter, model, workload, max_tokens and threads."""
    st = sweep["settings"]
    model = os.path.splitext(sweep["model"])[0]
    stem = (
        f"{PREFIX}sweep_t{sweep['track']['id']}_{_slug(sweep['param'])}_{_slug(model)}_{_slug(sweep['workload'])}"
        f"_mt{st['max_tokens']}_th{st['threads']}"
    )
    name, n = f"{stem}.png", 2
    while name in taken:
        name, n = f"{stem}-{n}.png", n + 1
    taken.add(name)
    return name


def draw_all(rows: list[Row], sweeps: list[dict[str, Any]], out_dir: str, cache_dir: str) -> dict[str, Any]:
    """Draw every figure into out_dir; returns their names ({"speedup", "sweeps", "over_time"})."""
    drawn = [r for r in rows if r["speedup"] is not None]
    names: dict[str, Any] = {"speedup": None, "sweeps": [], "over_time": {}}
    if drawn:
        plt = _pyplot(cache_dir)
        speedup_chart(plt, drawn, os.path.join(out_dir, CHART_NAME))
        names["speedup"] = CHART_NAME
        taken = {CHART_NAME}
        for sw in sweeps:
            name = sweep_name(sw, taken)
            sweep_chart(plt, sw, os.path.join(out_dir, name))
            names["sweeps"].append(name)
        tracks = {r["track"]["id"]: r["track"] for r in drawn}
        for tid, track in sorted(tracks.items()):
            name = f"{PREFIX}t{tid}_over_time.png"
            over_time_chart(plt, track, [r for r in drawn if r["track"]["id"] == tid], os.path.join(out_dir, name))
            names["over_time"][tid] = name
    _remove_stale(out_dir, {names["speedup"], *names["sweeps"], *names["over_time"].values()})
    return names


def _remove_stale(out_dir: str, keep: set[str | None]) -> None:
    """A figure of an earlier report that this one no longer draws would sit beside it, unexplained."""
    for n in os.listdir(out_dir):
        if n.startswith(PREFIX) and n.endswith(".png") and n not in keep:
            try:
                os.unlink(os.path.join(out_dir, n))
            except FileNotFoundError:
                pass
