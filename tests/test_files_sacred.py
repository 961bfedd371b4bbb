"""Files are sacred: what the writer never replaces, two runs racing for one output, kill -9 while
writing, an empty output name, a full disk."""
import errno
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from bespoke.audio import atomic_paths, save_audio
from bespoke.cli import main
from bespoke.errors import OutputError

try:
    import bespoke.files as F
except ImportError:  # before the writer had a module of its own: the tests that need it fail
    F = None

REPO = str(Path(__file__).resolve().parents[1])
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
FAST = ["--steps", "2", "--seed", "0", "--device", "cpu", "-q"]


def tone(seconds=1.0, sr=8000):
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 440 * t))[None].astype(np.float32)


def listing(folder):
    return sorted(p.name for p in Path(folder).iterdir())


def has_o_tmpfile(folder) -> bool:
    try:
        fd = os.open(str(folder), os.O_TMPFILE | os.O_RDWR, 0o600)
    except (AttributeError, OSError):
        return False
    os.close(fd)
    return os.path.isdir("/proc/self/fd")


def python(code, *args, **kw):
    """A Python child with this checkout's bespoke, its own process group."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, **kw)


def wait_for(paths, proc_list, deadline_s=300):
    t = time.monotonic()
    while not all(Path(p).exists() for p in paths):
        assert time.monotonic() - t < deadline_s, [p.stderr.read() if p.poll() is not None else "" for p in proc_list]
        for p in proc_list:
            if p.poll() is not None and p.returncode != 0:
                raise AssertionError(p.stderr.read().decode(errors="replace"))
        time.sleep(0.02)


# --- only regular files (or nothing) are replaced --------------------------------------------------

def _fifo(tmp_path):
    p = tmp_path / "pipe.wav"
    os.mkfifo(p)
    return p


def _device(tmp_path):
    p = tmp_path / "null.wav"
    try:
        os.mknod(p, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a /dev/null of our own
    except (PermissionError, OSError) as e:
        pytest.skip(f"cannot make a device node here ({e})")
    return p


@pytest.mark.parametrize("make,kind", [(_fifo, "FIFO"), (_device, "device")])
def test_overwrite_never_replaces_a_device_or_fifo(tiny_song, tmp_path, capsys, make, kind):
    node = make(tmp_path)
    before = os.lstat(node)
    rc = main(["separate", str(tiny_song / "mix.wav"), str(tiny_song / "melody.mid"), "-o", str(node),
               "--overwrite", *FAST])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1, err
    assert str(node) in err[0] and kind in err[0] and "only regular files" in err[0]
    after = os.lstat(node)
    assert (after.st_mode, after.st_ino, after.st_rdev) == (before.st_mode, before.st_ino, before.st_rdev)
    assert listing(tmp_path) == [node.name]


def test_a_symlink_output_is_refused_and_neither_link_nor_target_changes(tiny_song, tmp_path, capsys):
    target = tmp_path / "target.wav"
    target.write_bytes(b"precious")
    link = tmp_path / "link.wav"
    link.symlink_to(target)
    rc = main(["separate", str(tiny_song / "mix.wav"), str(tiny_song / "melody.mid"), "-o", str(link),
               "--overwrite", *FAST])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "symbolic link" in err[0], err
    assert link.is_symlink() and os.readlink(link) == str(target) and target.read_bytes() == b"precious"


def test_a_fifo_that_appears_during_the_work_is_not_replaced_either(tmp_path):
    out = tmp_path / "stem.wav"
    with pytest.raises(OutputError, match="FIFO"):
        with atomic_paths([out], overwrite=True) as (tmp,):
            Path(tmp).write_bytes(b"new")
            os.mkfifo(out)  # after the check before the work
    assert stat.S_ISFIFO(os.lstat(out).st_mode)
    assert listing(tmp_path) == ["stem.wav"]


# --- no replacing what appeared meanwhile ---------------------------------------------------------------

RACER = """
    import sys, time
    from pathlib import Path
    from bespoke.audio import atomic_paths
    out, tag, ready, go = sys.argv[1:]
    try:
        with atomic_paths([out + ".json", out], overwrite=False) as tmps:
            for t in tmps:
                Path(t).write_text(tag)
            Path(ready).touch()
            while not Path(go).exists():
                time.sleep(0.005)
    except Exception as e:
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
"""


def test_two_writers_racing_for_one_output_one_wins_and_nothing_is_mixed(tmp_path):
    out_dir, sync = tmp_path / "out", tmp_path / "sync"
    out_dir.mkdir()
    sync.mkdir()
    out = out_dir / "stem.wav"
    procs = [python(RACER, out, tag, sync / f"ready-{tag}", sync / "go") for tag in ("A", "B")]
    try:
        wait_for([sync / "ready-A", sync / "ready-B"], procs)  # both checked, wrote, and wait to place
        (sync / "go").touch()
        results = [(p.wait(timeout=60), p.stderr.read().decode()) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 1], results
    winner = "AB"[[rc for rc, _ in results].index(0)]
    loser_err = [e for rc, e in results if rc == 1][0]
    assert "exists already" in loser_err and str(out) in loser_err, loser_err
    # the winner's outputs, both of them: nothing of the loser's was left placed
    assert out.read_text() == winner and (out_dir / "stem.wav.json").read_text() == winner
    assert listing(out_dir) == ["stem.wav", "stem.wav.json"]


BARRIER_CLI = """
    import sys, time
    from pathlib import Path
    import bespoke.outputs as outputs
    from bespoke.cli import main
    ready, other = Path(sys.argv[1]), Path(sys.argv[2])
    real = outputs.write_separation

    def write_when_both_are_done(*a, **k):  # both runs did their work, checks included
        ready.touch()
        t = time.monotonic()
        while not other.exists() and time.monotonic() - t < 300:
            time.sleep(0.005)
        return real(*a, **k)

    outputs.write_separation = write_when_both_are_done
    sys.exit(main(sys.argv[3:]))
