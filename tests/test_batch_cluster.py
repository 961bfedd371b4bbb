"""bespoke batch --cluster ray: the options, the message without Ray, what each row asks for, the
table's node column, the album's progress line; then, on a real local Ray cluster of two nodes,
an album during which one node is killed mid-row, and an album stopped with Ctrl-C."""
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bespoke.cli import main
from bespoke.cluster import NEEDS_EXTRA, ClusterSpec, cluster_spec, row_request
from bespoke.manifest import Row
from bespoke.rows import AlbumBar, Outcome, summary_table

REPO = Path(__file__).resolve().parents[1]


def write(path, text):
    path.write_text(text)
    return path


def row(line=2, **options):
    return Row(line=line, mix=Path("/m.wav"), midi=Path("/m.mid"), out=Path(f"/o{line}.wav"), label=f"o{line}.wav",
               options=options)


@pytest.mark.parametrize("args,match", [
    (["--address", "auto"], "--address only apply with --cluster ray"),
    (["--retries", "1", "--cpus-per-row", "2"], "--cpus-per-row, --retries only apply with --cluster ray"),
    (["--cluster", "ray", "--jobs", "2"], "--jobs is for the local batch"),
])
def test_cluster_options_are_checked_before_any_work(tmp_path, capsys, args, match):
    m = write(tmp_path / "l.csv", "mix,midi,out\na.wav,a.mid,o.wav\n")
    assert main(["batch", str(m), *args]) == 1
    assert match in capsys.readouterr().err


def test_without_ray_the_message_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    m = write(tmp_path / "l.csv", "mix,midi,out\na.wav,a.mid,o.wav\n")
    assert main(["batch", str(m), "--cluster", "ray"]) == 1
    assert capsys.readouterr().err.strip() == f"bespoke: error: {NEEDS_EXTRA}"
    assert not (tmp_path / "o.wav").exists()


@pytest.mark.parametrize("address,match", [("127.0.0.1:1", "no Ray cluster answers there (connection refused)"),
                                           ("headnode", "give the cluster's head as host:port (or 'auto')")])
def test_an_address_where_no_cluster_answers_fails_at_once(tmp_path, capsys, address, match):
    pytest.importorskip("ray")
    m = write(tmp_path / "l.csv", "mix,midi,out\na.wav,a.mid,o.wav\n")
    assert main(["batch", str(m), "--cluster", "ray", "--address", address]) == 1
    assert capsys.readouterr().err.strip() == f"bespoke: error: --address {address}: {match}"


def test_each_row_asks_for_its_cpus_gpus_and_memory():
    spec = cluster_spec("ray", cpus_per_row=2.0)
    assert spec == ClusterSpec(cpus=2.0) and cluster_spec(None) is None
    assert row_request(row(), {}, spec) == {"num_cpus": 2.0, "num_gpus": 0.0, "memory": int(1.5 * 2**30)}
    assert row_request(row(device="cuda:1"), {}, spec)["num_gpus"] == 1.0   # a GPU row goes to a GPU node
    assert row_request(row(), {"device": "cuda"}, spec)["num_gpus"] == 1.0
    assert row_request(row(device="cpu"), {"device": "cuda"}, spec)["num_gpus"] == 0.0
    half = cluster_spec("ray", gpus_per_row=0.5, memory_per_row=0)
    assert row_request(row(), {}, half) == {"num_cpus": 1.0, "num_gpus": 0.5}


def test_the_table_names_the_node_of_each_row_run_on_a_cluster():
    table = summary_table([Outcome(row(2), "done", 12.0, confidence=0.8, node="gpu-3/a1b2c3"),
                           Outcome(row(3), "skipped")]).splitlines()
    assert table[0].split() == ["line", "status", "seconds", "conf", "node", "output", "note"]
    assert table[1].split() == ["2", "done", "12", "0.80", "gpu-3/a1b2c3", "o2.wav"]
    assert table[2].split()[:5] == ["3", "skipped", "-", "-", "-"]
    assert "node" not in summary_table([Outcome(row(2), "done", 1.0)])   # local rows: no column


def test_the_album_progress_counts_rows_and_songs_per_hour():
    lines = []
    bar = AlbumBar(3, lines.append)       # no terminal here: lines only
    bar.set_running(2)
    bar.t0 -= 1800                         # half an hour in
    bar.ended(Outcome(row(2), "done", 5.0, node="n/1"))
    bar.ended(Outcome(row(3), "failed", 1.0, "x.mid: no such file"))
    bar.set_running(1)
    assert bar.status() == "1 done, 1 running, 1 failed, 2 songs/h"
    assert lines == ["[1/3] done   o2.wav (5 s on n/1)", "[2/3] failed o3.wav (1 s): x.mid: no such file"]


