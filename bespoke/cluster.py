"""Albums past one machine: ``bespoke batch MANIFEST --cluster ray`` runs each row as a task of a
Ray cluster (a laptop, a cloud cluster, a Slurm allocation running ``ray start``) instead of a
local process.

Each task runs on its node the very command the local batch runs (bespoke.rows: ``bespoke
separate`` in a process of its own), so the atomic writes and the clean-up on SIGTERM are the
same. A task asks for its CPUs, GPUs (a row whose device is cuda asks for one) and memory, and
Ray runs as many at once as the cluster holds. The outputs must be on a path every node sees
(a shared file system). Resumable as the local batch is: the driver plans which rows are done
before anything runs. A task lost with its worker or node is run again, elsewhere, up to
``retries`` times; a row that fails is reported and the others go on. Ctrl-C or SIGTERM cancels
every task: each one's ``bespoke separate`` gets SIGTERM and removes its temporary files (and
if the task's worker dies, the child gets SIGTERM from the kernel: rows.die_with_parent).
"""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from .errors import BespokeError, InputError
from .files import clean_stale_temporaries
from .manifest import Row
from .report import NODE_ENV
from .rows import AlbumBar, Outcome, child_env, row_command, row_outcome, row_report

ENGINES = ("ray",)
NEEDS_EXTRA = "--cluster ray needs the cluster extra: pip install 'bespoke[cluster]'"
STOP_GRACE_S = 30.0  # after Ctrl-C, how long a task may take to clean up before it is killed


@dataclass(frozen=True)
class ClusterSpec:
    """Where and how the rows run: the engine, the cluster's address (None: start one here), what
    each row asks for, and how many times a row lost with its node is tried again."""

    engine: str = "ray"
    address: Optional[str] = None
    cpus: float = 1.0
    gpus: Optional[float] = None         # None: 1 for a row whose device is cuda, else 0
    memory_gb: Optional[float] = 1.5
    retries: int = 2


def cluster_spec(engine: Optional[str], jobs: int = 1, address=None, cpus_per_row=None, gpus_per_row=None,
                 memory_per_row=None, retries=None) -> Optional[ClusterSpec]:
    """The ClusterSpec of ``bespoke batch``'s options (None: run locally); an InputError for a
    cluster option without --cluster, or --jobs with it."""
    cpus, gpus, memory_gb = cpus_per_row, gpus_per_row, memory_per_row
    given = {"--address": address, "--cpus-per-row": cpus, "--gpus-per-row": gpus,
             "--memory-per-row": memory_gb, "--retries": retries}
    if engine is None:
        named = [k for k, v in given.items() if v is not None]
        if named:
            raise InputError(f"{', '.join(named)} only apply with --cluster ray")
        return None
    if engine not in ENGINES:
        raise InputError(f"--cluster {engine}: the engines are {', '.join(ENGINES)}")
    if jobs != 1:
        raise InputError("--jobs is for the local batch; on a cluster as many rows run at once as it holds "
                         "(--cpus-per-row sets what each asks for)")
    d = ClusterSpec()
    return ClusterSpec(engine, address, d.cpus if cpus is None else cpus, gpus,
                       d.memory_gb if memory_gb is None else (memory_gb or None),
                       d.retries if retries is None else retries)


def require_ray():
    try:
        import ray
    except ImportError:
        raise BespokeError(NEEDS_EXTRA) from None
    return ray


def row_request(row: Row, defaults: Optional[dict], spec: ClusterSpec) -> dict:
    """What the task of ``row`` asks Ray for: num_cpus, num_gpus and memory (bytes)."""
    device = str(row.options.get("device") or (defaults or {}).get("device") or "auto").lower()
    gpus = spec.gpus if spec.gpus is not None else (1.0 if device.startswith("cuda") else 0.0)
    req = {"num_cpus": spec.cpus, "num_gpus": gpus}
    if spec.memory_gb:
        req["memory"] = int(spec.memory_gb * 2**30)
    return req


# --------------------------------------------------------------------------- on the node

def run_row(row: Row, defaults: Optional[dict], overwrite: bool, threads: int, gpus: float) -> Outcome:
    """A row's task, on its node: ``bespoke separate`` as a child process, its outcome with the node
    named. ray.cancel (a KeyboardInterrupt here) passes SIGTERM on and waits for the clean-up."""
    node = node_info()
    name = f"{node['host']}/{node['node_id'][:6]}"
    for folder in {p.parent for p in row.outputs().values()}:
        clean_stale_temporaries(folder)  # of this row's earlier try, if this machine ran it and it died
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bespoke-row-") as work:
        private = Path(work) / f"line{row.line}.json"
        env = child_env(max(1, int(threads)))
        env[NODE_ENV] = json.dumps(node)
        path = _importable_here(env.get("PYTHONPATH"))
        if path:
            env["PYTHONPATH"] = path
        if not gpus:
            env["CUDA_VISIBLE_DEVICES"] = ""  # no GPU asked for, none used
        try:
            proc = subprocess.Popen(row_command(row, defaults, overwrite, private), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, errors="replace", env=env,
                                    start_new_session=True)
        except OSError as e:
            return Outcome(row, "failed", 0.0, f"could not start: {e}", node=name)
        try:
            err = _communicate(proc)
        except KeyboardInterrupt:
            _stop_child(proc)
            return Outcome(row, "stopped", time.perf_counter() - t0, "interrupted", node=name)
        o = row_outcome(row, proc.returncode, err, time.perf_counter() - t0, row_report(row, private), False)
    o.node = name
    return o


