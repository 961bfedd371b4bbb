"""Albums: ``bespoke batch MANIFEST`` runs ``bespoke separate`` once per row of a CSV file
(read by bespoke.manifest).

Each row runs as its own process (the same command a shell loop would run), so one song's
failure, crash or memory use never touches the others. ``--jobs N`` runs N at once and splits
the CPU threads between them. A row whose output exists is skipped (outputs are written
atomically, the stem last, so an existing stem means a finished row): a stopped batch resumes.
Only a regular file that reads as audio counts as a finished stem: any other file there fails
its row and is left alone, and a folder, FIFO or device is never replaced, even with --overwrite.
"""
from __future__ import annotations

import os
import shlex
import signal
import stat
import subprocess
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

# the manifest's and rows' names, re-exported: bespoke.batch is where a caller looks for them
from .manifest import INPUT_COLUMNS, OPTIONS, OUTPUT_COLUMNS, REQUIRED, Row, output_root, read_manifest  # noqa: F401
from .rows import (  # noqa: F401
    AlbumBar,
    Outcome,
    child_env,
    row_command,
    row_outcome,
    row_report,
    separate_args,
    summary_table,
    threads_per_job,
)

STOP_GRACE_S = 30.0  # after Ctrl-C, how long a job may take to clean up before it is killed


def _child_env(jobs: int) -> dict:
    return child_env(threads_per_job(jobs) if jobs > 1 else None)


class Runner:
    """Runs rows as child processes; ``stop()`` asks the running ones to clean up and quit."""

    def __init__(self, jobs: int, overwrite: bool, defaults: Optional[dict], workdir: Path):
        self.jobs, self.overwrite, self.defaults, self.workdir = jobs, overwrite, defaults, workdir
        self.env = _child_env(jobs)
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._procs: List[subprocess.Popen] = []
        self.on_start: Optional[Callable[[Row], None]] = None   # told as each row's process starts

    def command(self, row: Row) -> List[str]:
        return row_command(row, self.defaults, self.overwrite, self.workdir / f"line{row.line}.json")

    def run(self, row: Row) -> Outcome:
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
        if self.on_start is not None:
            self.on_start(row)
        _, err = proc.communicate()
        with self._lock:
            self._procs.remove(proc)
        return row_outcome(row, proc.returncode, err, time.perf_counter() - t0,
                           row_report(row, self.workdir / f"line{row.line}.json"), self.stopping.is_set())

    def running(self) -> int:
        with self._lock:
            return len(self._procs)

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