def test_a_report_names_the_node_it_ran_on(monkeypatch):
    from bespoke.report import NODE_ENV, node_info

    monkeypatch.delenv(NODE_ENV, raising=False)
    assert set(node_info()) == {"host"}
    monkeypatch.setenv(NODE_ENV, json.dumps({"engine": "ray", "node_id": "ab12", "host": "ignored"}))
    info = node_info()
    assert info["engine"] == "ray" and info["node_id"] == "ab12" and info["host"] != "ignored"


# --------------------------------------------------------------------------- a real cluster

def _env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))


def _separating(folder) -> list:
    """Pids of the 'bespoke separate' processes writing into ``folder``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"separate" in cmd and any(str(folder).encode() in c for c in cmd) and b"bespoke.cli" in cmd:
            found.append(int(pid))
    return found


@contextlib.contextmanager
def _killed_on_exit(proc):
    """Run the block; then kill ``proc``'s process group if it is still running (a failed test
    leaves no batch behind)."""
    try:
        yield proc
    except subprocess.TimeoutExpired:
        # a hang: the batch prints every thread's stack on SIGUSR1; fail with them
        os.kill(proc.pid, signal.SIGUSR1)
        time.sleep(3.0)
        os.killpg(proc.pid, signal.SIGKILL)
        _out, err = proc.communicate()
        raise AssertionError(f"the batch did not end in time; its stderr and stacks:\n{err}") from None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_for(what, deadline_s=120.0):
    t = time.monotonic()
    while time.monotonic() - t < deadline_s:
        got = what()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError("timed out")


def _table(out):
    lines = out.strip().splitlines()
    assert lines[0].split()[:5] == ["line", "status", "seconds", "conf", "node"], out
    return {ln.split()[5]: ln for ln in lines[1:-1]}, lines[-1]


@pytest.fixture
def two_nodes(monkeypatch):
    """A Ray cluster on this machine: a head that runs nothing and two worker nodes of one CPU
    each, with resources of their own (node_a, node_b). Their workers import this bespoke."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("PYTHONPATH", _env()["PYTHONPATH"])
    small = dict(object_store_memory=78_643_200)
    cluster = Cluster(initialize_head=True, head_node_args=dict(num_cpus=0, include_dashboard=False, **small))
    try:
        a = cluster.add_node(num_cpus=1, resources={"node_a": 1}, **small)
        b = cluster.add_node(num_cpus=1, resources={"node_b": 1}, **small)
        cluster.wait_for_nodes()
        yield cluster, a, b
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()


@pytest.mark.slow
def test_an_album_survives_a_lost_node_and_resumes(tiny_song, tmp_path, two_nodes):
    """Three songs and a row whose MIDI is missing on two one-CPU nodes; node A is killed while
    it runs a row. Every row ends done (the lost one run again on node B) or reported; nothing
    half-written is left, no row process outlives the node; a second run does only what is left."""
    cluster, node_a, node_b = two_nodes
    song = tiny_song
    out = tmp_path / "out"
    out.mkdir()
    m = write(tmp_path / "album.csv", "mix,midi,out,target,report\n"
              f"{song}/mix.wav,{song}/melody.mid,out/one.wav,,out/one.json\n"
              f"{song}/mix_stereo.flac,{song}/score.mid,out/two.flac,melody,out/two.json\n"
              f"{song}/mix.wav,{song}/score.mid,out/three.wav,chords,out/three.json\n"
              f"{song}/mix.wav,{song}/missing.mid,out/four.wav,,\n")
    cmd = [sys.executable, "-m", "bespoke.cli", "batch", str(m), "--cluster", "ray", "--address", cluster.address,
           "--steps", "3", "--device", "cpu", "--seed", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
                            start_new_session=True)
    with _killed_on_exit(proc):
        _wait_for(lambda: len(_separating(out)) >= 2)   # a row on each node
        cluster.remove_node(node_a)                      # node A dies mid-row
        stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 1, stderr
    assert stderr.strip().splitlines()[-1] == "bespoke: error: 1 of 4 rows failed (see the table)"
    assert "Traceback" not in stderr
    rows, total = _table(stdout)
    assert total == "4 rows: 3 done, 1 failed", stdout
    assert "missing.mid: no such file" in rows["out/four.wav"] and " FAILED " in rows["out/four.wav"]
    retried = [k for k, ln in rows.items() if "after a lost node" in ln]
    assert len(retried) == 1, stdout
    assert "its node or worker was lost" in stderr
    b_id = node_b.node_id
    for name in ("one", "two", "three"):
        rep = json.loads((out / f"{name}.json").read_text())
        assert rep["node"]["engine"] == "ray" and rep["node"]["node_id"] == b_id   # A ran nothing to the end
        assert {"align", "nmf", "synth", "train", "separate", "total"} <= set(rep["timings"])
    assert rows[retried[0]].split()[4] == f"{rep['node']['host']}/{b_id[:6]}"
    assert sorted(p.name for p in out.iterdir()) == ["one.json", "one.wav", "three.json", "three.wav",
                                                     "two.flac", "two.json"]
    time.sleep(1.0)
    assert _separating(out) == []          # the killed node's row process did not live on

    # again, one row's outputs gone: only that row runs (and the missing MIDI fails again)
    (out / "two.flac").unlink()
    (out / "two.json").unlink()
    before = (out / "one.wav").stat().st_mtime_ns
    again = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=240)
    assert again.returncode == 1, again.stderr
    rows, total = _table(again.stdout)
    assert total == "4 rows: 1 done, 2 skipped, 1 failed", again.stdout
    assert rows["out/two.flac"].split()[1] == "done"
    assert (out / "one.wav").stat().st_mtime_ns == before