def _importable_here(pythonpath: Optional[str]) -> Optional[str]:
    """PYTHONPATH for the row's process, so that it imports the bespoke this task runs: the folder
    holding it first, unless that is a site-packages folder (which Python finds anyway)."""
    import site

    import bespoke

    here = str(Path(bespoke.__file__).resolve().parents[1])
    if here in {str(Path(p).resolve()) for p in site.getsitepackages() + [site.getusersitepackages()]}:
        return pythonpath
    return os.pathsep.join([here] + [p for p in [pythonpath] if p])


def node_info() -> dict:
    import ray

    ctx = ray.get_runtime_context()
    return {"engine": "ray", "host": socket.gethostname(), "node_id": ctx.get_node_id(),
            "node_ip": ray.util.get_node_ip_address(), "task_id": ctx.get_task_id()}


def _communicate(proc: subprocess.Popen) -> str:
    while True:
        try:
            return proc.communicate(timeout=0.5)[1]
        except subprocess.TimeoutExpired:
            continue


def _stop_child(proc: subprocess.Popen) -> None:
    """SIGTERM (the child cleans up as on Ctrl-C), then SIGKILL after STOP_GRACE_S; a further
    cancel while it cleans up changes nothing."""
    deadline = time.monotonic() + STOP_GRACE_S
    for _ in range(100):
        try:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
            return
        except KeyboardInterrupt:
            continue


# --------------------------------------------------------------------------- the driver

def probe(address: Optional[str]) -> None:
    """An error unless something answers at ``address`` (host:port, or ray://host:port): Ray itself
    would try for minutes. None, 'auto' and 'local' are Ray's to resolve."""
    if not address or address in ("auto", "local"):
        return
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--address {address}: give the cluster's head as host:port (or 'auto')")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as e:
        why = os.strerror(e.errno).lower() if e.errno else (str(e) or type(e).__name__)
        raise BespokeError(f"--address {address}: no Ray cluster answers there ({why})") from None