"""


@pytest.mark.slow
def test_two_cli_runs_writing_the_same_output_one_fails_with_exists(tiny_song, tmp_path):
    out_dir, sync = tmp_path / "out", tmp_path / "sync"
    out_dir.mkdir()
    sync.mkdir()
    out = out_dir / "stem.wav"
    args = ["separate", tiny_song / "mix.wav", tiny_song / "melody.mid", "-o", out, "--report",
            out_dir / "r.json", *FAST]
    procs = [python(BARRIER_CLI, sync / "a", sync / "b", *args), python(BARRIER_CLI, sync / "b", sync / "a", *args)]
    try:
        results = [(p.wait(timeout=600), p.stderr.read().decode()) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    assert sorted(rc for rc, _ in results) == [0, 1], results
    err = [e for rc, e in results if rc == 1][0].strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"bespoke: error: {out_dir}") and "exists already" in err[0], err
    assert "--overwrite" in err[0]
    assert listing(out_dir) == ["r.json", "stem.wav"]


def test_without_overwrite_an_interrupted_placement_takes_back_what_it_placed(tmp_path, monkeypatch):
    paths = [tmp_path / "rest.wav", tmp_path / "r.json", tmp_path / "stem.wav"]
    real, calls = F._place_one, []

    def interrupted(t, overwrite):
        calls.append(t)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real(t, overwrite)

    monkeypatch.setattr(F, "_place_one", interrupted)
    with pytest.raises(KeyboardInterrupt):
        with atomic_paths(paths, overwrite=False) as tmps:
            for t in tmps:
                Path(t).write_bytes(b"x")
    assert listing(tmp_path) == []


def test_named_temporaries_keep_the_same_promises(tmp_path, monkeypatch):
    """Where there is no O_TMPFILE: the group appears whole with the usual mode, what exists is not
    replaced without overwrite, and nothing is left either way."""
    monkeypatch.setattr(F, "USE_O_TMPFILE", False)
    paths = [tmp_path / "rest.wav", tmp_path / "stem.wav"]
    with atomic_paths(paths, overwrite=False) as tmps:
        assert all(Path(t).name.startswith(".bespoke-tmp.") for t in tmps)
        for t in tmps:
            Path(t).write_bytes(b"1")
    mask = os.umask(0o022)
    os.umask(mask)
    assert [p.stat().st_mode & 0o777 for p in paths] == [0o666 & ~mask] * 2
    with pytest.raises(OutputError, match="exists already"):
        with atomic_paths([tmp_path / "new.wav", paths[1]], overwrite=False) as tmps:
            for t in tmps:
                Path(t).write_bytes(b"2")
    assert listing(tmp_path) == ["rest.wav", "stem.wav"] and paths[1].read_bytes() == b"1"


# --- kill -9 ------------------------------------------------------------------------------------------

KILLED = """
    import os, sys, time
    import numpy as np
    import bespoke.audio as A
    folder, mode = sys.argv[1:]
    try:
        import bespoke.files
        bespoke.files.USE_O_TMPFILE = mode == "unnamed"
    except ImportError:
        pass
    big = np.random.default_rng(0).standard_normal((2, 44100 * 20)).astype(np.float32) * 0.1
    paths = [f"{folder}/rest.wav", f"{folder}/r.json", f"{folder}/stem.flac"]
    with A.atomic_paths(paths) as tmps:
        A.save_audio(tmps[0], big, 44100)               # a whole WAV written...
        with open(tmps[1], "w") as f:
            f.write("{}")
        with open(tmps[2], "wb") as f:                   # ...and one being written
            f.write(os.urandom(1 << 20))
            f.flush()
            print("writing", flush=True)
            time.sleep(120)
