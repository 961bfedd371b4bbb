"""bespoke batch with a hostile manifest: outputs stay inside the output root, resume never takes
a non-audio file for a finished stem, a folder or FIFO is never replaced, CSV quoting is the csv
module's, and a second (third) Ctrl-C cannot lose the summary table. Plus a fuzz run over
manifest rows and output paths."""
import csv
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bespoke.batch import read_manifest
from bespoke.cli import main
from bespoke.errors import BespokeError, InputError

REPO = Path(__file__).resolve().parents[1]
OUTPUT_COLUMNS = ("out", "residual", "save_aligned", "report", "plot")
SECRET = "root:x:0:0:root:/root:/bin/bash\n"


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def wav(path):
    sf.write(path, np.zeros(800, np.float32), 8000)
    return path


@pytest.fixture
def album(tmp_path):
    """tmp/album/ (the manifest's folder, holding in.wav, in.mid) and tmp/victim/passwd, a text
    file outside it; tmp/album/escape, a link to tmp/victim."""
    root = tmp_path / "album"
    root.mkdir()
    (tmp_path / "victim").mkdir()
    (tmp_path / "victim" / "passwd").write_text(SECRET)
    wav(root / "in.wav")
    (root / "in.mid").write_bytes(b"MThd")
    (root / "escape").symlink_to(tmp_path / "victim", target_is_directory=True)
    (root / "passwd-link.wav").symlink_to(tmp_path / "victim" / "passwd")
    return root


HOSTILE = ["../victim/passwd", "../../victim/passwd", "escape/passwd", "escape/new.wav", "passwd-link.wav",
           "stems/../../victim/passwd", "{victim}/passwd", "{victim}/new.wav", ".", "~/bespoke-batch-test.wav"]


@pytest.mark.parametrize("column", OUTPUT_COLUMNS)
@pytest.mark.parametrize("cell", HOSTILE)
def test_an_output_outside_the_root_refuses_the_manifest(album, column, cell):
    cell = cell.format(victim=album.parent / "victim")
    row = {"mix": "in.wav", "midi": "in.mid", "out": "stem.wav", column: cell}
    m = write_csv(album / "list.csv", list(row), [list(row.values())])
    with pytest.raises(InputError, match=f"line 2: {column} .* outside the output root {album}"):
        read_manifest(m)
    assert (album.parent / "victim" / "passwd").read_text() == SECRET


