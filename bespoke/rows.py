"""One row of an album as a process of its own: the ``bespoke separate`` command it runs, the
environment it runs in, the outcome read from its exit status, stderr and report; and what an
album run shows: one progress bar for the album and the summary table. The local batch
(bespoke.batch) and the cluster one (bespoke.cluster) run rows the same way through these.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

from .manifest import OPTIONS, Row


@dataclass
class Outcome:
    row: Row
    status: str                                 # done, skipped, failed, stopped (by Ctrl-C)
    seconds: float = 0.0
    message: str = ""
    confidence: Optional[float] = None
    warnings: List[str] = field(default_factory=list)
    node: Optional[str] = None                  # the cluster node that ran it (--cluster)


def separate_args(row: Row, defaults: Optional[dict] = None, overwrite: bool = False) -> List[str]:
    """The arguments of ``bespoke separate`` for ``row``: its cells, else ``defaults``."""
    opts = {k: v for k, v in (defaults or {}).items() if v is not None}
    opts.update(row.options)
    args = [str(row.mix), str(row.midi), "-o", str(row.out)]
    for col, (flag, kind) in OPTIONS.items():
        if col not in opts:
            continue
        v = opts[col]
        if kind == "bool":
            if v:
                args.append(flag)
        else:
            args += [flag, str(v)]
    if overwrite:
        args.append("--overwrite")
    return args


def threads_per_job(jobs: int) -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(jobs, 1))


def child_env(threads: Optional[int] = None) -> dict:
    """The environment of a row's process: ours, with ``threads`` CPU threads unless the user set
    them, and PARENT_ENV naming us (the row then dies, cleaning up, if we are killed)."""
    env = dict(os.environ)
    if threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env.setdefault(var, str(threads))
    env[PARENT_ENV] = str(os.getpid())
    return env


PARENT_ENV = "BESPOKE_BATCH_PARENT"


def die_with_parent() -> None:
    """In a row's process (PARENT_ENV set): be sent SIGTERM, which cleans up like Ctrl-C, when the
    process that started it dies, even by kill -9 or with its node (Linux; elsewhere nothing)."""
    want = os.environ.pop(PARENT_ENV, None)
    if not want or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if str(os.getppid()) != want:  # the parent died before the line above
        os.kill(os.getpid(), signal.SIGTERM)


def row_command(row: Row, defaults: Optional[dict], overwrite: bool, report: Path) -> List[str]:
    """The command that runs ``row``: ``bespoke separate``, quiet, with a report at ``report``
    unless the row names its own."""
    args = separate_args(row, defaults, overwrite)
    if "report" not in row.options:  # a private report, for the confidence in the summary
        args += ["--report", str(report)]
    return [sys.executable, "-m", "bespoke.cli", "separate", *args, "-q"]


def row_report(row: Row, private: Path) -> Path:
    """Where the report of ``row`` lands: its own report cell, else ``private``."""
    return Path(row.options.get("report") or private)


def row_outcome(row: Row, returncode: int, err: str, seconds: float, report: Path, stopping: bool) -> Outcome:
    """The outcome of a row's finished process from its exit status, stderr and report."""
    import json

    lines = [ln.rstrip() for ln in err.splitlines() if ln.strip()]
    warnings_ = [ln[len("bespoke: warning:"):].strip() for ln in lines if ln.startswith("bespoke: warning:")]
    if returncode != 0:
        if stopping and returncode in (130, -signal.SIGINT, -signal.SIGTERM, -signal.SIGKILL):
            return Outcome(row, "stopped", seconds, "interrupted", warnings=warnings_)
        msg = _last(lines, "bespoke: error:") or (lines[-1] if lines else f"exit status {returncode}")
        return Outcome(row, "failed", seconds, msg, warnings=warnings_)
    conf = None
    try:
        al = json.loads(report.read_text()).get("alignment") or {}
        conf = al.get("confidence")
    except (OSError, ValueError):
        pass
    return Outcome(row, "done", seconds, confidence=conf, warnings=warnings_)


def _last(lines: List[str], prefix: str) -> Optional[str]:
    hits = [ln[len(prefix):].strip() for ln in lines if ln.startswith(prefix)]
    return hits[-1] if hits else None


def summary_table(outcomes: List[Outcome]) -> str:
    """One line per row: manifest line, status, seconds, alignment confidence, the node that ran
    it (a cluster's rows only), output, note."""
    nodes = any(o.node for o in outcomes)
    head = ("line", "status", "seconds", "conf") + (("node",) if nodes else ()) + ("output", "note")
    rows = [head]
    for o in outcomes:
        note = o.message
        if o.status == "skipped":
            note = note or "exists (--overwrite redoes it)"
        elif o.status == "done" and o.warnings:
            note = (note + "; " if note else "") + "warning: " + o.warnings[-1]
        cells = (str(o.row.line), o.status.upper() if o.status == "failed" else o.status,
                 f"{o.seconds:.0f}" if o.status in ("done", "failed") else "-",
                 f"{o.confidence:.2f}" if o.confidence is not None else "-")
        rows.append(cells + ((o.node or "-",) if nodes else ()) + (o.row.label, note))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
    right = {0, 2, 3}
    out = []
    for r in rows:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r[:-1], widths))]
        out.append("  ".join(cells + [r[-1]]).rstrip())
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed", "stopped")}
    out.append(f"{len(outcomes)} rows: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    return "\n".join(out)


class AlbumBar:
    """One progress bar for the whole album (not one per song): rows finished of those to run,
    then how many are done, running and failed, and songs per hour (rows done by this run over
    its time so far). The line about each finished row is written above the bar. Without a
    terminal on stderr, or when not ``enabled`` (--quiet), there is no bar and the lines go to
    ``echo``."""

    def __init__(self, total: int, echo: Callable[[str], None], enabled: bool = True):
        self.total, self.echo = total, echo
        self.finished = self.done = self.failed = self.running = 0
        self.t0 = time.monotonic()
        self.bar = None
        if enabled and total and getattr(sys.stderr, "isatty", lambda: False)():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="album", unit="row", file=sys.stderr, dynamic_ncols=True,
                            bar_format="{desc} {bar} {n_fmt}/{total_fmt} rows [{elapsed}<{remaining}]{postfix}")
            self._show()

    def status(self) -> str:
        """'2 done, 1 running, 0 failed, 41 songs/h'."""
        hours = max(time.monotonic() - self.t0, 1e-6) / 3600
        return (f"{self.done} done, {self.running} running, {self.failed} failed, "
                f"{self.done / hours:.0f} songs/h")

    def _show(self) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(self.status(), refresh=True)

    def set_running(self, n: int) -> None:
        self.running = max(0, n)
        self._show()

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            self.echo(line)

    def ended(self, o: Outcome) -> None:
        """Count a finished row and write its line."""
        self.finished += 1
        self.done += o.status == "done"
        self.failed += o.status == "failed"
        if self.bar is not None:
            self.bar.update(1)
        conf = f", confidence {o.confidence:.2f}" if o.confidence is not None else ""
        where = f" on {o.node}" if o.node else ""
        self.write(f"[{self.finished}/{self.total}] {o.status:<6} {o.row.label} ({o.seconds:.0f} s{where}{conf})"
                   + (f": {o.message}" if o.status == "failed" or (o.message and o.status == "done") else ""))
        for w in o.warnings:
            self.write(f"        warning: {w}")
        self._show()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
