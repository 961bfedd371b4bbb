"""Albums: ``bespoke batch MANIFEST`` runs ``bespoke separate`` once per row of a CSV file.

Each row runs as its own process (the same command a shell loop would run), so one song's
failure, crash or memory use never touches the others. ``--jobs N`` runs N at once and splits
the CPU threads between them. A row whose output exists is skipped (outputs are written
atomically, the stem last, so an existing stem means a finished row): a stopped batch resumes.

The manifest: a header row, then one row per song. Columns (case and ``-``/``_`` do not
matter): mix, midi, out (required); target, program, budget, steps, seed, device, soundfont,
residual, save_aligned, report, plot, min_confidence, force, no_align, format, subtype
(optional; an empty cell takes the batch default). Paths are relative to the manifest's folder.
Blank rows and rows whose first cell starts with ``#`` are ignored.
"""
from __future__ import annotations

import csv
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

from .errors import InputError
from .options import SEPARATE

REQUIRED = ("mix", "midi", "out")
# column -> (flag of 'bespoke separate', kind): the options of a separation (options.SEPARATE)
OPTIONS: Dict[str, tuple] = {o.name: (o.flag, "str" if o.kind == "choice" else o.kind) for o in SEPARATE}
ALIASES = {"output": "out", "stem": "out", "audio": "mix", "recording": "mix", "score": "midi",
           "aligned": "save_aligned", "part": "target", "instrument": "program"}
TRUE = {"1", "true", "yes", "y", "x", "on"}
FALSE = {"0", "false", "no", "n", "off"}
STOP_GRACE_S = 30.0  # after Ctrl-C, how long a job may take to clean up before it is killed


@dataclass
class Row:
    """One song of the manifest: absolute paths and the options its cells set."""

    line: int
    mix: Path
    midi: Path
    out: Path
    label: str                                  # the out cell as written, for the table
    options: Dict[str, object] = field(default_factory=dict)


@dataclass
class Outcome:
    row: Row
    status: str                                 # done, skipped, failed, stopped (by Ctrl-C)
    seconds: float = 0.0
    message: str = ""
    confidence: Optional[float] = None
    warnings: List[str] = field(default_factory=list)


def _norm_column(name: str) -> str:
    n = name.strip().lower().replace("-", "_").replace(" ", "_")
    return ALIASES.get(n, n)


def _parse(kind: str, text: str, base: Path):
    if kind == "path":
        return (base / Path(text).expanduser()).resolve() if not Path(text).expanduser().is_absolute() \
            else Path(text).expanduser()
    if kind == "int":
        return int(text)
    if kind == "float":
        v = float(text)
        if v != v:
            raise ValueError("NaN")
        return v
    if kind == "bool":
        t = text.lower()
        if t in TRUE:
            return True
        if t in FALSE:
            return False
        raise ValueError("not yes/no")
    return text


