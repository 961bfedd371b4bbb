"""Every kind of bad input, from the command line: one line on stderr, a non-zero exit, no
traceback, and no file written (not even a temporary one)."""
import os
import signal
import sys
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf
from conftest import make_score, signal_cli

from bespoke.cli import main


@pytest.fixture(scope="module")
def bad(tiny_song, tmp_path_factory):
    """Broken and mismatched inputs beside the tiny song's good ones."""
    d = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    (d / "garbage.wav").write_bytes(rng.integers(0, 256, 20000, dtype=np.uint8).tobytes())
    (d / "zero_bytes.wav").write_bytes(b"")
    sf.write(d / "no_samples.wav", np.zeros((0, 1)), 22050)
    sf.write(d / "silent.wav", np.zeros(22050 * 4), 22050, subtype="PCM_16")
    x, sr = sf.read(tiny_song / "mix.wav")
    for name, value in (("nan", np.nan), ("inf", np.inf)):
        y = x.copy()
        y[1000] = value
        sf.write(d / f"{name}.wav", y, sr, subtype="FLOAT")
    sf.write(d / "rate4k.wav", x[::6], 4000)
    sf.write(d / "three_channels.wav", np.stack([x, x, x], axis=1), sr, subtype="PCM_16")
    (d / "folder.wav").mkdir()
    data = (tiny_song / "score.mid").read_bytes()
    (d / "truncated.mid").write_bytes(data[: len(data) // 2])
    (d / "garbage.mid").write_bytes(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    no_notes = mido.MidiFile(type=1)
    no_notes.tracks += [mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500000)]),
                        mido.MidiTrack([mido.MetaMessage("track_name", name="Piano")])]
    no_notes.save(str(d / "no_notes.mid"))
    with_empty = mido.MidiFile(str(tiny_song / "score.mid"))
    with_empty.tracks.append(mido.MidiTrack([mido.MetaMessage("track_name", name="Strings")]))
    with_empty.save(str(d / "with_empty.mid"))
    make_score(tempo_scale=6.0).write(str(d / "far_longer.mid"))
    make_score(seconds=30.0, tempo_scale=0.05).write(str(d / "far_shorter.mid"))
    # another piece: other melody, other chords on other beats, other key, same length (the same
    # chords in another key would be the same piece transposed, which bespoke moves back and accepts)
    other = make_score(seed=7)
    for inst in other.instruments:
        for n in inst.notes:
            if inst.name == "chords":
                n.pitch += (0, 5, -3, 2, 4)[int(n.start) % 5]
                n.start, n.end = n.start + 0.5, n.end + 0.25
            n.pitch += 6
    other.write(str(d / "other_piece.mid"))
    return d


def S(name):  # the tiny song's files
    return ("song", name)


def B(name):  # the broken files
    return ("bad", name)


OUT = ("out", "stem.wav")

