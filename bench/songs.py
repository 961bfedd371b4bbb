"""The benchmark's songs: real recordings (TRIOS), synthetic performances of music21 scores and
band songs (Slakh: pop / rock arrangements rendered with sample libraries, drums included).

Every song has a mixture, each part's true audio (the sum is the mixture), the MIDI given to
the tool (de-aligned, or the plain score at a constant tempo) and the true aligned MIDI with
the same notes (the alignment's ground truth). Files live in ``bench/cache/`` (git-ignored),
keyed by a hash of everything that makes them, so a rerun reuses them.

Real songs are read from ``../shared/data/trios`` beside the repository (or $BESPOKE_TRIOS);
they are licensed CC BY-NC-SA and are never copied into the repository. Band songs are read from
``../shared/data/slakh`` (or $BESPOKE_SLAKH): two 60-s Slakh2100-redux excerpts (CC BY 4.0), their
drums rendered with the AVL Drumkits "Red Zeppelin" kit; never copied either.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .perform import MUSESCORE_SF, PERFORM_VERSION, Style, load_score, perform, render_parts, spec_key

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "bench" / "cache"
SONGS_VERSION = "songs-2"
SR = 44100


def trios_root() -> Path:
    env = os.environ.get("BESPOKE_TRIOS")
    return Path(env) if env else REPO.parent / "shared" / "data" / "trios"


def slakh_root() -> Path:
    env = os.environ.get("BESPOKE_SLAKH")
    return Path(env) if env else REPO.parent / "shared" / "data" / "slakh"


@dataclass
class Song:
    """One benchmark song. Part lists are in the MIDI's part order."""

    name: str
    category: str                 # "real", "synthetic" or "band"
    mix: Path                     # the mixture (mono)
    parts: List[Path]             # each part's true audio
    score: Path                   # the MIDI the tool gets (not aligned)
    truth: Path                   # the true aligned MIDI (same notes)
    part_names: List[str]
    programs: List[int]
    targets: List[int]            # the parts evaluated
    true_align: List[int]         # targets where bespoke also runs with the true alignment
    duration: float
    sr: int
    source: str
    drums: List[bool] = field(default_factory=list)   # per part: a drum part (GM channel 10)

    def instrument(self, idx: int):
        """Part ``idx``'s instrument: its GM program, or "drums"."""
        return "drums" if (self.drums and self.drums[idx]) else self.programs[idx]

    def same_instrument(self, idx: int) -> bool:
        """Does another part play the same instrument (GM program; drums: another drum part) as part ``idx``?"""
        return any(self.instrument(i) == self.instrument(idx) for i in range(len(self.programs)) if i != idx)

    def label(self, idx: int) -> str:
        return f"{self.part_names[idx]} (#{idx})"


# --------------------------------------------------------------------------- real: TRIOS

@dataclass
class RealSpec:
    name: str
    folder: str
    parts: List[Tuple[str, int]]      # (file stem, real GM program)
    true_align: List[int]
    warp_seed: int
    source: str


REAL = [
    RealSpec("brahms", "brahms", [("violin", 40), ("horn", 60), ("piano", 0)], [0], 11,
             "TRIOS: Brahms, Horn Trio op. 40, excerpt (real recording, parts recorded alone)"),
    RealSpec("lussier", "lussier", [("trumpet", 56), ("bassoon", 70), ("piano", 0)], [0], 12,
             "TRIOS: Lussier, Bacchanale, excerpt (real recording, parts recorded alone)"),
]