def test_dry_run_overwrite_never_prints_a_command_for_outside(album, capsys):
    m = write_csv(album / "list.csv", ["mix", "midi", "out"],
                  [["in.wav", "in.mid", "ok.wav"], ["in.wav", "in.mid", "../victim/passwd"]])
    assert main(["batch", str(m), "--dry-run", "--overwrite"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "passwd" not in out
    assert "line 3: out '../victim/passwd'" in err and "outside the output root" in err
    assert "--out-dir" in err and "--allow-outside" in err


def test_a_batch_overwrite_with_an_outside_row_runs_nothing(album, capsys):
    """The hostile row of the issue: nothing runs (the other row's song is not even tried: the
    whole manifest is refused), the victim file is untouched."""
    m = write_csv(album / "list.csv", ["mix", "midi", "out"],
                  [["in.wav", "in.mid", "ok.wav"],
                   ["in.wav", "in.mid", "../" * 30 + str(album.parent)[1:] + "/victim/passwd"]])
    assert main(["batch", str(m), "--overwrite", "--steps", "2"]) == 1
    assert "outside the output root" in capsys.readouterr().err
    assert (album.parent / "victim" / "passwd").read_text() == SECRET
    assert not (album / "ok.wav").exists()


def test_out_dir_chooses_the_root_and_allow_outside_lifts_it(album, capsys):
    (album.parent / "stems").mkdir()
    m = write_csv(album / "list.csv", ["mix", "midi", "out"], [["in.wav", "in.mid", "../stems/a.wav"]])
    with pytest.raises(InputError, match="outside the output root"):
        read_manifest(m)
    (row,) = read_manifest(m, out_dir=album.parent / "stems")
    assert row.out == album.parent / "stems" / "a.wav"
    with pytest.raises(InputError, match="outside the output root"):    # the root holds only what is in it
        read_manifest(m, out_dir=album)
    assert read_manifest(m, allow_outside=True)[0].out == album.parent / "stems" / "a.wav"

    assert main(["batch", str(m), "--dry-run", "--out-dir", str(album.parent / "stems")]) == 0
    assert f"-o {album.parent}/stems/a.wav" in capsys.readouterr().out
    assert main(["batch", str(m), "--dry-run", "--allow-outside"]) == 0
    assert f"-o {album.parent}/stems/a.wav" in capsys.readouterr().out


def test_a_link_inside_the_root_to_a_folder_inside_it_is_fine(album):
    (album / "stems").mkdir()
    (album / "latest").symlink_to(album / "stems", target_is_directory=True)
    m = write_csv(album / "list.csv", ["mix", "midi", "out"], [["in.wav", "in.mid", "latest/a.wav"]])
    assert read_manifest(m)[0].out == album / "stems" / "a.wav"      # the path written is the checked one


@pytest.mark.parametrize("rows,match", [
    ([["in.wav", "in.mid", "a.wav", ""], ["b.wav", "in.mid", "b.wav", "a.wav"]],
     "line 3: residual 'a.wav' is also the output of line 2"),
    ([["in.wav", "in.mid", "a.wav", ""], ["in.wav", "in.mid", "in.wav", ""]],
     "line 3: out 'in.wav' would overwrite the mix of line 2"),
    ([["x.wav", "in.mid", "a.wav", "in.mid"]], "line 2: residual 'in.mid' would overwrite the midi of line 2"),
])
def test_an_output_that_is_another_rows_file_refuses_the_manifest(album, rows, match):
    m = write_csv(album / "list.csv", ["mix", "midi", "out", "residual"], rows)
    with pytest.raises(InputError, match=match):
        read_manifest(m)


def _table(out):
    return {ln.split()[4]: (ln.split()[1], ln) for ln in out.splitlines()[1:-1]}


def test_resume_takes_only_audio_for_a_finished_stem(album, capsys):
    """A text file or an empty file where a stem should be fails its row (not replaced); audio
    is skipped; a FIFO or a folder fails it too. Nothing is run, nothing is touched."""
    (album / "notes.wav").write_text("my notes\n")
    (album / "empty.wav").write_bytes(b"")
    wav(album / "done.wav")
    os.mkfifo(album / "fifo.wav")
    (album / "folder.wav").mkdir()
    names = ["notes.wav", "empty.wav", "done.wav", "fifo.wav", "folder.wav"]
    m = write_csv(album / "list.csv", ["mix", "midi", "out"], [["in.wav", "in.mid", n] for n in names])
    before = {n: (album / n).stat() for n in names}
    assert main(["batch", str(m), "-q"]) == 1
    out, err = capsys.readouterr()
    table = _table(out)
    assert {n: s for n, (s, _) in table.items()} == {"notes.wav": "FAILED", "empty.wav": "FAILED",
                                                     "done.wav": "skipped", "fifo.wav": "FAILED",
                                                     "folder.wav": "FAILED"}, out
    assert table["notes.wav"][1].endswith("out exists and is not audio; not replaced (move it away to redo the row)")
    assert "exists and is a FIFO; not replaced" in table["fifo.wav"][1]
    assert "exists and is a folder; not replaced" in table["folder.wav"][1]
    assert err.strip().splitlines()[-1] == "bespoke: error: 4 of 5 rows failed (see the table)"
    assert (album / "notes.wav").read_text() == "my notes\n"
    for n in names:
        st_ = (album / n).stat()
        assert (st_.st_mtime_ns, st_.st_ino) == (before[n].st_mtime_ns, before[n].st_ino)


def test_dry_run_says_which_rows_would_fail(album, capsys):
    (album / "notes.wav").write_text("my notes\n")
    wav(album / "done.wav")
    os.mkfifo(album / "fifo.wav")
    (album / "rest").mkdir()
    m = write_csv(album / "list.csv", ["mix", "midi", "out", "residual"],
                  [["in.wav", "in.mid", "notes.wav", ""], ["in.wav", "in.mid", "done.wav", ""],
                   ["in.wav", "in.mid", "fifo.wav", ""], ["in.wav", "in.mid", "new.wav", "rest"]])
    assert main(["batch", str(m), "--dry-run"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("# FAILED, out exists and is not audio; not replaced")
    assert lines[1].startswith("# done, skipped: bespoke separate")
    assert lines[2].startswith("# FAILED, out exists and is a FIFO; not replaced")
    assert lines[3].startswith("# FAILED, residual exists and is a folder; not replaced")

    # --overwrite: a regular file is replaced (the user said so), a FIFO or folder never
    assert main(["batch", str(m), "--dry-run", "--overwrite"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("bespoke separate") and lines[0].endswith("--overwrite")
    assert lines[1].startswith("bespoke separate")
    assert lines[2].startswith("# FAILED, out exists and is a FIFO; not replaced")
    assert lines[3].startswith("# FAILED, residual exists and is a folder; not replaced")


# --- CSV quoting (the csv module's dialect, used for every row) ---

@pytest.mark.parametrize("text,out", [
    ('mix,midi,out\nin.wav,in.mid,"a ""b"" c.wav"\n', 'a "b" c.wav'),
    ('mix;midi;out\nin.wav;in.mid;"x; ""y"".wav"\n', 'x; "y".wav'),
    ('mix\tmidi\tout\nin.wav\tin.mid\t"t ""q"".wav"\n', 't "q".wav'),
    ('"mix","midi","out"\n"in.wav","in.mid","plain.wav"\n', "plain.wav"),
    ('mix,midi,out\r\nin.wav,in.mid,"crlf ""q"".wav"\r\n', 'crlf "q".wav'),
])
def test_quoted_cells_read_as_the_csv_module_reads_them(album, text, out):
    (album / "list.csv").write_text(text, newline="")
    (row,) = read_manifest(album / "list.csv")
    assert row.label == out and row.out == album / out


def test_a_quote_in_a_comment_does_not_swallow_the_rows_after_it(album):
    (album / "list.csv").write_text('mix,midi,out\n#draft,"the first take\nin.wav,in.mid,a.wav\n'
                                    '# another,"one\nin.wav,in.mid,b.wav\n')
    rows = read_manifest(album / "list.csv")
    assert [(r.line, r.label) for r in rows] == [(3, "a.wav"), (5, "b.wav")]


# --- a second and third Ctrl-C while the batch stops its songs ---

FAKE_SEPARATE = textwrap.dedent("""
    import signal, sys, time
    if "long" in sys.argv[1]:
        def term(*a):          # cleaning up takes a while: the batch waits for it
            time.sleep(1.5)
            sys.exit(130)
        signal.signal(signal.SIGTERM, term)
        time.sleep(600)
""")

DRIVER = textwrap.dedent("""
    import sys
    import bespoke.batch as b
    b.Runner.command = lambda self, row: [sys.executable, "-c", sys.argv[1], str(row.out)]
    from bespoke.cli import main
    sys.exit(main(sys.argv[2:]))
""")


def _batch_with_fake_songs(tmp_path, signals):
    """A batch of three fake songs (one quick, two that run until stopped and take 1.5 s to clean
    up), two at once; once the quick one is done, ``signals`` [(signal, pause after)] are sent."""
    m = write_csv(tmp_path / "album.csv", ["mix", "midi", "out"],
                  [["in.wav", "in.mid", "good.wav"], ["in.wav", "in.mid", "long1.wav"],
                   ["in.wav", "in.mid", "long2.wav"]])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, FAKE_SEPARATE, "batch", str(m), "-j", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=str(tmp_path),
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = b""
    try:
        deadline = time.monotonic() + 60
        while b"good.wav" not in seen and time.monotonic() < deadline and proc.poll() is None:
            seen += os.read(proc.stderr.fileno(), 4096)
        assert b"good.wav" in seen, seen
        time.sleep(0.3)
        for sig, pause in signals:
            proc.send_signal(sig)
            time.sleep(pause)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, out.decode(), (seen + err).decode()


@pytest.mark.parametrize("signals", [
    [(signal.SIGINT, 0.3), (signal.SIGINT, 0.3), (signal.SIGINT, 0)],   # Ctrl-C three times
    [(signal.SIGINT, 0), (signal.SIGINT, 0)],                            # timeout -s INT: two at once
    [(signal.SIGTERM, 0.2), (signal.SIGINT, 0.2), (signal.SIGTERM, 0)],  # kill, then Ctrl-C, then kill
], ids=["three-ctrl-c", "two-at-once", "term-int-term"])
def test_more_ctrl_c_while_stopping_keep_the_summary_table(tmp_path, signals):
    rc, out, err = _batch_with_fake_songs(tmp_path, signals)
    assert rc == 130, (out, err)
    assert "Traceback" not in err
    assert {n: s for n, (s, _) in _table(out).items()} == {"good.wav": "done", "long1.wav": "stopped",
                                                           "long2.wav": "stopped"}, out
    assert out.strip().splitlines()[-1] == "3 rows: 1 done, 2 stopped"
    assert err.strip().splitlines()[-1].startswith("bespoke: error: interrupted")


# --- fuzz: hostile rows and output paths ---

FUZZ = settings(max_examples=200, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
NAMES = ["..", ".", "escape", "file-link.wav", "dir-link", "fifo", "folder", "notes.wav", "done.wav",
         "stems", "new.wav", "~", "~nobody-here", "in.wav", "in.mid", "dangling.wav", "a b.wav", 'q"uote.wav',
         "é.wav", "#x.wav", " pad.wav "]
LEADS = ["", "", "", "/", "{root}/", "{outside}/", "./", "~/", "\n#\n", "stems/../"]
segment = st.one_of(st.sampled_from(NAMES),
                    st.text(st.characters(blacklist_characters="\x00/", blacklist_categories=("Cs",)),
                            min_size=1, max_size=6))
INSIDE = ["notes.wav", "done.wav", "fifo", "folder", "dir-link", "stems/fifo", "stems/done.wav", "new.wav",
          "stems/new.wav", "dir-link/new.wav", "dangling.wav", "stems", "stems/../done.wav", "./fifo"]
inside = st.tuples(st.just(""), st.lists(st.sampled_from(INSIDE), min_size=1, max_size=1))
hostile = st.tuples(st.sampled_from(LEADS), st.lists(segment, min_size=1, max_size=4))
cell = st.one_of(inside, inside, inside, hostile)     # a quarter hostile: most manifests pass, to plan them
row_ = st.builds(lambda out, more: {"out": out, **dict(more)},     # out, and up to two more outputs
                 cell, st.lists(st.tuples(st.sampled_from(OUTPUT_COLUMNS[1:]), cell), max_size=2))


def _tree():
    """A root (the manifest's folder) holding links that point out of it, FIFOs, a folder, a
    text file and stems; and a folder outside it."""
    base = Path(tempfile.mkdtemp(prefix="bespoke-fuzz-"))
    root, outside = base / "album", base / "outside"
    for d in (root / "stems", root / "folder", outside):
        d.mkdir(parents=True)
    (outside / "secret.wav").write_text(SECRET)
    wav(root / "in.wav")
    (root / "in.mid").write_bytes(b"MThd")
    (root / "notes.wav").write_text("notes\n")
    wav(root / "done.wav")
    wav(root / "stems" / "done.wav")
    os.mkfifo(root / "fifo")
    os.mkfifo(root / "stems" / "fifo")
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (root / "dir-link").symlink_to(root / "folder", target_is_directory=True)
    (root / "file-link.wav").symlink_to(outside / "secret.wav")
    (root / "dangling.wav").symlink_to(outside / "nothing.wav")
    return base, root.resolve(), outside.resolve()


def _landing(text, root):
    """Where a write to a cell's path lands (an independent reading: os.path, not bespoke)."""
    return os.path.realpath(os.path.join(str(root), os.path.expanduser(text.strip())))


@FUZZ
@given(rows=st.lists(row_, min_size=1, max_size=3), overwrite=st.booleans())
def test_fuzz_no_output_outside_the_root_and_no_special_file_replaced(rows, overwrite):
    """Dry runs of manifests with hostile output cells: a manifest is accepted exactly when every
    output lands inside the root (and none is another's file); an accepted one's commands name
    only paths inside the root, never an existing folder/FIFO to replace, and a skipped row's
    stem is audio. Nothing outside the root changes."""
    from bespoke.batch import run_from_cli

    base, root, outside = _tree()
    try:
        table = [{c: lead.replace("{root}", str(root)).replace("{outside}", str(outside)) + "/".join(parts)
                  for c, (lead, parts) in r.items()} for r in rows]
        m = write_csv(root / "list.csv", ["mix", "midi"] + list(OUTPUT_COLUMNS),
                      [["in.wav", "in.mid"] + [t.get(c, "") for c in OUTPUT_COLUMNS] for t in table])
        landing = [_landing(t[c], root) for t in table for c in OUTPUT_COLUMNS if t.get(c, "").strip()]
        fine = (all(t["out"].strip() for t in table)
                and all(p.startswith(str(root) + os.sep) for p in landing)
                and len(set(landing)) == len(landing)
                and not {str(root / "in.wav"), str(root / "in.mid")} & set(landing))
        printed = []
        try:
            run_from_cli(m, jobs=1, overwrite=overwrite, defaults={}, dry_run=True, quiet=True,
                         echo=printed.append, out=printed.append)
        except InputError as e:
            assert not fine, f"refused a fine manifest: {e}"
            return
        except BespokeError as e:  # some row would fail; its line says so
            assert "would fail" in str(e), e
        assert fine, f"accepted {table}"
        assert len(printed) == len(table)
        flags = {"-o", "--residual", "--save-aligned", "--report", "--plot"}
        named = []
        for line in printed:
            if line.startswith("# FAILED"):
                continue
            skipped = line.startswith("# done, skipped: ")
            assert skipped or not line.startswith("#"), line
            args = shlex.split(line.split(": ", 1)[1] if skipped else line)
            outs = [args[i + 1] for i, a in enumerate(args[:-1]) if a in flags]
            named += outs
            for p in outs:
                assert Path(p).is_relative_to(root) and p != str(root), (p, root)
                assert os.path.realpath(p) == p                   # no link left to follow
                if os.path.lexists(p) and not skipped:          # to be replaced: a regular file only
                    assert stat.S_ISREG(os.stat(p).st_mode), p
                    assert overwrite or p != outs[0]
            if skipped:                                         # a finished stem: a regular file, audio
                assert not overwrite and stat.S_ISREG(os.stat(outs[0]).st_mode), outs[0]
                assert sf.info(outs[0]).frames > 0
        assert set(named) <= set(landing)
        assert (outside / "secret.wav").read_text() == SECRET and sorted(os.listdir(outside)) == ["secret.wav"]
    finally:
        shutil.rmtree(base)


# --- one real album (tiny, 2 steps): a stem made, a text file and a FIFO left alone ---

@pytest.mark.slow
def test_a_real_batch_leaves_non_audio_alone(tiny_song, tmp_path):
    (tmp_path / "stems").mkdir()
    (tmp_path / "stems" / "notes.wav").write_text("my notes\n")
    os.mkfifo(tmp_path / "stems" / "fifo.wav")
    song = tiny_song
    m = write_csv(tmp_path / "album.csv", ["mix", "midi", "out", "steps"],
                  [[f"{song}/mix.wav", f"{song}/melody.mid", "stems/good.wav", "2"],
                   [f"{song}/mix.wav", f"{song}/melody.mid", "stems/notes.wav", "2"],
                   [f"{song}/mix.wav", f"{song}/melody.mid", "stems/fifo.wav", "2"]])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    proc = subprocess.run([sys.executable, "-m", "bespoke.cli", "batch", str(m), "--device", "cpu", "--seed", "0"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1, proc.stderr
    status = {n: s for n, (s, _) in _table(proc.stdout).items()}
    assert status == {"stems/good.wav": "done", "stems/notes.wav": "FAILED", "stems/fifo.wav": "FAILED"}, proc.stdout
    assert sf.info(str(tmp_path / "stems" / "good.wav")).frames > 0
    assert (tmp_path / "stems" / "notes.wav").read_text() == "my notes\n"
    assert (tmp_path / "stems" / "fifo.wav").is_fifo()
