"""Progress of a track run on stderr: a tqdm bar on a terminal, else plain lines that a reader
without one (an agent's tool call, a detached run's run.log) can follow, one per measured prompt
and rep, one per warm-up, and one every few seconds while a model file is hashed."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import click

HASH_EVERY_S = 5.0


def progress_display(as_json: bool) -> Any:
    """`plan -> tick` for the pipeline: a bar on a terminal (none with --json, as it would garble the
    JSON's reader), plain lines otherwise; stdout stays the command's output either way."""
    if not sys.stderr.isatty():
        return _Lines
    if as_json:
        return None
    return _Bar


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB"


class _Lines:
    """One line per event, flushed at once (click.echo flushes)."""

    def __init__(self, plan: Any) -> None:
        self.reps = plan.request.reps
        self.last_hash = 0.0

    def __call__(self, ev: Any) -> None:
        from ..tracks.runner import Hashing

        if isinstance(ev, Hashing):
            self.hashing(ev)
            return
        head = f"[{ev.done}/{ev.total}] {ev.label}"
        rec = ev.record
        if rec is None:
            click.echo(f"{head}, {ev.elapsed_s:.1f} s elapsed", err=True)  # the label says warm-up
            return
        accept = f", acceptance {rec['acceptance_rate']:.2f}" if rec.get("acceptance_rate") is not None else ""
        click.echo(
            f"{head} {rec['prompt_id']} rep {rec['rep'] + 1}/{self.reps}: {rec['decode_tps']:.1f} tok/s decode"
            f"{accept}, {ev.elapsed_s:.1f} s elapsed",
            err=True,
        )

    def hashing(self, ev: Any) -> None:
        now = time.monotonic()
        name = os.path.basename(ev.path)
        if ev.done == 0:
            click.echo(f"hashing {name} ({_gb(ev.total)}, once per file) for the run record", err=True)
        elif now - self.last_hash >= HASH_EVERY_S and ev.done < ev.total:
            click.echo(f"hashing {name}: {_gb(ev.done)} of {_gb(ev.total)}", err=True)
        else:
            return
        self.last_hash = now


class _Bar:
    """A tqdm bar over the run's generations (a resumed run starts where it was)."""

    def __init__(self, plan: Any) -> None:
        from tqdm import tqdm

        self.bar = tqdm(file=sys.stderr, unit="gen", leave=False)

    def __call__(self, ev: Any) -> None:
        from ..tracks.runner import Hashing

        if isinstance(ev, Hashing):
            self.bar.set_description(f"hashing {ev.done * 100 // max(ev.total, 1)}%")
            return
        self.bar.total, self.bar.n = ev.total, ev.done
        self.bar.set_description(ev.label[:30])
        if ev.done >= ev.total:
            self.bar.close()