def _real_song(spec: RealSpec) -> Optional[Song]:
    import pretty_midi
    import soundfile as sf

    from bespoke import midi as midimod
    from bespoke.evaluate import random_warp

    folder = trios_root() / spec.folder
    if not (folder / "mix.wav").is_file():
        return None
    truth = pretty_midi.PrettyMIDI(resolution=960, initial_tempo=120.0)
    for stem, prog in spec.parts:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pm = pretty_midi.PrettyMIDI(str(folder / f"{stem}.mid"))
        inst = pretty_midi.Instrument(program=prog, name=stem)
        for src in pm.instruments:
            inst.notes += [n for n in src.notes if n.end > n.start]
        inst.notes.sort(key=lambda n: (n.start, n.pitch))
        truth.instruments.append(inst)
    info = sf.info(str(folder / "mix.wav"))
    duration = info.frames / info.samplerate
    first = min(n.start for inst in truth.instruments for n in inst.notes)
    tm = random_warp(duration, np.random.default_rng(spec.warp_seed), first_onset=first)
    score = midimod.warp(truth, tm)
    out = CACHE / f"real-{spec.name}-{SONGS_VERSION}-{spec_key(spec.parts, spec.warp_seed)}"
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "score.mid").exists():
        truth.write(str(out / "truth.mid.tmp"))
        score.write(str(out / "score.mid.tmp"))
        os.replace(out / "truth.mid.tmp", out / "truth.mid")
        os.replace(out / "score.mid.tmp", out / "score.mid")
    return Song(name=spec.name, category="real", mix=folder / "mix.wav",
                parts=[folder / f"{s}.wav" for s, _ in spec.parts], score=out / "score.mid",
                truth=out / "truth.mid", part_names=[s for s, _ in spec.parts],
                programs=[p for _, p in spec.parts], targets=list(range(len(spec.parts))),
                true_align=list(spec.true_align), duration=duration, sr=info.samplerate,
                source=spec.source + f"; MIDI de-aligned by a random +-20 % tempo warp (seed {spec.warp_seed})")


# --------------------------------------------------------------------------- synthetic

@dataclass
class SynthSpec:
    name: str
    corpus: str                   # music21 corpus path
    programs: List[int]
    names: List[str]
    style: Style
    targets: List[int]
    true_align: List[int] = field(default_factory=list)
    gains_db: Optional[List[float]] = None
    max_quarters: Optional[float] = None
    source: str = ""


QUARTET = [40, 40, 41, 42]
QNAMES = ["violin I", "violin II", "viola", "cello"]

SYNTH = [
    SynthSpec("chorale-mixed", "bach/bwv153.1", [40, 73, 71, 42], ["violin", "flute", "clarinet", "cello"],
              Style(bpm=72, seed=21), targets=[2], true_align=[2],
              source="Bach, chorale BWV 153.1: violin, flute, clarinet, cello"),
    SynthSpec("chorale-winds", "bach/bwv269", [68, 71, 60, 70], ["oboe", "clarinet", "horn", "bassoon"],
              Style(bpm=88, seed=22), targets=[0],
              source="Bach, chorale BWV 269: oboe, clarinet, horn, bassoon"),
    SynthSpec("chorale-clarinets", "bach/bwv347", [71, 71, 41, 42], ["clarinet 1", "clarinet 2", "viola", "cello"],
              Style(bpm=80, seed=23), targets=[1],
              source="Bach, chorale BWV 347: two clarinets, viola, cello"),
    SynthSpec("haydn-op74-1-iii", "haydn/opus74no1/movement3", QUARTET, QNAMES,
              Style(bpm=150, seed=24, knot_quarters=6.0), targets=[0, 1], true_align=[1],
              source="Haydn, string quartet op. 74 no. 1, iii (Menuetto), repeats not taken"),
    SynthSpec("mozart-k80-iii", "mozart/k80/movement3", QUARTET, QNAMES,
              Style(bpm=120, seed=25, knot_quarters=6.0), targets=[2],
              source="Mozart, string quartet K. 80, iii (Menuetto), repeats not taken"),
    SynthSpec("mozart-k155-i", "mozart/k155/movement1", QUARTET, QNAMES,
              Style(bpm=126, seed=26, knot_quarters=8.0), targets=[3],
              source="Mozart, string quartet K. 155, i (Allegro), repeats not taken; the long song"),
]

_renderer = {}


def _musescore_renderer(sr: int):
    """One fluidsynth instance with MuseScore_General for the whole session (loading the .sf3
    takes seconds)."""
    from bespoke.synth import Renderer

    if sr not in _renderer:
        if not MUSESCORE_SF.is_file():
            raise SystemExit(f"{MUSESCORE_SF}: missing (Debian: apt-get install musescore-general-soundfont)")
        _renderer[sr] = Renderer(sr=sr, soundfont=MUSESCORE_SF, reverb=True)
    return _renderer[sr]