def _manifest_text(p: Path):
    """The text of manifest ``p`` and its CSV dialect (sniffed from the first row that is neither
    blank nor a comment). An InputError for a missing, unreadable or empty file."""
    if not p.is_file():
        raise InputError(f"{p}: no such file" if not p.exists() else f"{p}: not a file")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{p}: cannot read the manifest ({e})") from None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise InputError(f"{p}: the manifest is empty (it needs a header row: mix,midi,out)")
    try:
        dialect = csv.Sniffer().sniff(lines[0], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    return text, dialect


def _read_header(p: Path, cells: List[str]) -> List[str]:
    """The normalised column names of the header row ``cells``; an InputError for unknown columns
    or missing required ones."""
    header = [_norm_column(c) for c in cells]
    unknown = [c for c in header if c not in REQUIRED and c not in OPTIONS]
    if unknown:
        raise InputError(f"{p}: unknown column(s) {', '.join(map(repr, unknown))}; the columns are "
                         f"{', '.join(REQUIRED + tuple(OPTIONS))}")
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InputError(f"{p}: the header must name the columns mix, midi and out "
                         f"(missing: {', '.join(missing)})")
    return header


def _read_row(line_no: int, cells: List[str], header: List[str], base: Path, problems: List[str]) -> Optional[Row]:
    """The Row of the data row ``cells`` (paths relative to ``base``), None when it has too many
    cells or empty required ones; what is wrong with it is appended to ``problems``."""
    if len(cells) > len(header):
        problems.append(f"line {line_no}: {len(cells)} cells for {len(header)} columns")
        return None
    values = {h: c.strip() for h, c in zip(header, cells)}
    empty = [c for c in REQUIRED if not values.get(c)]
    if empty:
        problems.append(f"line {line_no}: empty {', '.join(empty)}")
        return None
    opts = {}
    for col, text_ in values.items():
        if col in REQUIRED or not text_:
            continue
        kind = OPTIONS[col][1]
        try:
            opts[col] = _parse(kind, text_, base)
        except ValueError:
            want = {"int": "a whole number", "float": "a number", "bool": "yes or no"}[kind]
            problems.append(f"line {line_no}: {col} {text_!r} is not {want}")
    return Row(line=line_no, mix=_parse("path", values["mix"], base),
               midi=_parse("path", values["midi"], base), out=_parse("path", values["out"], base),
               label=values["out"], options=opts)


def read_manifest(path) -> List[Row]:
    """The rows of a CSV manifest. An InputError (naming the lines) for a missing file, missing or
    unknown columns, empty required cells, unparsable values, or two rows writing one output."""
    p = Path(path)
    text, dialect = _manifest_text(p)
    reader = csv.reader(text.splitlines(), dialect)
    header, rows, problems = None, [], []
    base = p.resolve().parent
    for line_no, cells in enumerate(reader, start=1):
        if not cells or all(not c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
            continue
        if header is None:
            header = _read_header(p, cells)
            continue
        row = _read_row(line_no, cells, header, base, problems)
        if row is not None:
            rows.append(row)
    if header is None:
        raise InputError(f"{p}: the manifest is empty (it needs a header row: mix,midi,out)")
    seen: Dict[Path, int] = {}
    for r in rows:
        if r.out in seen:
            problems.append(f"line {r.line}: out {r.label!r} is also the output of line {seen[r.out]}")
        seen.setdefault(r.out, r.line)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise InputError(f"{p}: " + "; ".join(problems[:3]) + more)
    if not rows:
        raise InputError(f"{p}: the manifest lists no songs")
    return rows


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


def _child_env(jobs: int) -> dict:
    env = dict(os.environ)
    if jobs > 1:
        n = str(threads_per_job(jobs))
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env.setdefault(var, n)
    return env


def _last(lines: List[str], prefix: str) -> Optional[str]:
    hits = [ln[len(prefix):].strip() for ln in lines if ln.startswith(prefix)]
    return hits[-1] if hits else None


class Runner:
    """Runs rows as child processes; ``stop()`` asks the running ones to clean up and quit."""

    def __init__(self, jobs: int, overwrite: bool, defaults: Optional[dict], workdir: Path):
        self.jobs, self.overwrite, self.defaults, self.workdir = jobs, overwrite, defaults, workdir
        self.env = _child_env(jobs)
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._procs: List[subprocess.Popen] = []

    def command(self, row: Row) -> List[str]:
        args = separate_args(row, self.defaults, self.overwrite)
        if "report" not in row.options:  # a private report, for the confidence in the summary
            args += ["--report", str(self.workdir / f"line{row.line}.json")]
        return [sys.executable, "-m", "bespoke.cli", "separate", *args, "-q"]

    def run(self, row: Row) -> Outcome:
        import json

        if self.stopping.is_set():
            return Outcome(row, "stopped")
        t0 = time.perf_counter()
        with self._lock:
            if self.stopping.is_set():
                return Outcome(row, "stopped")
            # a session of its own: the terminal's Ctrl-C reaches only the batch, which passes it on once
            try:
                proc = subprocess.Popen(self.command(row), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, errors="replace", env=self.env, start_new_session=True)
            except OSError as e:
                return Outcome(row, "failed", 0.0, f"could not start: {e}")
            self._procs.append(proc)
        _, err = proc.communicate()
        with self._lock:
            self._procs.remove(proc)
        secs = time.perf_counter() - t0
        lines = [ln.rstrip() for ln in err.splitlines() if ln.strip()]
        warnings_ = [ln[len("bespoke: warning:"):].strip() for ln in lines if ln.startswith("bespoke: warning:")]
        if proc.returncode != 0:
            if self.stopping.is_set() and proc.returncode in (130, -signal.SIGINT, -signal.SIGTERM,
                                                                 -signal.SIGKILL):
                return Outcome(row, "stopped", secs, "interrupted", warnings=warnings_)
            msg = _last(lines, "bespoke: error:") or (lines[-1] if lines else f"exit status {proc.returncode}")
            return Outcome(row, "failed", secs, msg, warnings=warnings_)
        conf = None
        rep = Path(row.options.get("report") or self.workdir / f"line{row.line}.json")
        try:
            al = json.loads(rep.read_text()).get("alignment") or {}
            conf = al.get("confidence")
        except (OSError, ValueError):
            pass
        return Outcome(row, "done", secs, confidence=conf, warnings=warnings_)

    def stop(self) -> None:
        """Stop every running job: SIGTERM, which a job handles like Ctrl-C (it removes its
        temporary files), and which, unlike SIGINT, a job started under nohup or from a background
        shell job does not ignore. Those still running after STOP_GRACE_S are killed."""
        self.stopping.set()
        with self._lock:
            procs = list(self._procs)
        for p in procs:
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGTERM)
                except OSError:
                    pass
        deadline = time.monotonic() + STOP_GRACE_S
        for p in procs:
            try:
                p.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                p.kill()


def summary_table(outcomes: List[Outcome]) -> str:
    """One line per row: manifest line, status, seconds, alignment confidence, output, note."""
    head = ("line", "status", "seconds", "conf", "output", "note")
    rows = [head]
    for o in outcomes:
        note = o.message
        if o.status == "skipped":
            note = note or "exists (--overwrite redoes it)"
        elif o.status == "done" and o.warnings:
            note = "warning: " + o.warnings[-1]
        rows.append((str(o.row.line), o.status.upper() if o.status == "failed" else o.status,
                     f"{o.seconds:.0f}" if o.status in ("done", "failed") else "-",
                     f"{o.confidence:.2f}" if o.confidence is not None else "-", o.row.label, note))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
    right = {0, 2, 3}
    out = []
    for r in rows:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r[:-1], widths))]
        out.append("  ".join(cells + [r[-1]]).rstrip())
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed", "stopped")}
    out.append(f"{len(outcomes)} rows: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    return "\n".join(out)


def run_batch(rows: List[Row], jobs: int = 1, overwrite: bool = False, defaults: Optional[dict] = None,
              echo: Callable[[str], None] = lambda m: None) -> List[Outcome]:
    """Run every row (skipping finished ones) and return their outcomes in manifest order.

    ``echo`` gets a line as each row finishes. A KeyboardInterrupt stops the running jobs (they
    leave no partial files), marks the rest "stopped" and is re-raised with the outcomes attached
    as ``.outcomes``."""
    outcomes: Dict[int, Outcome] = {}
    todo = []
    for r in rows:
        if r.out.exists() and not overwrite:
            outcomes[r.line] = Outcome(r, "skipped")
        else:
            todo.append(r)
    n, done = len(todo), 0
    with tempfile.TemporaryDirectory(prefix="bespoke-batch-") as work:
        runner = Runner(jobs, overwrite, defaults, Path(work))
        pool = ThreadPoolExecutor(max_workers=max(1, min(jobs, max(n, 1))))
        futures: Dict[object, Row] = {}
        try:
            futures = {pool.submit(runner.run, r): r for r in todo}
            for fut in as_completed(futures):
                o = fut.result()
                outcomes[o.row.line] = o
                done += 1
                conf = f", confidence {o.confidence:.2f}" if o.confidence is not None else ""
                echo(f"[{done}/{n}] {o.status:<6} {o.row.label} ({o.seconds:.0f} s{conf})"
                     + (f": {o.message}" if o.status == "failed" else ""))
                for w in o.warnings:
                    echo(f"        warning: {w}")
        except KeyboardInterrupt as e:
            runner.stop()
            pool.shutdown(wait=True, cancel_futures=True)
            for fut, r in futures.items():
                if r.line not in outcomes:
                    ok = fut.done() and not fut.cancelled() and fut.exception() is None
                    outcomes[r.line] = fut.result() if ok else Outcome(r, "stopped")
            for r in todo:
                outcomes.setdefault(r.line, Outcome(r, "stopped"))
            e.outcomes = [outcomes[r.line] for r in rows]
            raise
        finally:
            pool.shutdown(wait=True)
    return [outcomes[r.line] for r in rows]


def run_from_cli(manifest, jobs: int, overwrite: bool, defaults: dict, dry_run: bool, quiet: bool,
                 echo: Callable[[str], None], out: Callable[[str], None]) -> int:
    """``bespoke batch``: returns the exit status (0 all done or skipped, 1 a row failed, 130 stopped)."""
    from .errors import BespokeError

    rows = read_manifest(manifest)
    if dry_run:
        for r in rows:
            state = "# done, skipped: " if r.out.exists() and not overwrite else ""
            out(state + shlex.join(["bespoke", "separate", *separate_args(r, defaults, overwrite)]))
        return 0
    try:
        outcomes = run_batch(rows, jobs=jobs, overwrite=overwrite, defaults=defaults,
                             echo=(lambda m: None) if quiet else echo)
    except KeyboardInterrupt as e:
        out(summary_table(getattr(e, "outcomes", [])))
        echo("bespoke: error: interrupted; finished outputs are kept, the others were not written: "
             "run the same command again to resume")
        return 130
    out(summary_table(outcomes))
    failed = sum(o.status == "failed" for o in outcomes)
    if failed:
        raise BespokeError(f"{failed} of {len(outcomes)} rows failed (see the table)")
    return 0
