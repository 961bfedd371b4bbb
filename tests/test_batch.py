"""bespoke batch: the manifest, then one album run with a success, a failure, a skip and a Ctrl-C."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import signal_cli

from bespoke.batch import Outcome, Row, read_manifest, separate_args, summary_table
from bespoke.cli import main
from bespoke.errors import InputError

REPO = Path(__file__).resolve().parents[1]


def write(path, text):
    path.write_text(text)
    return path


def test_manifest_paths_are_relative_to_its_folder_and_cells_are_typed(tmp_path):
    (tmp_path / "album").mkdir()
    m = write(tmp_path / "album" / "list.csv",
              "# my album\n"
              "Mix,MIDI,Out,Target,Budget,Seed,Force,Residual\n"
              "a.wav,a.mid,out/a.wav,violin,30,1,yes,out/a_rest.wav\n"
              "\n"
              "#b.wav,b.mid,out/b.wav,,,,,\n"
              f"{tmp_path}/c.flac,c.mid,out/c.flac,,,,no,\n")
    rows = read_manifest(m)
    assert [r.line for r in rows] == [3, 6]
    a, c = rows
    assert a.mix == tmp_path / "album" / "a.wav" and a.out == tmp_path / "album" / "out" / "a.wav"
    assert a.options == {"target": "violin", "budget": 30.0, "seed": 1, "force": True,
                         "residual": tmp_path / "album" / "out" / "a_rest.wav"}
    assert c.mix == tmp_path / "c.flac" and c.options == {"force": False} and c.label == "out/c.flac"


def test_semicolons_and_column_aliases(tmp_path):
    m = write(tmp_path / "l.csv", "recording;score;output;part\nx.wav;x.mid;y.wav;2\n")
    (row,) = read_manifest(m)
    assert row.midi.name == "x.mid" and row.options == {"target": "2"}


@pytest.mark.parametrize("text,match", [
    ("", "empty"),
    ("mix,midi,out\n", "lists no songs"),
    ("mix,midi\na.wav,a.mid\n", "missing: out"),
    ("mix,midi,out,tempo\na,b,c,1\n", "unknown column"),
    ("mix,midi,out\na.wav,,o.wav\n", "line 2: empty midi"),
    ("mix,midi,out,budget\na.wav,a.mid,o.wav,soon\n", "budget 'soon' is not a number"),
    ("mix,midi,out,force\na.wav,a.mid,o.wav,maybe\n", "force 'maybe' is not yes or no"),
    ("mix,midi,out\na.wav,a.mid,o.wav\nb.wav,b.mid,./o.wav\n", "also the output of line 2"),
    ("mix,midi,out\na.wav,a.mid,o.wav,extra\n", "4 cells for 3 columns"),
])
def test_manifest_mistakes_stop_the_batch_before_any_work(tmp_path, text, match):
    with pytest.raises(InputError, match=match):
        read_manifest(write(tmp_path / "l.csv", text))


def test_missing_manifest(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_manifest(tmp_path / "none.csv")


def test_row_cells_override_batch_defaults():
    row = Row(line=2, mix=Path("/a.wav"), midi=Path("/a.mid"), out=Path("/o.wav"), label="o.wav",
              options={"steps": 5, "force": False, "target": "Violin I"})
    args = separate_args(row, {"steps": 100, "seed": 7, "force": True, "budget": None}, overwrite=True)
    assert args == ["/a.wav", "/a.mid", "-o", "/o.wav", "--target", "Violin I", "--steps", "5", "--seed", "7",
                    "--overwrite"]


def test_summary_table_lists_every_row():
    rows = [Row(line=i, mix=Path("m"), midi=Path("d"), out=Path(f"/o{i}"), label=f"o{i}.wav") for i in (2, 3, 4)]
    table = summary_table([Outcome(rows[0], "done", 61.2, confidence=0.71), Outcome(rows[1], "skipped"),
                           Outcome(rows[2], "failed", 2.0, "x.mid: no such file")]).splitlines()
    assert table[0].split() == ["line", "status", "seconds", "conf", "output", "note"]
    assert table[1].split()[:5] == ["2", "done", "61", "0.71", "o2.wav"]
    assert table[2].split()[:2] == ["3", "skipped"] and "exists" in table[2]
    assert table[3].split()[:2] == ["4", "FAILED"] and table[3].endswith("x.mid: no such file")
    assert table[4] == "3 rows: 1 done, 1 skipped, 1 failed"


def test_dry_run_prints_the_commands(tiny_song, tmp_path, capsys):
    m = write(tmp_path / "l.csv", f"mix,midi,out,steps\n{tiny_song}/mix.wav,{tiny_song}/melody.mid,o.wav,3\n")
    assert main(["batch", str(m), "--dry-run", "--seed", "4"]) == 0
    out = capsys.readouterr().out.strip()
    assert out == (f"bespoke separate {tiny_song}/mix.wav {tiny_song}/melody.mid -o {tmp_path}/o.wav "
                   "--steps 3 --seed 4")
    assert not (tmp_path / "o.wav").exists()


def _env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))


@pytest.mark.slow
def test_album_run_failure_skip_resume_and_ctrl_c(tiny_song, tmp_path):
    """Rows: an output that exists (skipped), a missing MIDI (fails), a good song (done), and a
    very long one that Ctrl-C stops. Then the same album again: the finished rows are skipped."""
    import shutil

    (tmp_path / "out").mkdir()
    shutil.copy(tiny_song / "melody.wav", tmp_path / "out" / "old.wav")  # a stem finished before
    old = (tmp_path / "out" / "old.wav").read_bytes()
    song = tiny_song
    rows = [f"{song}/mix.wav,{song}/melody.mid,out/old.wav,",
            f"{song}/mix.wav,{song}/missing.mid,out/missing.wav,",
            f"{song}/mix_stereo.flac,{song}/score.mid,out/good.flac,melody",
            f"{song}/mix.wav,{song}/melody.mid,out/long.wav,"]
    # the long row trains 100000 steps (hours): only Ctrl-C ends it
    m = write(tmp_path / "album.csv", "mix,midi,out,target,steps\n" + "\n".join(
        r + ("," if not r.endswith("out/long.wav,") else ",100000") for r in rows) + "\n")
    rc, out, err, _took = signal_cli(["batch", m, "--jobs", "2", "--steps", "3", "--device", "cpu", "--seed", "0"],
                                     b"good.flac", signal.SIGINT, cwd=tmp_path, settle_s=1.0)
    assert rc == 130, err
    assert err.strip().splitlines()[-1].startswith("bespoke: error: interrupted")
    assert "Traceback" not in err
    status = {ln.split()[4]: ln.split()[1] for ln in out.splitlines()[1:-1]}
    assert status == {"out/old.wav": "skipped", "out/missing.wav": "FAILED", "out/good.flac": "done",
                      "out/long.wav": "stopped"}, out
    assert "missing.mid: no such file" in out
    assert (tmp_path / "out" / "old.wav").read_bytes() == old
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.flac", "old.wav"]

    # again, without the long row: the good song is not redone, the failure fails again
    write(m, "mix,midi,out,target\n" + "\n".join(rows[:3]) + "\n")
    before = (tmp_path / "out" / "good.flac").stat().st_mtime_ns
    proc = subprocess.run([sys.executable, "-m", "bespoke.cli", "batch", str(m), "-j", "2", "--steps", "3"],
                          capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == "bespoke: error: 1 of 3 rows failed (see the table)"
    assert proc.stdout.strip().splitlines()[-1] == "3 rows: 2 skipped, 1 failed"
    assert (tmp_path / "out" / "good.flac").stat().st_mtime_ns == before


@pytest.mark.slow
def test_a_batch_under_nohup_stops_its_jobs_cleanly_on_sigterm(tiny_song, tmp_path):
    """A batch started where SIGINT is ignored (nohup, a background job), so its jobs ignore
    SIGINT too, and stopped with kill (SIGTERM): the running job still cleans up at once
    (stopped, no file left), rather than being killed after the grace period."""
    from bespoke.batch import STOP_GRACE_S

    song = tiny_song
    (tmp_path / "out").mkdir()
    m = write(tmp_path / "album.csv", "mix,midi,out,steps\n"
              f"{song}/mix.wav,{song}/melody.mid,out/good.wav,3\n"
              f"{song}/mix.wav,{song}/melody.mid,out/long.wav,100000\n")
    rc, out, err, took = signal_cli(["batch", m, "--jobs", "2", "--device", "cpu", "--seed", "0"], b"good.wav",
                                    signal.SIGTERM, cwd=tmp_path, settle_s=1.0, ignore_sigint=True)
    assert rc == 130, err
    status = {ln.split()[4]: ln.split()[1] for ln in out.splitlines()[1:-1]}
    assert status == {"out/good.wav": "done", "out/long.wav": "stopped"}, out
    assert took < STOP_GRACE_S, took
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.wav"]


def test_parallel_jobs_split_the_cpu_threads(monkeypatch):
    from bespoke import batch

    monkeypatch.setattr(batch.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert batch.threads_per_job(2) == 4 and batch.threads_per_job(3) == 2 and batch.threads_per_job(16) == 1
    assert batch._child_env(2)["OMP_NUM_THREADS"] == "4"
    assert "OMP_NUM_THREADS" not in batch._child_env(1)        # one job: torch's own choice
    monkeypatch.setenv("OMP_NUM_THREADS", "3")                  # the user's setting wins
    assert batch._child_env(2)["OMP_NUM_THREADS"] == "3"
