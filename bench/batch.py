"""Albums: songs per hour of ``bespoke batch`` locally (``--jobs 1``, ``--jobs 2``) and on a Ray
cluster (``--cluster ray``, here a local one the batch starts on this machine: one node).

    PYTHONPATH=. python -m bench.batch --repeats 2 --out bench/BATCH.md
    PYTHONPATH=. python -m bench.batch --rows 4 --budget 10 --modes jobs1,cluster --out /tmp/batch.md

The album: the bundled example (examples/mix.flac, 25 s, four parts, its unaligned score), one
row per part (violin, flute, clarinet, cello), repeated to ``--rows`` rows. Every row trains a
fixed number of steps (``--seed 0``: the budget becomes 3 steps per second of it, whatever the pace),
so each row is the same work in every mode and songs per hour measure throughput. Each mode runs
the same command (``bespoke batch album.csv ... --overwrite``) in a process of its own, timed
from start to exit; the rows' own seconds and nodes come from the summary table and the rows'
``--report`` files (stage times). The machine is shared: the load average before and after each
mode is recorded.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / "work" / "batch"
PARTS = ["violin", "flute", "clarinet", "cello"]
MODES = {
    "jobs1": ["--jobs", "1"],
    "jobs2": ["--jobs", "2"],
    "cluster": ["--cluster", "ray", "--cpus-per-row", "1"],
}
STAGES = ["load", "align", "nmf", "synth", "train", "separate"]


def log(msg: str) -> None:
    print(f"[batch {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def write_album(folder: Path, n_rows: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["mix,midi,out,target,report"]
    for i in range(n_rows):
        part = PARTS[i % len(PARTS)]
        lines.append(f"{REPO}/examples/mix.flac,{REPO}/examples/score.mid,out/{i:02d}-{part}.wav,{part},"
                     f"out/{i:02d}-{part}.json")
    m = folder / "album.csv"
    m.write_text("\n".join(lines) + "\n")
    (folder / "out").mkdir(exist_ok=True)
    return m


def run_mode(mode: str, manifest: Path, budget: float) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, "-m", "bespoke.cli", "batch", str(manifest), "--budget", f"{budget:g}", "--seed", "0",
           "--device", "cpu", "--overwrite", *MODES[mode]]
    load0 = os.getloadavg()
    t = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=manifest.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    connected = None
    err_lines: List[str] = []
    out_chunks: List[str] = []
    drain = threading.Thread(target=lambda: out_chunks.append(p.stdout.read()))
    drain.start()
    for line in p.stderr:  # the cluster path says 'ray: ...' once it has joined (or started) the cluster
        err_lines.append(line)
        if connected is None and line.startswith("ray: "):
            connected = time.perf_counter() - t
    # wait4: this process's CPU time with that of the processes it reaped (the rows; Ray's own
    # processes, which a batch that started Ray stops and reaps, and their workers and rows)
    _pid, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t
    drain.join()
    res = {"mode": mode, "command": " ".join(["bespoke", "batch", "album.csv"] + cmd[5:]), "rc": p.returncode,
           "wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "connect": connected, "load_before": load0,
           "load_after": os.getloadavg(), "table": "".join(out_chunks), "stderr_tail": "".join(err_lines[-5:])}
    res["rows"] = read_rows(manifest.parent / "out")
    return res


def read_rows(out: Path) -> List[dict]:
    rows = []
    for rep in sorted(out.glob("*.json")):
        d = json.loads(rep.read_text())
        t = d.get("timings", {})
        rows.append({"name": rep.stem, "total": t.get("total"), "timings": t,
                     "cpu": (d.get("process") or {}).get("cpu_seconds"),
                     "peak_mb": (d.get("process") or {}).get("peak_memory_mb"),
                     "steps": (d.get("training") or {}).get("steps"),
                     "threads": (d.get("device") or {}).get("torch_threads"),
                     "node": (d.get("node") or {}).get("node_id") or (d.get("node") or {}).get("host")})
        rep.unlink()
    for stem in out.glob("*.wav"):
        stem.unlink()
    return rows


def songs_per_hour(r: dict) -> float:
    return len(r["rows"]) / r["wall"] * 3600 if r["wall"] else 0.0


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else float("nan")


def _steps(results: List[dict]) -> str:
    steps = sorted({x["steps"] for r in results for x in r["rows"] if x["steps"]})
    return "/".join(map(str, steps)) or "?"


def write_md(path: Path, results: List[dict], args) -> None:
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        import ray

        ray_v = ray.__version__
    except ImportError:
        ray_v = "not installed"
    lines = ["# Albums: songs per hour", "",
             f"Made by `python -m bench.batch` on {args.made}; {cores} CPU "
             f"cores ({platform.processor() or platform.machine()}), {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GB, "
             f"no GPU; torch {torch.__version__}, ray {ray_v}. The machine was shared with other work "
             "(the load average, 1 minute, before and after each mode is in the table), so the figures are "
             "indicative.", "",
             f"Album: {args.rows} rows, the bundled example (25 s, four parts) one part per row; every row "
             f"`--budget {args.budget:g} --seed 0` (a fixed {_steps(results)} training steps, the same work "
             "in every mode), `--device cpu`. Wall: the `bespoke batch` process from start to exit; songs/h: "
             "rows / wall. CPU s per row: the mean CPU time (user + system, every thread) of the rows' "
             "`bespoke separate` processes, from their reports (`process`); songs/h per core: 3600 / that, "
             "what one core busy with rows alone gives, much less sensitive to the load than the wall. "
             "Row s: the mean of the rows' own `total` (their reports: the stages, not the process start).", "",
             "| mode | command | rows at once | threads per row | wall s | songs/h | CPU s per row | "
             "songs/h per core | row s (mean) | " + " | ".join(STAGES) + " | load before / after |",
             "|" + "---|" * (10 + len(STAGES))]
    for r in results:
        rows = r["rows"]
        at_once = min(len(rows), {"jobs1": 1, "jobs2": 2, "cluster": cores}[r["mode"]])
        threads = sorted({x["threads"] for x in rows if x["threads"]})
        stage = [_mean(x["timings"].get(s) for x in rows) for s in STAGES]
        sph = songs_per_hour(r)
        status = "" if r["rc"] == 0 else f" (exit {r['rc']})"
        status = f" #{r.get('round', 1)}{status}" if args.repeats > 1 else status
        cpu_row = _mean(x["cpu"] for x in rows)
        lines.append(f"| {r['mode']}{status} | `{r['command']}` | {at_once} | {','.join(map(str, threads))} | "
                     f"{r['wall']:.0f} | {sph:.0f} | {cpu_row:.0f} | {3600 / cpu_row:.0f} | "
                     f"{_mean(x['total'] for x in rows):.1f} | "
                     + " | ".join(f"{v:.1f}" for v in stage)
                     + f" | {r['load_before'][0]:.1f} / {r['load_after'][0]:.1f} |")
    by: Dict[str, List[dict]] = {}
    for r in results:
        by.setdefault(r["mode"], []).append(r)
    median_sph = {m: statistics.median(songs_per_hour(r) for r in rs) for m, rs in by.items()}
    lines += [""]
    if "cluster" in by and by["cluster"][0]["connect"] is not None:
        c = by["cluster"]
        lines += ["The cluster runs' wall includes starting Ray on this machine: " + ", ".join(
            f"{r['connect']:.1f} s" for r in c if r["connect"] is not None) + " from the command's start to the "
            f"cluster joined. Their rows ran on {len({x['node'] for x in c[0]['rows']})} node(s).", ""]
    if results:
        lines += ["The batch's own CPU time (the `bespoke batch` process and the processes it reaped, "
                  "the rows included; Ray's processes are not among them) per mode: " + ", ".join(
                      f"{r['mode']} {r['cpu']:.0f} s" for r in results[:len(by)]) + "; the rows' peak memory: " + ", ".join(
                      f"{r['mode']} {max((x['peak_mb'] or 0) for x in r['rows']):.0f} MB" for r in results[:len(by)]) + ".", ""]
    if "jobs1" in by:
        lines += [("Median songs/h of the runs: " if args.repeats > 1 else "Songs/h: ") + ", ".join(
            f"{m} {v:.0f}" for m, v in median_sph.items()) + "; against `--jobs 1`: " + ", ".join(
            f"{m} {v / median_sph['jobs1']:.2f}x" for m, v in median_sph.items() if m != "jobs1") + ".", ""]
    if args.notes and Path(args.notes).exists():
        lines += [Path(args.notes).read_text().rstrip(), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    path.with_suffix(".json").write_text(json.dumps({"results": results, "rows": args.rows, "budget": args.budget,
                                                     "repeats": args.repeats, "made": args.made}, indent=1, default=str))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=4, help="rows of the album (the four parts, repeated)")
    ap.add_argument("--budget", type=float, default=10.0, help="--budget of every row (with --seed 0: steps)")
    ap.add_argument("--modes", default="jobs1,jobs2,cluster", help="comma-separated: " + ", ".join(MODES))
    ap.add_argument("--repeats", type=int, default=1,
                    help="rounds of every mode (the order reversed each other round: the load drifts)")
    ap.add_argument("--notes", default=str(REPO / "bench" / "batch-notes.md"),
                    help="markdown appended to the report (the findings), if it exists")
    ap.add_argument("--out", default=str(REPO / "bench" / "BATCH.md"))
    ap.add_argument("--from-json", default=None, help="re-write the markdown from a run's JSON (no runs)")
    args = ap.parse_args(argv)
    if args.from_json:
        d = json.loads(Path(args.from_json).read_text())
        args.rows, args.budget, args.repeats = d["rows"], d["budget"], d.get("repeats", 1)
        args.made = d.get("made", "?")
        write_md(Path(args.out), d["results"], args)
        return 0
    results: List[Dict] = []
    args.made = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())  # the start
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for k in range(args.repeats):
        for mode in (modes if k % 2 == 0 else modes[::-1]):
            manifest = write_album(WORK / mode, args.rows)
            log(f"{mode} (round {k + 1}): {args.rows} rows, budget {args.budget:g}")
            results.append(dict(run_mode(mode, manifest, args.budget), round=k + 1))
            r = results[-1]
            log(f"  rc {r['rc']}, wall {r['wall']:.1f} s, {songs_per_hour(r):.0f} songs/h")
            if r["rc"] != 0:
                log(r["table"] + r["stderr_tail"])
    write_md(Path(args.out), results, args)
    log(f"wrote {args.out}")
    return 0 if all(r["rc"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
