"""Rendering MIDI with fluidsynth, and finding a soundfont.

Soundfont search order (first found wins): the ``soundfont`` argument, $BESPOKE_SOUNDFONT,
``*.sf2``/``*.sf3`` in the repository's ``soundfonts/`` folder, Debian's FluidR3_GM
(fluid-soundfont-gm), and pretty_midi's bundled TimGM6mb.sf2, which is always there.
Nothing is downloaded.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from .errors import DependencyError, InputError

REPO_SOUNDFONTS = Path(__file__).resolve().parent.parent / "soundfonts"
SYSTEM_SOUNDFONTS = [
    Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
]


def bundled_soundfont() -> Path:
    import pretty_midi

    return Path(pretty_midi.__file__).resolve().parent / "TimGM6mb.sf2"


def soundfont_candidates() -> List[Path]:
    """Every soundfont the default search would consider, in order (existing files only)."""
    out: List[Path] = []
    env = os.environ.get("BESPOKE_SOUNDFONT")
    if env:
        out.append(Path(env))
    if REPO_SOUNDFONTS.is_dir():
        out += sorted(p for p in REPO_SOUNDFONTS.iterdir() if p.suffix.lower() in (".sf2", ".sf3"))
    out += SYSTEM_SOUNDFONTS
    out.append(bundled_soundfont())
    seen, res = set(), []
    for p in out:
        if p.is_file() and p.resolve() not in seen:
            seen.add(p.resolve())
            res.append(p)
    return res


def resolve_soundfont(path: Optional[os.PathLike] = None) -> Path:
    """The soundfont to use: ``path`` if given (it must exist), else the first default found."""
    if path:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"{p}: soundfont not found")
        if p.suffix.lower() not in (".sf2", ".sf3"):
            raise InputError(f"{p}: not a soundfont (.sf2 or .sf3)")
        return p
    cands = soundfont_candidates()
    if not cands:
        raise DependencyError("no soundfont found: pass «soundfont FILE.sf2» or set BESPOKE_SOUNDFONT")
    return cands[0]


def _fluidsynth():
    try:
        import fluidsynth  # pyfluidsynth
    except (ImportError, OSError) as e:
        raise DependencyError(
            "libfluidsynth is not installed: run 'make install' or 'sudo apt-get install libfluidsynth3' "
            f"({e})") from e
    return fluidsynth


class Renderer:
    """A fluidsynth instance with one soundfont loaded, reused across renderings.

    >>> with Renderer(sr=22050) as r:
    ...     y = r.render(pm.instruments, duration=30.0)   # (n_samples,) float32
    """

    def __init__(self, sr: int = 22050, soundfont: Optional[os.PathLike] = None, gain: float = 0.3,
                 reverb: bool = False, chorus: bool = False):
        fluidsynth = _fluidsynth()
        self.sr = int(sr)
        self.soundfont = resolve_soundfont(soundfont)
        self._fs = fluidsynth.Synth(gain=gain, samplerate=float(sr), **{
            "synth.reverb.active": 1 if reverb else 0, "synth.chorus.active": 1 if chorus else 0})
        self._pulled = 0  # fluidsynth works in 64-sample blocks: keep renders block-aligned
        self._sfid = self._fs.sfload(str(self.soundfont))
        if self._sfid < 0:
            self.close()
            raise InputError(f"{self.soundfont}: fluidsynth could not load this soundfont")

    def close(self):
        if getattr(self, "_fs", None) is not None:
            self._fs.delete()
            self._fs = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def render(self, instruments: Sequence, duration: Optional[float] = None,
               program: Optional[int] = None, tail: float = 1.0) -> np.ndarray:
        """Render pretty_midi Instruments together; returns float32 ``(n_samples,)``.

        ``program`` overrides every melodic part's program. ``duration``: the output length in
        seconds (default: last note end + ``tail``).
        """
        fs = self._fs
        events = []  # (time, order, kind, channel, a, b)
        chan_of = {}
        melodic_chans = [c for c in range(16) if c != 9]
        for k, inst in enumerate(instruments):
            if inst.is_drum:
                ch = 9
            else:
                ch = melodic_chans[len([1 for v in chan_of.values() if v != 9]) % len(melodic_chans)]
            chan_of[k] = ch
            prog = int(program) if (program is not None and not inst.is_drum) else int(inst.program)
            bank = 128 if inst.is_drum else 0
            if fs.program_select(ch, self._sfid, bank, prog) < 0 and not inst.is_drum:
                fs.program_select(ch, self._sfid, 0, 0)
            for n in inst.notes:
                events.append((n.start, 1, "on", ch, n.pitch, n.velocity))
                events.append((n.end, 0, "off", ch, n.pitch, 0))
            for b in inst.pitch_bends:
                events.append((b.time, 0, "bend", ch, b.pitch, 0))
            for c in inst.control_changes:
                events.append((c.time, 0, "cc", ch, c.number, c.value))
        events.sort(key=lambda e: (e[0], e[1]))
        last = max((e[0] for e in events), default=0.0)
        total = int(round(((duration if duration is not None else last + tail)) * self.sr))
        out = np.zeros(total, dtype=np.float32)
        pos = 0
        for t, _, kind, ch, a, b in events:
            n = int(round(t * self.sr)) - pos
            if n > 0 and pos < total:
                n = min(n, total - pos)
                out[pos:pos + n] = self._pull(n)
                pos += n
            if kind == "on":
                fs.noteon(ch, int(a), int(b))
            elif kind == "off":
                fs.noteoff(ch, int(a))
            elif kind == "bend":
                fs.pitch_bend(ch, int(a))
            else:
                fs.cc(ch, int(a), int(b))
        if pos < total:
            out[pos:] = self._pull(total - pos)
        # leave the synth silent for the next call
        for ch in set(chan_of.values()):
            fs.all_sounds_off(ch)
            fs.pitch_bend(ch, 0)
        fs.system_reset()
        self._drain()
        return out

    def _pull(self, n: int) -> np.ndarray:
        out = np.empty(n, dtype=np.float32)
        done = 0
        block = 1 << 16
        while done < n:
            k = min(block, n - done)
            s = self._fs.get_samples(k)  # interleaved stereo int16
            out[done:done + k] = s[0::2].astype(np.float32) / 32768.0
            done += k
        self._pulled += n
        return out

    def _drain(self):
        """Pull silence so the next render starts on a fresh 64-sample block, with no tails:
        the same input then always gives the same output."""
        n = int(0.05 * self.sr)
        n += (-(self._pulled + n)) % 64
        self._pull(n)


def render(instruments: Sequence, sr: int, soundfont: Optional[os.PathLike] = None,
           duration: Optional[float] = None, program: Optional[int] = None) -> np.ndarray:
    """One-shot rendering; see Renderer.render. Returns float32 ``(n_samples,)``."""
    with Renderer(sr=sr, soundfont=soundfont) as r:
        return r.render(instruments, duration=duration, program=program)


# --------------------------------------------------------------------------- training timbres

GM_AVOID = {45, 46, 47, 55, 112, 113, 114, 115, 116, 117, 118, 119}  # plucked/percussive oddities


def timbre_programs(program: int, n: int) -> List[int]:
    """``program`` and up to ``n - 1`` neighbours from its GM family (8 programs a family),
    nearest first: other timbres of the same kind of instrument, for training variety."""
    fam = (program // 8) * 8
    others = sorted((p for p in range(fam, fam + 8) if p != program and p not in GM_AVOID),
                    key=lambda p: (abs(p - program), p))
    return [program] + others[: max(n - 1, 0)]


def render_targets(target_inst, programs: List[int], n_samples: int, sr: int, soundfonts: List,
                   rng: np.random.Generator, settings, tuning: float = 0.0) -> List:
    """Renderings of the aligned target on the mix's timeline, each ``(n_samples,)``: cycling through
    programs and soundfonts, settings.n_renders of them (config.SynthSettings), each (but the first,
    or every one without settings.vary) a varied performance (augment.vary_performance), detuned
    to the recording's tuning. Returns data.Source objects."""
    import dataclasses

    from .audio import fit_length
    from .augment import vary_performance
    from .data import Source

    plain = dataclasses.replace(settings, vary_p_hold=0.0, vary_p_short=0.0, vary_velocity_std=0.0,
                                vary_p_vibrato=0.0)
    renderers = [Renderer(sr=sr, soundfont=sf) for sf in soundfonts]
    outs = []
    try:
        for k in range(max(settings.n_renders, 1)):
            prog = programs[k % len(programs)]
            r = renderers[(k // len(programs)) % len(renderers)]
            inst = target_inst
            if settings.vary and k > 0:
                spread = settings.detune_spread_cents
                inst = vary_performance(target_inst, rng, settings, detune_cents=tuning + rng.uniform(-spread, spread))
            elif abs(tuning) > 0.5:  # the first rendering as written, only tuned to the recording
                inst = vary_performance(target_inst, rng, plain, detune_cents=tuning)
            y = r.render([inst], duration=n_samples / sr, program=prog)
            if np.max(np.abs(y)) > 1e-6:
                outs.append(Source(fit_length(y, n_samples), name=f"synth p{prog} {r.soundfont.name}"))
    finally:
        for r in renderers:
            r.close()
    return outs


def training_soundfonts(main, extra: int) -> List:
    """The main soundfont first, then up to ``extra`` other installed ones for timbre variety."""
    first = resolve_soundfont(main)
    rest = [p for p in soundfont_candidates() if p.resolve() != first.resolve()]
    return [first] + rest[:max(extra, 0)]