class Driver:
    """Connects to (or starts) the cluster, submits the rows, follows them, retries lost ones."""

    def __init__(self, spec: ClusterSpec, overwrite: bool, defaults: Optional[dict], bar: AlbumBar):
        self.ray = require_ray()
        self.spec, self.overwrite, self.defaults, self.bar = spec, overwrite, defaults, bar
        self.pending: Dict[object, Tuple[Row, int]] = {}
        self.started = False

    def connect(self) -> str:
        """Join the cluster at the address (or start one here); returns a line describing it.
        Ray's init sets its own SIGTERM handler: ours (the batch's) are put back."""
        ray = self.ray
        if ray.is_initialized():
            return self.describe()
        probe(self.spec.address)
        old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            ray.init(address=self.spec.address, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.ERROR)
        except (ConnectionError, RuntimeError, ValueError) as e:
            where = f"--address {self.spec.address}" if self.spec.address else "a local Ray cluster"
            hint = ("; a cluster with token authentication needs RAY_AUTH_MODE=token here and its token "
                    "(ray get-auth-token)") if self.spec.address and not os.environ.get("RAY_AUTH_MODE") else ""
            raise BespokeError(f"{where}: could not connect ({str(e).strip().splitlines()[0]}){hint}") from None
        finally:
            for s, h in old.items():
                if h is not None:
                    signal.signal(s, h)
        self.started = True
        return self.describe()

    def nodes(self) -> List[dict]:
        return [n.get("Resources", {}) for n in self.ray.nodes() if n.get("Alive")]

    def describe(self) -> str:
        nodes = self.nodes()
        cpus, gpus = (sum(n.get(k, 0) for n in nodes) for k in ("CPU", "GPU"))
        return f"ray: {len(nodes)} node(s), {cpus:g} CPUs, {gpus:g} GPUs; each row asks for {self.spec.cpus:g} CPU(s)"

    def capacity(self) -> int:
        """Rows the cluster runs at once (CPU-wise), for the progress bar."""
        return int(sum(n.get("CPU", 0) // max(self.spec.cpus, 1e-9) for n in self.nodes()))

    def unfit(self, row: Row) -> Optional[str]:
        """Why no node of the cluster can run ``row`` (None: one can)."""
        req = row_request(row, self.defaults, self.spec)
        need = {"CPU": req["num_cpus"], "GPU": req["num_gpus"], "memory": req.get("memory", 0)}
        if any(all(n.get(k, 0) >= v for k, v in need.items() if v) for n in self.nodes()):
            return None
        mem = f", {req['memory'] / 2**30:g} GB memory" if req.get("memory") else ""
        return (f"no node of the cluster has {req['num_cpus']:g} CPU(s), {req['num_gpus']:g} GPU(s){mem} "
                "for this row (see --cpus-per-row, --gpus-per-row, --memory-per-row)")

    def submit(self, row: Row, attempt: int) -> None:
        req = row_request(row, self.defaults, self.spec)
        task = self.ray.remote(run_row).options(max_retries=0, retry_exceptions=False,
                                                name=f"bespoke line {row.line}", **req)
        ref = task.remote(row, self.defaults, self.overwrite, req["num_cpus"], req["num_gpus"])
        self.pending[ref] = (row, attempt)

    def collect(self, ref) -> Optional[Outcome]:
        """The outcome of a finished task; None when its node was lost and it runs again."""
        from ray import exceptions as rx

        row, attempt = self.pending.pop(ref)
        try:
            o = self.ray.get(ref)
        except rx.TaskCancelledError:
            return Outcome(row, "stopped", message="interrupted")
        except rx.RayTaskError as e:  # a bug in the task itself
            return Outcome(row, "failed", message=f"task error: {str(e).strip().splitlines()[-1]}")
        except rx.RayError as e:  # its worker or node was lost (killed, out of memory, gone)
            why = f"{type(e).__name__}"
            if attempt <= self.spec.retries:
                self.bar.write(f"[!] {row.label}: its node or worker was lost ({why}); trying again "
                               f"({attempt + 1} of {self.spec.retries + 1})")
                self.submit(row, attempt + 1)
                return None
            return Outcome(row, "failed", message=f"lost with its node or worker {attempt} times ({why})")
        if attempt > 1 and o.status == "done":
            o.message = f"done on try {attempt}, after a lost node"
        return o

    def stop(self, outcomes: Dict[int, Outcome]) -> None:
        """Cancel every task (each stops its child, which cleans up), wait for them, then kill
        those still running after the grace time."""
        ray, refs = self.ray, list(self.pending)
        for ref in refs:
            ray.cancel(ref, force=False)
        _, late = ray.wait(refs, num_returns=len(refs), timeout=STOP_GRACE_S + 5) if refs else ([], [])
        for ref in late:
            ray.cancel(ref, force=True)
        for ref in refs:
            row, _ = self.pending[ref]
            try:
                o = ray.get(ref, timeout=10)
            except Exception:
                o = Outcome(row, "stopped", message="interrupted")
            outcomes[row.line] = o if o.status == "done" else Outcome(row, "stopped", o.seconds, "interrupted",
                                                                      node=o.node)
        self.pending.clear()

    def close(self) -> None:
        if self.started:
            old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
            self.ray.shutdown()
            for s, h in old.items():
                if h is not None:
                    signal.signal(s, h)


def run_cluster(rows: List[Row], spec: ClusterSpec, overwrite: bool = False, defaults: Optional[dict] = None,
                echo: Callable[[str], None] = lambda m: None, progress: bool = False) -> List[Outcome]:
    """As batch.run_batch (same outcomes, same KeyboardInterrupt on Ctrl-C or SIGTERM), the rows
    run as tasks of a Ray cluster."""
    from .batch import StopSignals, finished_outcomes, planned

    todo, outcomes = planned(rows, overwrite, echo)
    interrupted = False
    with StopSignals() as stop:
        require_ray()
        bar = AlbumBar(len(todo), echo, enabled=progress)
        driver = Driver(spec, overwrite, defaults, bar)
        try:
            if todo:
                bar.write(driver.connect())
            for r in todo:
                why = driver.unfit(r)
                if why:
                    outcomes[r.line] = Outcome(r, "failed", message=why)
                    bar.ended(outcomes[r.line])
                else:
                    driver.submit(r, 1)
            interrupted = _follow(driver, bar, outcomes, stop)
        finally:
            bar.close()
            driver.close()
    return finished_outcomes(rows, todo, outcomes, interrupted)


def _follow(driver: Driver, bar: AlbumBar, outcomes: Dict[int, Outcome], stop) -> bool:
    """Collect outcomes as the tasks end; True if stopped by a signal (the tasks are then stopped)."""
    ray = driver.ray
    capacity, checked = driver.capacity(), time.monotonic()
    try:
        while driver.pending and not stop.requested:
            ready, _ = ray.wait(list(driver.pending), num_returns=1, timeout=0.5, fetch_local=True)
            for ref in ready:
                o = driver.collect(ref)
                if o is not None:
                    outcomes[o.row.line] = o
                    bar.running = min(len(driver.pending), capacity)
                    bar.ended(o)
            if time.monotonic() - checked > 10:  # nodes come and go
                capacity, checked = driver.capacity(), time.monotonic()
            bar.set_running(min(len(driver.pending), capacity))
    except KeyboardInterrupt:  # where the signals could not be caught (not the main thread)
        pass
    if driver.pending:
        driver.stop(outcomes)
        return True
    return stop.requested