# (case id, argv with placeholders, words the error line must hold)
CASES = [
    ("missing mix", ["separate", B("nope.wav"), S("melody.mid"), "-o", OUT], "nope.wav: no such file"),
    ("missing midi", ["separate", S("mix.wav"), B("nope.mid"), "-o", OUT], "nope.mid: no such file"),
    ("mix is a folder", ["separate", B("folder.wav"), S("melody.mid"), "-o", OUT], "is a directory"),
    ("garbage named .wav", ["separate", B("garbage.wav"), S("melody.mid"), "-o", OUT], "not a readable audio file"),
    ("midi and audio swapped", ["separate", S("melody.mid"), S("mix.wav"), "-o", OUT], "looks like a MIDI file"),
    ("zero-byte audio", ["separate", B("zero_bytes.wav"), S("melody.mid"), "-o", OUT], "empty"),
    ("audio without samples", ["separate", B("no_samples.wav"), S("melody.mid"), "-o", OUT], "empty (0 samples)"),
    ("silent audio", ["separate", B("silent.wav"), S("melody.mid"), "-o", OUT], "silent"),
    ("NaN samples", ["separate", B("nan.wav"), S("melody.mid"), "-o", OUT], "NaN or infinite"),
    ("infinite samples", ["separate", B("inf.wav"), S("melody.mid"), "-o", OUT], "NaN or infinite"),
    ("4 kHz audio", ["separate", B("rate4k.wav"), S("melody.mid"), "-o", OUT], "unsupported sample rate 4000"),
    ("truncated midi", ["separate", S("mix.wav"), B("truncated.mid"), "-o", OUT], "truncated"),
    ("garbage midi", ["separate", S("mix.wav"), B("garbage.mid"), "-o", OUT], "not a MIDI file"),
    ("midi without notes", ["separate", S("mix.wav"), B("no_notes.mid"), "-o", OUT], "holds no notes"),
    ("empty target part", ["separate", S("mix.wav"), B("with_empty.mid"), "--target", "strings", "-o", OUT],
     "holds no notes"),
    ("target names no part", ["separate", S("mix.wav"), S("score.mid"), "--target", "tuba", "-o", OUT],
     "names no part"),
    ("target index too big", ["separate", S("mix.wav"), S("score.mid"), "--target", "7", "-o", OUT], "parts #0-#1"),
    ("several parts, no target", ["separate", S("mix.wav"), S("score.mid"), "-o", OUT], "choose one with --target"),
    ("unknown instrument", ["separate", S("mix.wav"), S("melody.mid"), "--program", "kazoophone", "-o", OUT],
     "unknown instrument"),
    ("midi far longer", ["separate", S("mix.wav"), B("far_longer.mid"), "--target", "0", "-o", OUT],
     "times longer than the recording"),
    ("midi far shorter", ["separate", S("mix.wav"), B("far_shorter.mid"), "--target", "0", "-o", OUT],
     "times shorter than the recording"),
    ("midi of another piece", ["separate", S("mix.wav"), B("other_piece.mid"), "--target", "0", "-o", OUT],
     "alignment confidence"),
    ("output is the mix", ["separate", S("mix.wav"), S("melody.mid"), "-o", S("mix.wav"), "--overwrite"],
     "would overwrite an input"),
    ("residual is the midi", ["separate", S("mix.wav"), S("melody.mid"), "-o", OUT, "--save-aligned",
                              S("melody.mid"), "--overwrite"], "would overwrite an input"),
    ("two outputs, one name", ["separate", S("mix.wav"), S("melody.mid"), "-o", OUT, "--residual", OUT],
     "named for two outputs"),
    ("missing folder", ["separate", S("mix.wav"), S("melody.mid"), "-o", ("out", "no/such/stem.wav")],
     "does not exist"),
    ("unknown extension", ["separate", S("mix.wav"), S("melody.mid"), "-o", ("out", "stem.xyz")], "extension"),
    ("mp3 of 3 channels", ["separate", B("three_channels.wav"), S("melody.mid"), "-o", ("out", "stem.mp3")],
     "at most 2 channels"),
    ("subtype the format lacks", ["separate", S("mix.wav"), S("melody.mid"), "-o", ("out", "stem.flac"),
                                  "--subtype", "FLOAT"], "cannot hold subtype FLOAT"),
    ("plot as .txt", ["separate", S("mix.wav"), S("melody.mid"), "-o", OUT, "--plot", ("out", "p.txt")],
     ".png"),
    ("missing soundfont", ["separate", S("mix.wav"), S("melody.mid"), "-o", OUT, "--soundfont", B("no.sf2")],
     "soundfont not found"),
    ("usage: no output", ["separate", S("mix.wav"), S("melody.mid")], "Missing option"),
    ("usage: bad budget", ["separate", S("mix.wav"), S("melody.mid"), "-o", OUT, "--budget", "soon"], "budget"),
    ("align: another piece", ["align", S("mix.wav"), B("other_piece.mid"), "-o", ("out", "al.mid")],
     "alignment confidence"),
    ("info: truncated", ["info", B("truncated.mid")], "truncated"),
    ("synth: missing", ["synth", B("nope.mid"), "-o", OUT], "no such file"),
    ("eval: garbage", ["eval", B("garbage.wav"), S("melody.wav")], "not a readable audio file"),
    ("batch: missing manifest", ["batch", B("nope.csv")], "no such file"),
]


def _resolve(argv, dirs):
    return [str(dirs[a[0]] / a[1]) if isinstance(a, tuple) else a for a in argv]


def _listing(*folders):
    return sorted(str(p) for f in folders for p in Path(f).rglob("*"))


