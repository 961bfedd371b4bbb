"""Tiny songs built in code: two parts (a melody and chords), rendered with fluidsynth."""
from __future__ import annotations

import numpy as np
import pretty_midi
import pytest
import soundfile as sf

from bespoke.synth import bundled_soundfont, render

SR = 22050


def make_score(seconds: float = 8.0, tempo_scale: float = 1.0, offset: float = 0.0, seed: int = 0):
    """A two-part score: #0 melody (violin, program 40), #1 chords (piano, program 0).

    tempo_scale / offset warp the timing (t -> t * tempo_scale + offset), to make an
    unaligned version of the same music."""
    rng = np.random.default_rng(seed)
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    mel = pretty_midi.Instrument(program=40, name="melody")
    acc = pretty_midi.Instrument(program=0, name="chords")
    t = 0.5
    scale = [72, 74, 76, 77, 79, 81, 83, 84]
    while t < seconds - 1.0:
        d = float(rng.choice([0.25, 0.5, 0.75]))
        p = int(rng.choice(scale))
        mel.notes.append(pretty_midi.Note(90, p, t * tempo_scale + offset, (t + d * 0.95) * tempo_scale + offset))
        t += d
    t = 0.5
    chords = [[48, 55, 64], [53, 57, 65], [55, 59, 62], [48, 52, 60]]
    k = 0
    while t < seconds - 1.0:
        for p in chords[k % 4]:
            acc.notes.append(pretty_midi.Note(70, p, t * tempo_scale + offset, (t + 0.95) * tempo_scale + offset))
        t += 1.0
        k += 1
    pm.instruments = [mel, acc]
    return pm


@pytest.fixture(scope="session")
def tiny_song(tmp_path_factory):
    """Files of a tiny song: mix.wav (mono 22.05 kHz), mix_stereo.flac, melody.wav (the truth),
    score.mid (both parts, de-aligned), melody.mid (the melody alone, de-aligned)."""
    d = tmp_path_factory.mktemp("song")
    true = make_score()
    sf2 = bundled_soundfont()
    mel = render([true.instruments[0]], SR, soundfont=sf2, duration=8.5)
    acc = render([true.instruments[1]], SR, soundfont=sf2, duration=8.5)
    mel *= 0.15 / (np.abs(mel).max() + 1e-9)
    acc *= 0.45 / (np.abs(acc).max() + 1e-9)
    mix = mel + acc
    sf.write(d / "mix.wav", mix, SR, subtype="PCM_16")
    sf.write(d / "melody.wav", mel, SR, subtype="PCM_16")
    stereo = np.stack([0.7 * mel + 0.3 * acc, 0.3 * mel + 0.7 * acc], axis=1)
    sf.write(d / "mix_stereo.flac", stereo, SR, subtype="PCM_24")
    sf.write(d / "melody_stereo.wav", np.stack([0.7 * mel, 0.3 * mel], axis=1), SR, subtype="PCM_24")
    warped = make_score(tempo_scale=1.12, offset=0.4)
    warped.write(str(d / "score.mid"))
    solo = pretty_midi.PrettyMIDI(initial_tempo=120)
    solo.instruments = [warped.instruments[0]]
    solo.write(str(d / "melody.mid"))
    true.write(str(d / "true.mid"))
    return d


def signal_cli(args, marker: bytes, sig, *, cwd=None, deadline_s: float = 400.0, settle_s: float = 0.0,
               ignore_sigint: bool = False):
    """Start ``python -m bespoke.cli ARGS``, wait until ``marker`` shows on its stderr, then send it
    ``sig`` and let it finish. Returns ``(returncode, stdout, stderr, seconds it took to stop)``.

    The child starts with SIGINT at its default (Ctrl-C acts as in a terminal even when the
    tests run where SIGINT is ignored, e.g. a background job or nohup, which a child would
    inherit), or ignored with ``ignore_sigint`` (to play such a run). It leads a process group of
    its own, killed whole if the test fails, so no job it started keeps running."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    repo = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([repo] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    disposition = signal.SIG_IGN if ignore_sigint else signal.SIG_DFL
    proc = subprocess.Popen([sys.executable, "-m", "bespoke.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=None if cwd is None else str(cwd),
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, disposition))
    seen = b""
    try:
        deadline = time.monotonic() + deadline_s
        while marker not in seen and time.monotonic() < deadline and proc.poll() is None:
            seen += os.read(proc.stderr.fileno(), 4096)
        assert marker in seen, seen.decode(errors="replace")
        time.sleep(settle_s)
        t = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
        took = time.monotonic() - t
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, out.decode(errors="replace"), (seen + err).decode(errors="replace"), took