def make_synthetic(spec: SynthSpec, folder: Path, sr: int = SR, subtype: str = "PCM_24", fmt: str = "FLAC",
                   log=print) -> None:
    """Perform and render ``spec`` into ``folder``: mix.flac, part<i>.flac, score.mid, truth.mid,
    meta.json. Files appear atomically (written to a temporary folder, then renamed)."""
    import shutil

    import soundfile as sf

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    parts = load_score(spec.corpus, spec.programs, spec.names, spec.max_quarters)
    perf, plain = perform(parts, spec.style)
    ys, mix = render_parts(perf, sr=sr, gains_db=spec.gains_db, seed=spec.style.seed,
                           renderer=_musescore_renderer(sr))
    ext = ".flac" if fmt == "FLAC" else ".wav"
    for i, y in enumerate(ys):
        sf.write(str(tmp / f"part{i}{ext}"), y, sr, subtype=subtype, format=fmt)
    sf.write(str(tmp / f"mix{ext}"), mix, sr, subtype=subtype, format=fmt)
    perf.write(str(tmp / "truth.mid"))
    plain.write(str(tmp / "score.mid"))
    meta = {"duration": len(mix) / sr, "sr": sr, "corpus": spec.corpus, "names": [p.name for p in parts],
            "programs": [p.program for p in parts], "n_notes": [len(p.notes) for p in parts]}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    log(f"rendered {spec.name}: {meta['duration']:.1f} s, {len(parts)} parts")


def _synth_song(spec: SynthSpec, log=print) -> Song:
    # only what changes the audio or the MIDIs (not the targets) goes into the key
    what = [spec.corpus, spec.programs, spec.names, spec.style, spec.gains_db, spec.max_quarters, SR]
    key = spec_key(what, PERFORM_VERSION, SONGS_VERSION, MUSESCORE_SF.resolve().name if MUSESCORE_SF.exists() else "")
    folder = CACHE / f"syn-{spec.name}-{key}"
    if not (folder / "meta.json").is_file():
        make_synthetic(spec, folder, log=log)
    meta = json.loads((folder / "meta.json").read_text())
    n = len(meta["programs"])
    return Song(name=spec.name, category="synthetic", mix=folder / "mix.flac",
                parts=[folder / f"part{i}.flac" for i in range(n)], score=folder / "score.mid",
                truth=folder / "truth.mid", part_names=list(meta["names"]), programs=list(meta["programs"]),
                targets=list(spec.targets), true_align=list(spec.true_align), duration=float(meta["duration"]),
                sr=int(meta["sr"]), source=spec.source + "; expressive performance rendered with MuseScore_General; "
                "the tool gets the plain score at a constant tempo")


# --------------------------------------------------------------------------- band: Slakh

@dataclass
class SlakhSpec:
    name: str
    folder: str
    targets: List[str]                # part stems ("S03"), in the order they are run
    true_align: List[str]
    warp_seed: int
    source: str


BAND = [
    SlakhSpec("track00001", "Track00001", ["S03", "S00", "S08", "S02", "S01"], ["S03"], 31,
              "Slakh2100-redux Track00001, 45-105 s (CC BY 4.0; Manilow et al., WASPAA 2019): a rock band "
              "rendered with sample libraries; S00 and S08 are two guitars on the same patch, S01 the drums "
              "(rendered with the AVL Drumkits \"Red Zeppelin\" kit)"),
    SlakhSpec("track01501", "Track01501", ["S07", "S06"], ["S07"], 32,
              "Slakh2100-redux Track01501, 45-105 s (CC BY 4.0; Manilow et al., WASPAA 2019): a pop arrangement "
              "rendered with sample libraries; drums (S03) rendered with the AVL Drumkits \"Red Zeppelin\" kit"),
]


def _stem(track_name: str) -> str:
    """ "S03 Electric Bass (finger)" -> "S03"."""
    return track_name.split()[0] if track_name.split() else track_name