"""


def _kill_while_writing(folder, mode):
    proc = python(KILLED, folder, mode)
    try:
        line = proc.stdout.readline()
        assert line == b"writing\n", proc.stderr.read().decode()
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.pid


def test_kill_9_while_writing_leaves_the_folder_as_it_was(tmp_path):
    if not has_o_tmpfile(tmp_path):
        pytest.skip("this file system has no unnamed temporary files (O_TMPFILE)")
    (tmp_path / "keep.wav").write_bytes(b"old")
    _kill_while_writing(tmp_path, "unnamed")
    assert listing(tmp_path) == ["keep.wav"]
    assert (tmp_path / "keep.wav").read_bytes() == b"old"


def test_kill_9_with_named_temporaries_they_go_at_the_next_write_in_that_folder(tmp_path):
    (tmp_path / "keep.wav").write_bytes(b"old")
    pid = _kill_while_writing(tmp_path, "named")
    left = [n for n in listing(tmp_path) if n != "keep.wav"]
    assert len(left) == 3 and all(n.startswith(".bespoke-tmp.") and f".{pid}." in n for n in left), left
    # a temporary of a live process (this one's parent), and a file not ours, are kept
    live = f".bespoke-tmp.{F._machine()}.{os.getppid()}.0000.wav"
    (tmp_path / live).write_bytes(b"busy")
    (tmp_path / ".bespoke-tmp.notours").write_bytes(b"?")
    save_audio(tmp_path / "next.wav", tone(), 8000)
    assert listing(tmp_path) == sorted([".bespoke-tmp.notours", live, "keep.wav", "next.wav"])


@pytest.mark.slow
def test_kill_9_of_a_cli_run_while_it_writes_its_outputs_leaves_nothing(tiny_song, tmp_path):
    if not has_o_tmpfile(tmp_path):
        pytest.skip("this file system has no unnamed temporary files (O_TMPFILE)")
    code = """
        import os, signal, sys
        import bespoke.report as report
        from bespoke.cli import main

        def die_while_writing(data, path):  # the stem, residual and aligned MIDI are written by now
            with open(path, "w") as f:
                f.write("{")
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)

        report.write_json = die_while_writing
        sys.exit(main(sys.argv[1:]))
    """
    proc = python(code, "separate", tiny_song / "mix.wav", tiny_song / "melody.mid", "-o", tmp_path / "stem.wav",
                  "--residual", tmp_path / "rest.wav", "--save-aligned", tmp_path / "al.mid", "--report",
                  tmp_path / "r.json", *FAST)
    try:
        rc = proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert rc == -signal.SIGKILL, proc.stderr.read().decode()
    assert listing(tmp_path) == []


# --- an empty output name ----------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["separate", "{mix}", "{mid}", "-o", ""],
    ["separate", "{mix}", "{mid}", "-o", "{out}/s.wav", "--residual", ""],
    ["separate", "{mix}", "{mid}", "-o", "{out}/s.wav", "--report", ""],
    ["separate", "{mix}", "{mid}", "-o", "{out}/s.wav", "--save-aligned", ""],
    ["separate", "{mix}", "{mid}", "-o", "{out}/s.wav", "--plot", ""],
    ["align", "{mix}", "{mid}", "-o", ""],
    ["align", "{mix}", "{mid}", "-o", "{out}/a.mid", "--plot", ""],
    ["synth", "{mid}", "-o", ""],
])
def test_an_empty_output_name_is_a_usage_error_before_any_work(tiny_song, tmp_path, capsys, argv):
    subs = {"mix": tiny_song / "mix.wav", "mid": tiny_song / "melody.mid", "out": tmp_path}
    argv = [a.format(**subs) for a in argv]
    extra = FAST if argv[0] == "separate" else []
    t = time.monotonic()
    rc = main(argv + extra)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "empty" in err[0], err
    assert time.monotonic() - t < 5  # refused before the work
    assert listing(tmp_path) == []


def test_the_library_refuses_an_empty_output_name_too(tmp_path):
    from bespoke.outputs import check_outputs

    with pytest.raises(OutputError, match="empty"):
        check_outputs([str(tmp_path / "a.wav"), ""], [], overwrite=False)


# --- a full disk ------------------------------------------------------------------------------------------

def test_a_write_error_names_the_output_in_words_and_leaves_nothing(tiny_song, tmp_path):
    """A real write error from the OS (the file size limit: EFBIG), in a real CLI run."""
    import resource

    out = tmp_path / "out.wav"

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    proc = subprocess.run([sys.executable, "-m", "bespoke.cli", "synth", str(tiny_song / "melody.mid"), "-o",
                           str(out)], env=dict(ENV, PYTHONDONTWRITEBYTECODE="1"), capture_output=True,
                          preexec_fn=small_files, timeout=300)
    err = proc.stderr.decode().strip().splitlines()
    assert proc.returncode == 1 and len(err) == 1, err
    assert err[0] == f"bespoke: error: {out}: could not write audio (file too large)"
    assert listing(tmp_path) == []


def test_a_full_disk_when_the_writer_hears_of_it_names_the_output(tmp_path, monkeypatch):
    """ENOSPC at the last moment (at fsync, as on a delayed-allocation file system), in a group."""
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(F.os, "fsync", full)
    paths = [tmp_path / "rest.wav", tmp_path / "stem.wav"]
    with pytest.raises(OutputError) as e:
        with atomic_paths(paths) as tmps:
            for t in tmps:
                Path(t).write_bytes(b"x")
    assert str(e.value) == f"{paths[0]}: could not write (no space left on device)"
    assert listing(tmp_path) == []


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB tmpfs (root, where mounting is allowed); skipped elsewhere."""
    d = tmp_path / "tiny"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(d)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.decode(errors='replace').strip()})")
    try:
        yield d
    finally:
        subprocess.run(["umount", str(d)], capture_output=True)


@pytest.mark.parametrize("ext", ["wav", "flac", "mp3"])
def test_a_full_disk_says_so_and_names_the_output(tiny_disk, ext):
    out = tiny_disk / f"stem.{ext}"
    (tiny_disk / "keep.txt").write_text("old")
    noise = np.random.default_rng(0).standard_normal((2, 44100 * 10)).astype(np.float32) * 0.3
    with pytest.raises(OutputError) as e:
        save_audio(out, noise, 44100)
    assert str(e.value) == f"{out}: could not write audio (no space left on device)"
    assert listing(tiny_disk) == ["keep.txt"]


def test_a_full_disk_in_a_group_names_the_output_that_filled_it(tiny_disk):
    from bespoke.report import write_json

    paths = [tiny_disk / "r.json", tiny_disk / "stem.wav"]
    with pytest.raises(OutputError) as e:
        with atomic_paths(paths) as tmps:
            save_audio(tmps[1], tone(0.1), 8000)
            write_json({"x": "y" * (200 * 1024)}, tmps[0])
    msg = str(e.value)
    assert msg.startswith(f"{paths[0]}: ") and "no space left on device" in msg.lower() and "/proc/" not in msg
    assert listing(tiny_disk) == []