@pytest.mark.parametrize("argv,expect", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_writes_nothing(tiny_song, bad, tmp_path, capsys, argv, expect):
    dirs = {"song": tiny_song, "bad": bad, "out": tmp_path}
    before = _listing(tiny_song, bad, tmp_path)
    rc = main(_resolve(argv, dirs) + (["-q", "--steps", "2", "--device", "cpu"] if argv[0] == "separate" else []))
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc not in (0, 3), err                        # 3 would be an internal error (a bug)
    assert len(lines) == 1, err
    assert lines[0].startswith("bespoke: error: ") and expect in lines[0], lines[0]
    assert "Traceback" not in err
    assert _listing(tiny_song, bad, tmp_path) == before


def test_existing_output_is_kept_without_overwrite(tiny_song, tmp_path, capsys):
    out = tmp_path / "stem.wav"
    out.write_bytes(b"precious")
    rc = main(["separate", str(tiny_song / "mix.wav"), str(tiny_song / "melody.mid"), "-o", str(out), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "exists already" in err[0]
    assert out.read_bytes() == b"precious"


def test_output_through_a_link_to_an_input_is_refused(tiny_song, tmp_path, capsys):
    link = tmp_path / "link.wav"
    link.symlink_to(tiny_song / "mix.wav")
    hard = tmp_path / "hard.wav"
    os.link(tiny_song / "mix.wav", hard)
    for out in (link, hard):
        rc = main(["separate", str(tiny_song / "mix.wav"), str(tiny_song / "melody.mid"), "-o", str(out),
                   "--overwrite", "-q"])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 1 and len(err) == 1 and "would overwrite an input" in err[0]


def _unwritable_folder(tmp_path):
    """A folder this process cannot create files in (root ignores permission bits: use /sys)."""
    if os.geteuid() != 0:
        d = tmp_path / "locked"
        d.mkdir()
        d.chmod(0o500)
        return d
    for cand in (Path("/sys"), Path("/proc/sys")):
        try:
            (cand / ".bespoke-probe").open("w").close()
        except OSError:
            return cand
    pytest.skip("no unwritable folder available")


def test_unwritable_folder(tiny_song, tmp_path, capsys):
    folder = _unwritable_folder(tmp_path)
    try:
        rc = main(["separate", str(tiny_song / "mix.wav"), str(tiny_song / "melody.mid"),
                   "-o", str(folder / "stem.wav"), "-q"])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 1 and len(err) == 1 and "cannot write in" in err[0], err
        assert not (folder / "stem.wav").exists()
    finally:
        if folder.is_relative_to(tmp_path):
            folder.chmod(0o700)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_unreadable_file(tiny_song, tmp_path, capsys):
    locked = tmp_path / "locked.wav"
    locked.write_bytes((tiny_song / "mix.wav").read_bytes())
    locked.chmod(0)
    rc = main(["separate", str(locked), str(tiny_song / "melody.mid"), "-o", str(tmp_path / "o.wav"), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "permission denied" in err[0]


def test_missing_matplotlib_is_one_line_before_any_work(tiny_song, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    rc = main(["separate", str(tiny_song / "mix.wav"), str(tiny_song / "melody.mid"), "-o", str(tmp_path / "o.wav"),
               "--plot", str(tmp_path / "p.png"), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "pip install 'bespoke[plot]'" in err[0]
    assert list(tmp_path.iterdir()) == []


def test_align_force_writes_a_doubtful_alignment_with_a_warning(tiny_song, bad, tmp_path, capsys):
    out = tmp_path / "al.mid"
    rc = main(["align", str(tiny_song / "mix.wav"), str(bad / "other_piece.mid"), "-o", str(out), "--force", "-q"])
    err = capsys.readouterr().err
    assert rc == 0 and out.exists()
    assert "low alignment confidence" in err and "error" not in err
    # the right MIDI goes through without --force and without a warning
    rc = main(["align", str(tiny_song / "mix.wav"), str(tiny_song / "score.mid"), "-o", str(tmp_path / "ok.mid"),
               "-q"])
    assert rc == 0 and capsys.readouterr().err == ""


@pytest.mark.slow
def test_ctrl_c_during_training_leaves_no_file(tiny_song, tmp_path):
    """A real SIGINT to a running 'bespoke separate', sent once it trains."""
    out, rest = tmp_path / "stem.wav", tmp_path / "rest.wav"
    rc, _out, err, _took = signal_cli(
        ["separate", tiny_song / "mix.wav", tiny_song / "melody.mid", "-o", out, "--residual", rest,
         "--report", tmp_path / "r.json", "--steps", "100000", "--device", "cpu"], b"train", signal.SIGINT,
        deadline_s=300)
    # 130; or death by SIGINT, which shells also report as 130: CPython exits that way when the
    # KeyboardInterrupt passed through code a C extension ran with PyRun_*, even once caught
    assert rc in (130, -signal.SIGINT), err
    assert err.strip().splitlines()[-1] == "bespoke: error: interrupted; no output was written"
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_signal_inside_a_finalizer_only_sets_the_stop_flag():
    """Ctrl-C that lands while the garbage collector runs a progress bar's __del__ must not raise
    there (Python would print that traceback and ignore the exception): the flag stops the run at
    the next progress step instead. Anywhere else the signal raises KeyboardInterrupt."""
    import sys

    from bespoke import cli

    seen = {}

    class Bar:
        def __del__(self):
            try:
                cli._on_signal(signal.SIGINT, sys._getframe())
                seen["raised"] = False
            except KeyboardInterrupt:
                seen["raised"] = True

    try:
        cli._RUN["stop"] = False
        Bar()                              # collected at once: its __del__ runs here
        assert seen == {"raised": False} and cli._RUN["stop"]
        cli._RUN["stop"] = False
        with pytest.raises(KeyboardInterrupt):
            cli._on_signal(signal.SIGINT, sys._getframe())
        with pytest.raises(KeyboardInterrupt):   # and the flagged run stops at its next step
            cli._check_stop()
    finally:
        cli._RUN["stop"] = False