def _slakh_song(spec: SlakhSpec) -> Optional[Song]:
    """A Slakh excerpt: the parts in score.mid's order, truth = score.mid (aligned), the tool's
    score de-aligned as the TRIOS songs are (random smooth tempo warp, fixed seed)."""
    import hashlib

    import pretty_midi
    import soundfile as sf

    from bespoke import midi as midimod
    from bespoke.evaluate import random_warp

    folder = slakh_root() / spec.folder
    if not (folder / "mix.flac").is_file() or not (folder / "score.mid").is_file():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        truth = pretty_midi.PrettyMIDI(str(folder / "score.mid"))
    truth.instruments = [inst for inst in truth.instruments if inst.notes]
    names = [inst.name.strip() for inst in truth.instruments]
    stems = [_stem(n) for n in names]
    info = sf.info(str(folder / "mix.flac"))
    duration = info.frames / info.samplerate
    first = min(n.start for inst in truth.instruments for n in inst.notes)
    tm = random_warp(duration, np.random.default_rng(spec.warp_seed), first_onset=first)
    score = midimod.warp(truth, tm)
    digest = hashlib.sha1((folder / "score.mid").read_bytes()).hexdigest()[:10]
    out = CACHE / f"band-{spec.name}-{SONGS_VERSION}-{spec_key(stems, spec.warp_seed, digest)}"
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "score.mid").exists():
        score.write(str(out / "score.mid.tmp"))
        os.replace(out / "score.mid.tmp", out / "score.mid")
    missing = [t for t in spec.targets + spec.true_align if t not in stems]
    if missing:
        raise SystemExit(f"{spec.name}: no part {', '.join(missing)} in {folder / 'score.mid'}")
    return Song(name=spec.name, category="band", mix=folder / "mix.flac",
                parts=[folder / f"{st}.flac" for st in stems], score=out / "score.mid",
                truth=folder / "score.mid", part_names=names,
                programs=[int(inst.program) for inst in truth.instruments],
                targets=[stems.index(t) for t in spec.targets],
                true_align=[stems.index(t) for t in spec.true_align], duration=duration, sr=info.samplerate,
                source=spec.source + f"; MIDI de-aligned by a random +-20 % tempo warp (seed {spec.warp_seed})",
                drums=[bool(inst.is_drum) for inst in truth.instruments])


# --------------------------------------------------------------------------- selection

ALL = [s.name for s in REAL] + [s.name for s in SYNTH] + [s.name for s in BAND]
QUICK = ["lussier:trumpet", "chorale-mixed:clarinet"]


def parse_selection(spec: Optional[str], quick: bool = False) -> List[Tuple[str, Optional[List[str]]]]:
    """``"brahms,lussier:trumpet+piano,haydn-op74-1-iii:1"`` -> [(song, targets or None)].
    Targets are part names (band parts also by their stem, "S03") or indices, joined by '+'."""
    items = QUICK if (quick and not spec) else (spec.split(",") if spec else ALL)
    out = []
    for it in items:
        it = it.strip()
        if not it:
            continue
        name, _, tg = it.partition(":")
        if name not in ALL:
            raise SystemExit(f"unknown song {name!r}; choose from {', '.join(ALL)}")
        out.append((name, [t for t in tg.split("+") if t] if tg else None))
    return out


def load_song(name: str, targets: Optional[Sequence[str]] = None, log=print) -> Optional[Song]:
    """The song ``name`` (rendered on first use), with ``targets`` (names or indices) replacing
    its default targets. None (with a note) when the real data are absent."""
    song = None
    # songs read from ../shared: (specs, loader, data root, its name, its variable)
    shared = ((REAL, _real_song, trios_root, "TRIOS", "trios"), (BAND, _slakh_song, slakh_root, "Slakh", "slakh"))
    for specs, loader, root, what, folder in shared:
        for spec in specs:
            if spec.name == name:
                song = loader(spec)
                if song is None:
                    log(f"skipping {name}: {what} data not found at {root() / spec.folder} "
                        f"(put shared/data/{folder} beside the repository or set BESPOKE_{folder.upper()})")
                    return None
    for spec in SYNTH:
        if spec.name == name:
            song = _synth_song(spec, log=log)
    if song is None:
        raise SystemExit(f"unknown song {name!r}")
    if targets:
        idx = []
        for t in targets:
            if t.isdigit():
                idx.append(int(t))
            elif t in song.part_names:
                idx.append(song.part_names.index(t))
            elif [_stem(n).lower() for n in song.part_names].count(t.lower()) == 1:  # "S03" for a band part
                idx.append([_stem(n).lower() for n in song.part_names].index(t.lower()))
            else:
                raise SystemExit(f"{name}: no part {t!r} (parts: {', '.join(song.part_names)})")
        song.true_align = [i for i in idx if i in song.true_align] or idx[:1]
        song.targets = idx
    return song


def load_parts(song: Song) -> Tuple[np.ndarray, List[np.ndarray], int]:
    """(mix, parts, sr): mono float64 ``(n_samples,)`` arrays cut to a common length."""
    import soundfile as sf

    mix, sr = sf.read(str(song.mix), dtype="float64", always_2d=True)
    parts = [sf.read(str(p), dtype="float64", always_2d=True)[0].mean(axis=1) for p in song.parts]
    mix = mix.mean(axis=1)
    n = min(len(mix), *(len(p) for p in parts))
    return mix[:n], [p[:n] for p in parts], sr