@pytest.mark.slow
def test_ctrl_c_stops_every_task_of_a_local_cluster(tiny_song, tmp_path):
    """No --address: the batch starts a Ray cluster here. Ctrl-C at the terminal (SIGINT to the
    whole process group: the batch and Ray's own processes) while two rows train: both stop, no
    file is written, no row process is left, the table shows them stopped, the status is 130."""
    pytest.importorskip("ray")
    song = tiny_song
    (tmp_path / "out").mkdir()
    # the whole score (a one-part MIDI would add the transcriber's seconds to every row)
    m = write(tmp_path / "album.csv", "mix,midi,out,target\n" + "".join(
        f"{song}/mix.wav,{song}/score.mid,out/{n}.wav,0\n" for n in ("a", "b", "c")))
    # Ctrl-C as at a terminal: SIGINT not ignored, whatever this test runner inherited (a make test
    # started in the background has it ignored, and the batch rightly keeps an ignored SIGINT ignored)
    proc = subprocess.Popen([sys.executable, "-m", "bespoke.cli", "batch", str(m), "--cluster", "ray", "--steps",
                             "100000", "--device", "cpu", "--seed", "0", "--memory-per-row", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    with _killed_on_exit(proc):
        _wait_for(lambda: len(_separating(tmp_path / "out")) >= 1)
        time.sleep(3.0)  # into the rows' work
        os.killpg(proc.pid, signal.SIGINT)
        # the stop may take its grace time (30 s for the rows' clean-up) and Ray's shutdown
        stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1].startswith("bespoke: error: interrupted")
    assert "Traceback" not in stderr
    assert stdout.strip().splitlines()[-1] == "3 rows: 3 stopped", stdout
    assert list((tmp_path / "out").iterdir()) == []
    time.sleep(1.0)
    assert _separating(tmp_path / "out") == []


def test_a_rows_process_imports_the_bespoke_its_task_runs(monkeypatch):
    """The folder holding bespoke goes first on the row's PYTHONPATH, unless it is a
    site-packages folder (first there, it would shadow the standard library)."""
    import site

    from bespoke.cluster import _importable_here

    assert _importable_here("/x") == os.pathsep.join([str(REPO), "/x"])
    monkeypatch.setattr(site, "getsitepackages", lambda: [str(REPO)])
    assert _importable_here("/x") == "/x" and _importable_here(None) is None


def test_a_row_that_no_node_can_hold_is_named_before_it_waits_forever():
    from types import SimpleNamespace

    from bespoke.cluster import Driver

    driver = Driver.__new__(Driver)        # no Ray: a cluster of one CPU node and a dead GPU node
    driver.spec, driver.defaults = ClusterSpec(), {}
    driver.ray = SimpleNamespace(nodes=lambda: [
        {"Alive": True, "Resources": {"CPU": 4.0, "memory": 8.0 * 2**30}},
        {"Alive": False, "Resources": {"CPU": 4.0, "GPU": 1.0, "memory": 8.0 * 2**30}}])
    assert driver.unfit(row()) is None
    assert driver.unfit(row(device="cuda")).startswith("no node of the cluster has 1 CPU(s), 1 GPU(s), 1.5 GB memory")
    assert driver.capacity() == 4