def _what(mode: int) -> str:
    return ("a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else
            "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "not a regular file")


def _reads_as_audio(path: Path) -> bool:
    """Whether the regular file ``path`` opens as audio (its header only: fast)."""
    try:
        import soundfile

        soundfile.info(str(path))
        return True
    except Exception:
        return False


def plan(rows: List[Row], overwrite: bool = False) -> Tuple[List[Row], Dict[int, Outcome]]:
    """Which rows to run, and the outcomes of the others (by line), before anything runs.

    A row is skipped (finished) when its out exists as a regular file that reads as audio, and
    ``overwrite`` is not set. It fails, and nothing of it is touched, when one of its outputs
    exists and is not a regular file (a folder, FIFO, device: never replaced, even with
    ``overwrite``), or, without ``overwrite``, when its out exists and is not audio."""
    todo: List[Row] = []
    outcomes: Dict[int, Outcome] = {}
    for r in rows:
        failure, finished = None, False
        for col, p in r.outputs().items():
            try:
                mode = os.stat(p).st_mode
            except OSError:      # absent (or unreachable: 'bespoke separate' says why)
                continue
            if not stat.S_ISREG(mode):
                failure = f"{col} exists and is {_what(mode)}; not replaced"
                break
            if col == "out" and not overwrite:
                if _reads_as_audio(p):
                    finished = True
                else:
                    failure = "out exists and is not audio; not replaced (move it away to redo the row)"
                    break
        if failure:
            outcomes[r.line] = Outcome(r, "failed", message=failure)
        elif finished:
            outcomes[r.line] = Outcome(r, "skipped")
        else:
            todo.append(r)
    return todo, outcomes


class StopSignals:
    """While entered (in the main thread), Ctrl-C (SIGINT) and SIGTERM raise nothing: they are
    counted in ``count``, which the batch polls. So a second or third Ctrl-C while the batch stops
    its jobs, or prints its table, cannot cut that short. A signal that is ignored (nohup, a
    background job) stays ignored. Nested use shares the outer one's count."""

    _active: Optional["StopSignals"] = None

    def __init__(self):
        self.count = 0
        self._old: dict = {}
        self._outer: Optional[StopSignals] = None

    def _note(self, signum, frame):
        self.count += 1
        if self.count == 1:
            _watch_the_stop()


    @property
    def installed(self) -> bool:
        return bool(self._old) or (self._outer is not None and self._outer.installed)

    @property
    def requested(self) -> bool:
        return self.count > 0 or (self._outer is not None and self._outer.requested)

    def __enter__(self) -> "StopSignals":
        self._outer = StopSignals._active
        if self._outer is not None and self._outer.installed:
            return self
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                if signal.getsignal(sig) in (signal.SIG_IGN, None):
                    continue
                self._old[sig] = signal.signal(sig, self._note)
            except (ValueError, OSError):
                pass
        StopSignals._active = self
        return self

    def __exit__(self, *exc) -> None:
        if self.count:  # the stop is over: no stacks to print
            import faulthandler

            faulthandler.cancel_dump_traceback_later()
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        self._old = {}
        if StopSignals._active is self:
            StopSignals._active = self._outer
        return None


def _watch_the_stop() -> None:
    """A stop that takes far longer than its grace time prints every thread's stack to stderr
    (then once a minute), so that a hang says where it is; ``kill -USR1`` prints them at once."""
    import faulthandler
    import sys

    try:
        faulthandler.dump_traceback_later(STOP_GRACE_S + 60.0, repeat=True, file=sys.stderr)
    except (ValueError, OSError, AttributeError):  # no usable stderr
        pass


def stack_dumps_on_request() -> None:
    """``kill -USR1 <pid>`` of a running batch prints every thread's stack to stderr (where the
    platform has SIGUSR1)."""
    import faulthandler
    import sys

    if hasattr(signal, "SIGUSR1"):
        try:
            faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
        except (ValueError, OSError, AttributeError, RuntimeError):
            pass


def run_batch(rows: List[Row], jobs: int = 1, overwrite: bool = False, defaults: Optional[dict] = None,
              echo: Callable[[str], None] = lambda m: None, progress: bool = False) -> List[Outcome]:
    """Run every row (skipping finished ones, failing those whose outputs must not be touched: see
    ``plan``) and return their outcomes in manifest order.

    ``echo`` gets a line as each row finishes; ``progress`` draws one bar for the album (on a
    terminal). Ctrl-C or SIGTERM (once or more) stops the running jobs (they leave no partial
    files), marks them and the rest "stopped", and raises a KeyboardInterrupt with the outcomes
    attached as ``.outcomes``."""
    todo, outcomes = planned(rows, overwrite, echo)
    n = len(todo)
    bar = AlbumBar(n, echo, enabled=progress)
    with StopSignals() as stop, tempfile.TemporaryDirectory(prefix="bespoke-batch-") as work:
        runner = Runner(jobs, overwrite, defaults, Path(work))
        runner.on_start = lambda row: bar.set_running(runner.running())
        pool = ThreadPoolExecutor(max_workers=max(1, min(jobs, max(n, 1))))
        futures: Dict[object, Row] = {}
        interrupted = False
        try:
            try:
                futures = {pool.submit(runner.run, r): r for r in todo}
                pending = set(futures)
                while pending and not stop.requested:
                    finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        o = fut.result()
                        outcomes[o.row.line] = o
                        bar.running = runner.running()
                        bar.ended(o)
            except KeyboardInterrupt:  # where the signals could not be caught (not the main thread)
                interrupted = True
            interrupted = interrupted or stop.requested
            if interrupted:
                _stop_all(runner, pool, futures, outcomes)
        finally:
            pool.shutdown(wait=True)
            bar.close()
    return finished_outcomes(rows, todo, outcomes, interrupted)


def planned(rows: List[Row], overwrite: bool, echo: Callable[[str], None]) -> Tuple[List[Row], Dict[int, Outcome]]:
    """``plan``, with a line to ``echo`` for each row that fails before it runs."""
    todo, outcomes = plan(rows, overwrite)
    for r in rows:
        o = outcomes.get(r.line)
        if o is not None and o.status == "failed":
            echo(f"[-] failed {r.label}: {o.message}")
    return todo, outcomes


def finished_outcomes(rows: List[Row], todo: List[Row], outcomes: Dict[int, Outcome],
                      interrupted: bool) -> List[Outcome]:
    """Every row's outcome in manifest order; when ``interrupted``, a KeyboardInterrupt carrying
    them as ``.outcomes``, the rows without one marked stopped."""
    if interrupted:
        for r in todo:
            outcomes.setdefault(r.line, Outcome(r, "stopped"))
        e = KeyboardInterrupt()
        e.outcomes = [outcomes[r.line] for r in rows]
        raise e
    return [outcomes[r.line] for r in rows]


def _stop_all(runner: Runner, pool: ThreadPoolExecutor, futures: Dict[object, Row],
              outcomes: Dict[int, Outcome]) -> None:
    """Stop the running jobs and collect every outcome; a further KeyboardInterrupt (where the
    signals could not be caught) only makes it start over, never lose what it has."""
    for _ in range(100):
        try:
            runner.stop()
            pool.shutdown(wait=True, cancel_futures=True)
            break
        except KeyboardInterrupt:
            continue
    for fut, r in futures.items():
        if r.line not in outcomes:
            ok = fut.done() and not fut.cancelled() and fut.exception() is None
            outcomes[r.line] = fut.result() if ok else Outcome(r, "stopped")


def run_from_cli(manifest, jobs: int, overwrite: bool, defaults: dict, dry_run: bool, quiet: bool,
                 echo: Callable[[str], None], out: Callable[[str], None], out_dir=None,
                 allow_outside: bool = False, cluster=None) -> int:
    """``bespoke batch``: returns the exit status (0 all done or skipped, 1 a row failed, 130 stopped).
    ``cluster``: a cluster.ClusterSpec to run the rows on (None: local processes)."""
    stack_dumps_on_request()
    from .errors import BespokeError

    rows = read_manifest(manifest, out_dir=out_dir, allow_outside=allow_outside)
    if cluster is not None and not dry_run:
        from .cluster import require_ray

        require_ray()  # before any work: the message names the extra to install
    if dry_run:
        todo, outcomes = plan(rows, overwrite)
        for r in rows:
            o = outcomes.get(r.line)
            state = "" if o is None else "# done, skipped: " if o.status == "skipped" else f"# FAILED, {o.message}: "
            out(state + shlex.join(["bespoke", "separate", *separate_args(r, defaults, overwrite)]))
        failed = sum(o.status == "failed" for o in outcomes.values())
        if failed:
            raise BespokeError(f"{failed} of {len(rows)} rows would fail (see the lines starting '# FAILED')")
        return 0
    # the signals are held until the table is out: a second Ctrl-C cannot lose it
    with StopSignals() as stop:
        try:
            quiet_echo = (lambda m: None) if quiet else echo
            if cluster is not None:
                from .cluster import run_cluster

                outcomes = run_cluster(rows, cluster, overwrite=overwrite, defaults=defaults, echo=quiet_echo,
                                       progress=not quiet)
            else:
                outcomes = run_batch(rows, jobs=jobs, overwrite=overwrite, defaults=defaults, echo=quiet_echo,
                                     progress=not quiet)
        except KeyboardInterrupt as e:
            out(summary_table(getattr(e, "outcomes", [])))
            echo("bespoke: error: interrupted; finished outputs are kept, the others were not written: "
                 "run the same command again to resume")
            return 130
        out(summary_table(outcomes))
        if stop.requested:  # Ctrl-C as the last row finished: every row has its outcome
            echo("bespoke: error: interrupted")
            return 130
    failed = sum(o.status == "failed" for o in outcomes)
    if failed:
        raise BespokeError(f"{failed} of {len(outcomes)} rows failed (see the table)")
    return 0
