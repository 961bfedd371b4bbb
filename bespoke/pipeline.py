"""Where the steps meet: audio + MIDI -> align -> aligned MIDI -> synth -> augment -> train ->
separate -> stem. Each stage takes and returns plain values; ``run`` chains them and times them.
"""
from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from . import midi as midimod
from .audio import Audio, resample
from .config import Settings
from .errors import AlignmentError, InputError

log = logging.getLogger("bespoke")


class Progress:
    """Progress reporting for the stages: tqdm bars on stderr, or nothing when quiet.

    ``with progress.stage("train", total=1.0) as update: update(fraction)``.
    """

    def __init__(self, enabled: bool = True):
        self.enabled = enabled

    @contextlib.contextmanager
    def stage(self, name: str, total: float = 1.0, unit: str = ""):
        if not self.enabled:
            yield lambda value, **kw: None
            return
        from tqdm import tqdm

        bar = tqdm(total=total, desc=f"{name:<9}", unit=unit, leave=True, dynamic_ncols=True,
                   bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}")
        state = {"v": 0.0}

        def update(value: float, **postfix):
            value = min(value, total)
            if value > state["v"]:
                bar.update(value - state["v"])
                state["v"] = value
            if postfix:
                bar.set_postfix(postfix, refresh=False)

        try:
            yield update
            update(total)
        finally:
            bar.close()


@dataclass
class Result:
    """What a separation hands back. Audio arrays are ``(n_channels, n_samples)`` at ``sr``."""

    stem: np.ndarray
    residual: np.ndarray
    sr: int
    aligned_midi: object                     # pretty_midi.PrettyMIDI, every part, audio time
    target_index: int
    alignment: Optional[object] = None       # align.Alignment
    train: Optional[object] = None           # train.TrainResult
    timings: Dict[str, float] = field(default_factory=dict)
    settings: Optional[Settings] = None
    model: Optional[object] = None
    masks: Optional[Dict[str, np.ndarray]] = None  # with keep_model: "net" (on settings.grid) and "nmf" (on pipeline.nmf_setup's grid), each (n_log, n_frames)
    warnings: List[str] = field(default_factory=list)
    input_subtype: Optional[str] = None

    def save(self, path, subtype=None, fmt=None) -> dict:
        from .audio import save_audio

        return save_audio(path, self.stem, self.sr, subtype=subtype, fmt=fmt, like=self.input_subtype)

    def save_residual(self, path, subtype=None, fmt=None) -> dict:
        from .audio import save_audio

        return save_audio(path, self.residual, self.sr, subtype=subtype, fmt=fmt, like=self.input_subtype)

    def save_aligned_midi(self, path) -> None:
        midimod.save_midi(self.aligned_midi, path)


# --------------------------------------------------------------------------- stages

GM_AVOID = {45, 46, 47, 55, 112, 113, 114, 115, 116, 117, 118, 119}  # plucked/percussive oddities


def timbre_programs(program: int, n: int) -> List[int]:
    """``program`` and up to ``n - 1`` neighbours from its GM family (8 programs a family),
    nearest first: other timbres of the same kind of instrument, for training variety."""
    fam = (program // 8) * 8
    others = sorted((p for p in range(fam, fam + 8) if p != program and p not in GM_AVOID),
                    key=lambda p: (abs(p - program), p))
    return [program] + others[: max(n - 1, 0)]


def mono_at(audio: Audio, sr: int) -> np.ndarray:
    """The mixture as mono float32 ``(n_samples,)`` at ``sr``."""
    return resample(audio.mono(), audio.sr, sr)


def stage_align(mix: np.ndarray, sr: int, pm, target_index: int, settings: Settings, tuning: float):
    """Align every part of ``pm`` to ``mix`` (mono at ``sr``): the whole score places the target.
    Returns (aligned_pm, Alignment).

    The alignment is symbolic (align.align_pm: are the score's notes present in the recording?),
    so no soundfont is involved. The programs (the target's from --program) only set how early
    note-ons go before the heard onsets (the instruments' attack, settings.align.compensate_attack)."""
    from .align import align_pm
    from .audio import active_span

    midimod.check_duration(pm, active_span(mix, sr), settings.align.max_duration_ratio)
    programs = {target_index: settings.program} if settings.program is not None else {}
    al = align_pm(mix, sr, pm, tuning_cents=tuning, keep_cost=settings.align.keep_cost,
                  params=settings.align.params(), compensate_attack=settings.align.compensate_attack,
                  programs=programs)
    return midimod.warp(pm, al.time_map), al


def render_targets(target_inst, programs: List[int], n_samples: int, sr: int, soundfonts: List,
                   n_renders: int, rng: np.random.Generator, vary: bool = True, tuning: float = 0.0) -> List:
    """Renderings of the aligned target on the mix's timeline, each ``(n_samples,)``: cycling through
    programs and soundfonts, each (but the first) a varied performance (augment.vary_performance),
    detuned to the recording's tuning. Returns data.Source objects."""
    from .audio import fit_length
    from .augment import vary_performance
    from .data import Source
    from .synth import Renderer

    renderers = [Renderer(sr=sr, soundfont=sf) for sf in soundfonts]
    outs = []
    try:
        for k in range(max(n_renders, 1)):
            prog = programs[k % len(programs)]
            r = renderers[(k // len(programs)) % len(renderers)]
            inst = target_inst
            if vary and k > 0:
                inst = vary_performance(target_inst, rng, detune_cents=tuning + rng.uniform(-8, 8))
            elif abs(tuning) > 0.5:
                inst = vary_performance(target_inst, rng, p_hold=0, p_short=0, vel_std=0, p_vibrato=0,
                                        detune_cents=tuning)
            y = r.render([inst], duration=n_samples / sr, program=prog)
            if np.max(np.abs(y)) > 1e-6:
                outs.append(Source(fit_length(y, n_samples), name=f"synth p{prog} {r.soundfont.name}"))
    finally:
        for r in renderers:
            r.close()
    return outs


def training_soundfonts(main, extra: int) -> List:
    """The main soundfont first, then up to ``extra`` other installed ones for timbre variety."""
    from .synth import resolve_soundfont, soundfont_candidates

    first = resolve_soundfont(main)
    rest = [p for p in soundfont_candidates() if p.resolve() != first.resolve()]
    return [first] + rest[:max(extra, 0)]


def note_spectra(programs: Sequence[int], parts_notes: Sequence[np.ndarray], drums: Sequence[bool], grid,
                 soundfont=None) -> List[Optional[Dict[int, np.ndarray]]]:
    """What one note of each part's instrument looks like, for the NMF's initial templates: for each
    part, {MIDI pitch: magnitude ``(grid.n_log,)`` of that pitch played by the part's GM program
    with the soundfont (velocity 90, held 1 s, averaged over 0.1-0.9 s)} for every pitch the part
    plays; None for drum parts and parts without notes. One rendering per program."""
    import pretty_midi

    from .data import log_magnitude
    from .synth import Renderer

    wanted: Dict[int, set] = {}
    for prog, notes, drum in zip(programs, parts_notes, drums):
        if len(notes) and not drum:
            wanted.setdefault(int(prog), set()).update(int(p) for p in np.round(notes[:, 2]))
    spectra: Dict[int, Dict[int, np.ndarray]] = {}
    period, length = 1.5, 1.0
    with Renderer(sr=grid.sr, soundfont=soundfont) as renderer:
        for prog, pitches in wanted.items():
            pitches = sorted(pitches)
            inst = pretty_midi.Instrument(program=prog)
            inst.notes = [pretty_midi.Note(90, p, k * period, k * period + length) for k, p in enumerate(pitches)]
            M = log_magnitude(renderer.render([inst], duration=len(pitches) * period + 0.5), grid)
            spectra[prog] = {}
            for k, p in enumerate(pitches):
                a, b = (int(round((k * period + t) * grid.frame_rate)) for t in (0.1, 0.9))
                spectra[prog][p] = M[:, a:b].mean(axis=1)
    return [spectra.get(int(prog)) if len(notes) and not drum else None
            for prog, notes, drum in zip(programs, parts_notes, drums)]


def nmf_setup(settings: Settings, n_parts: int):
    """The first pass's grid (the network's, with the NMF's own bins per octave) and settings,
    for a score of ``n_parts`` parts with notes: wide bands on a fine grid and several template
    shapes per sustained pitch for a full score, narrow bands on the network's grid, one shape and
    the single_* iterations and onset tolerance for a single part (see NMFSettings)."""
    import dataclasses

    cfg = settings.nmf
    if n_parts <= 1:
        bpo = cfg.single_bins_per_octave
        cfg = dataclasses.replace(cfg, partial_cents=float(cfg.single_partial_cents), shapes=cfg.single_shapes,
                                  n_iter=int(cfg.single_n_iter), tol_on=float(cfg.single_tol_on))
    else:
        bpo = cfg.bins_per_octave
    grid = dataclasses.replace(settings.grid, bins_per_octave=int(bpo or settings.grid.bins_per_octave))
    return grid, dataclasses.replace(cfg, shapes=tuple(cfg.shapes))


def stage_nmf(mix: np.ndarray, grid, parts_notes, target_index: int, tuning: float, cfg,
              seed: int = 0, percussive=None, timbres=None, tie=None, device=None):
    """Score-informed NMF of the mixture (mono ``(n_samples,)`` at grid.sr) under the aligned score
    (``percussive``: for each part, whether it is struck or plucked; ``timbres``: each part's
    rendered notes, see note_spectra; ``tie``: each part's label for shared templates; see
    nmf.score_nmf), on ``grid`` with NMFSettings ``cfg`` (see nmf_setup), on ``device`` (default
    the CPU).

    Returns (the target's NMF mask ``(grid.n_log, n_frames)``, the target as NMF hears it and
    the rest, both ``(n_samples,)``)."""
    import torch

    from .data import log_magnitude
    from .nmf import score_nmf
    from .separate import apply_mask

    V = torch.from_numpy(log_magnitude(mix, grid))
    res = score_nmf(V, parts_notes, grid, tuning, cfg, seed=seed, keep=[target_index],
                    percussive=percussive, timbres=timbres, tie=tie, device=device)
    mask = res.masks[0]
    est = apply_mask(mix[None], grid.sr, mask, grid)[0]
    return mask, est, (mix - est).astype(np.float32)


def ensemble_masks(net_mask: np.ndarray, grid, nmf_mask: np.ndarray, ngrid, settings: Settings,
                   one_part: bool = False) -> dict:
    """The stem's mask as separate.apply_masks arguments (``factors``, ``pool``, ``sharpness``):
    the network's mask ``(grid.n_log, n_frames)`` and the NMF's ``(ngrid.n_log, n_frames)`` pooled
    by settings.ensemble_pool with the network's weight settings.ensemble, or for a score of
    ``one_part`` by settings.ensemble_pool_one_part with weight settings.ensemble_one_part (see
    config.Settings), on the output's STFT bins (each mask keeps its own grid's detail). A weight
    of 1 or 0 gives one method's mask as it is."""
    weight = float(settings.ensemble_one_part if one_part else settings.ensemble)
    pool = settings.ensemble_pool_one_part if one_part else settings.ensemble_pool
    if weight >= 1.0:
        return dict(factors=[(net_mask, grid, 1.0)])
    if weight <= 0.0:
        return dict(factors=[(nmf_mask, ngrid, 1.0)])
    return dict(factors=[(np.clip(net_mask, 1e-6, 1.0), grid, weight),
                         (np.clip(nmf_mask, 1e-6, 1.0), ngrid, 1.0 - weight)],
                pool=pool, sharpness=float(settings.ensemble_sharpness))


class Excerpts:
    """Where a long song's training material comes from: ``spans`` ``(n, 2)`` sample ranges of
    the song, put end to end on a shorter timeline. The network only ever sees short crops, so
    a few minutes of the song (spread over all of it) train it as well as the whole, and the
    renderings and other training signals then cost memory and time for those minutes only.
    ``None`` spans: the whole song (nothing cut)."""

    def __init__(self, spans: Optional[np.ndarray], sr: int):
        self.spans, self.sr = spans, sr

    @classmethod
    def choose(cls, n_samples: int, sr: int, target_notes: np.ndarray, max_s: float, excerpt_s: float,
               rng: np.random.Generator) -> "Excerpts":
        """All of a song up to ``max_s`` seconds long; beyond, ``ceil(max_s / excerpt_s)``
        excerpts of ``excerpt_s``, one in each equal stretch of the song, centred on a random
        note onset of the target there when it has one (else anywhere in the stretch)."""
        if max_s <= 0 or n_samples <= max_s * sr:
            return cls(None, sr)
        n = int(np.ceil(max_s / excerpt_s))
        L = int(round(excerpt_s * sr))
        edges = np.linspace(0, n_samples, n + 1).astype(int)
        onsets = (target_notes[:, 0] * sr).astype(int) if len(target_notes) else np.zeros(0, int)
        spans = []
        for a, b in zip(edges[:-1], edges[1:]):
            inside = onsets[(onsets >= a) & (onsets < b)]
            c = int(rng.choice(inside)) if len(inside) else int(rng.integers(a, max(b, a + 1)))
            s0 = int(np.clip(c - L // 2, a, max(b - L, a)))
            spans.append((s0, min(s0 + L, b)))
        return cls(np.array(spans, dtype=np.int64), sr)

    @property
    def whole(self) -> bool:
        return self.spans is None

    def cut(self, x: np.ndarray) -> np.ndarray:
        """A signal ``(n_samples,)`` on the song's timeline -> the excerpts end to end."""
        if self.whole:
            return x
        return np.concatenate([x[a:b] for a, b in self.spans])

    def _pieces(self):
        off = 0
        for a, b in self.spans:
            yield a / self.sr, b / self.sr, off / self.sr
            off += b - a

    def notes(self, notes: np.ndarray) -> np.ndarray:
        """Notes ``(n, 4)`` (song seconds) -> the notes sounding in the excerpts, on their timeline
        (a note crossing an excerpt's edge is cut there)."""
        if self.whole or len(notes) == 0:
            return notes
        out = []
        for a, b, off in self._pieces():
            sel = notes[(notes[:, 1] > a) & (notes[:, 0] < b)].copy()
            sel[:, 0] = np.clip(sel[:, 0], a, b) - a + off
            sel[:, 1] = np.clip(sel[:, 1], a, b) - a + off
            out.append(sel)
        out = np.concatenate(out)
        return out[out[:, 1] > out[:, 0]]

    def instrument(self, inst):
        """A pretty_midi Instrument -> a copy on the excerpts' timeline (notes as in ``notes``;
        control changes and pitch bends inside the excerpts)."""
        if self.whole:
            return inst
        import pretty_midi

        new = pretty_midi.Instrument(program=inst.program, is_drum=inst.is_drum, name=inst.name)
        for a, b, off in self._pieces():
            for n in inst.notes:
                if n.end > a and n.start < b:
                    s_, e_ = min(max(n.start, a), b) - a + off, min(max(n.end, a), b) - a + off
                    if e_ > s_:
                        new.notes.append(pretty_midi.Note(n.velocity, n.pitch, s_, e_))
            new.control_changes += [pretty_midi.ControlChange(c.number, c.value, c.time - a + off)
                                    for c in inst.control_changes if a <= c.time < b]
            new.pitch_bends += [pretty_midi.PitchBend(p.pitch, p.time - a + off)
                                for p in inst.pitch_bends if a <= p.time < b]
        return new


def release_memory() -> None:
    """Collect garbage and return freed heap memory to the system (glibc's malloc_trim; a no-op
    elsewhere), so that a long song's later stages do not stack on the earlier ones' peak."""
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def run(audio: Audio, pm, target_index: int, settings: Settings, progress: Optional[Progress] = None,
        keep_model: bool = False, on_warning: Optional[Callable[[str], None]] = None) -> Result:
    """The whole pipeline on a loaded recording and MIDI. See api.separate for the arguments."""
    import torch

    from .data import Song, Source, TrainingSet
    from .model import MaskNet
    from .separate import apply_masks, predict_mask
    from .spectral import estimate_tuning
    from .synth import Renderer, resolve_soundfont
    from .train import fit, resolve_device

    for name in ("ensemble_pool", "ensemble_pool_one_part"):
        if getattr(settings, name) not in ("product", "logit"):
            raise ValueError(f"Settings.{name}: {getattr(settings, name)!r} is not product or logit")
    progress = progress or Progress(False)
    warnings_: List[str] = []

    def warn(msg):
        warnings_.append(msg)
        if on_warning:
            on_warning(msg)

    timings: Dict[str, float] = {}
    grid = settings.grid
    device = resolve_device(settings.device)
    seed = 0 if settings.seed is None else int(settings.seed)
    if settings.seed is not None:
        torch.manual_seed(seed)

    t = time.perf_counter()
    mix = mono_at(audio, grid.sr)
    tuning = estimate_tuning(mix, grid.sr)
    resolve_soundfont(settings.soundfont)  # a bad --soundfont fails now, before the long work
    timings["load"] = time.perf_counter() - t

    target_inst = pm.instruments[target_index]
    if target_inst.is_drum:
        warn("the target is a drum part: bespoke is tuned for pitched parts; expect a rough stem")
    alignment = None
    t = time.perf_counter()
    with progress.stage("align") as update:
        if settings.align.enabled:
            aligned, alignment = stage_align(mix, grid.sr, pm, target_index, settings, tuning)
            if settings.align.min_confidence > 0 and alignment.confidence < settings.align.min_confidence:
                raise AlignmentError(
                    f"alignment confidence {alignment.confidence:.2f} is below {settings.align.min_confidence:.2f}: "
                    "the MIDI may not belong to this recording (use --force to separate anyway)")
            if alignment.confidence < settings.align.warn_confidence:
                warn(f"low alignment confidence ({alignment.confidence:.2f}): check that the MIDI matches the recording")
        else:
            aligned = pm
        update(1.0)
    timings["align"] = time.perf_counter() - t

    target = aligned.instruments[target_index]
    others = [inst for i, inst in enumerate(aligned.instruments) if i != target_index]
    tnotes = midimod.notes_array(target)
    onotes = np.concatenate([midimod.notes_array(i) for i in others]) if others else np.zeros((0, 4))
    if tnotes[:, 0].min() > audio.duration:
        raise InputError("after alignment the target's notes all lie past the end of the recording")

    parts_notes = [midimod.notes_array(inst) for inst in aligned.instruments]
    t = time.perf_counter()
    with progress.stage("nmf") as update:
        # each part's GM program (--program overrides the target's), for the NMF and the renderings
        programs = [settings.program if (i == target_index and settings.program is not None) else inst.program
                    for i, inst in enumerate(aligned.instruments)]
        percussive = [midimod.is_percussive(p, inst.is_drum) for p, inst in zip(programs, aligned.instruments)]
        n_parts = sum(1 for n in parts_notes if len(n))
        one_part = n_parts <= 1
        ngrid, ncfg = nmf_setup(settings, n_parts)
        drums = [inst.is_drum for inst in aligned.instruments]
        timbres = note_spectra(programs, parts_notes, drums, ngrid, settings.soundfont) if ncfg.timbre_init else None
        # parts of one instrument share their templates (drum parts never)
        tie = [None if drum else int(p) for p, drum in zip(programs, drums)] if ncfg.tie else None
        nmf_mask, target_est, rest_est = stage_nmf(mix, ngrid, parts_notes, target_index, tuning, ncfg, seed,
                                                   percussive, timbres, tie, device)
    timings["nmf"] = time.perf_counter() - t

    t = time.perf_counter()
    tr = settings.train
    rng = np.random.default_rng(seed)
    # the training material: the whole song, or excerpts of a long one (memory and time stay bounded)
    exc = Excerpts.choose(len(mix), grid.sr, tnotes, tr.max_song_s, tr.excerpt_s, np.random.default_rng(seed + 7))
    train_mix = exc.cut(mix)
    train_tnotes, train_onotes = exc.notes(tnotes), exc.notes(onotes)
    target_est, rest_est = exc.cut(target_est), exc.cut(rest_est)
    with progress.stage("synth") as update:
        timbres = timbre_programs(int(programs[target_index]), tr.n_programs) if not target.is_drum else [0]
        sfs = training_soundfonts(settings.soundfont, tr.extra_soundfonts)
        targets = render_targets(exc.instrument(target), timbres, len(train_mix), grid.sr, sfs, tr.n_renders, rng,
                                 vary=tr.vary, tuning=tuning)
        if not targets:
            raise InputError("the target part renders to silence with this soundfont; try --soundfont or --program")
        for src in targets:
            src.weight = tr.synth_weight / len(targets)
        targets.append(Source(target_est, weight=tr.pseudo_weight, name="target as NMF hears it"))
        targets = [src for src in targets if src.weight > 0]
        update(0.5)
        backgrounds = [Source(rest_est, train_onotes, name="rest as NMF hears it")]
        if others:
            from .audio import fit_length

            with Renderer(sr=grid.sr, soundfont=settings.soundfont) as renderer:
                rendered = renderer.render([exc.instrument(i) for i in others], duration=len(train_mix) / grid.sr)
            backgrounds.append(Source(fit_length(rendered, len(train_mix)), train_onotes, name="other parts rendered"))
    del target_est, rest_est
    timings["synth"] = time.perf_counter() - t

    song = Song(mix=train_mix, sr=grid.sr, target_notes=train_tnotes, other_notes=train_onotes, tuning=tuning)
    data = TrainingSet(song, targets, backgrounds, grid, settings.recipe)
    model = MaskNet(channels=settings.model.channels, n_context=settings.model.n_context)

    t = time.perf_counter()
    total_steps = tr.total_steps(seeded=settings.seed is not None)
    phases = [1.0] if tr.self_train <= 0 else [tr.self_train, 1.0 - tr.self_train]
    results = []
    with progress.stage("train") as update:
        done = 0.0
        for k, share in enumerate(phases):
            if k == 1:  # self-training: the target and the rest as the ensemble now hears them
                mask = predict_mask(model, mix, grid, tnotes, onotes, tuning, device=device)
                est = apply_masks(mix[None], grid.sr, **ensemble_masks(mask, grid, nmf_mask, ngrid, settings, one_part))[0]
                data.targets[-1] = Source(exc.cut(est), weight=tr.pseudo_weight, name="target as the ensemble hears it")
                data.backgrounds[0] = Source(exc.cut(mix - est), train_onotes, name="rest as the ensemble hears it")
                del est, mask
            steps = None if total_steps is None else max(1, int(round(total_steps * share)))
            results.append(fit(model, data, budget=tr.budget * share, device=device, seed=seed + k, steps=steps,
                               batch_size=tr.batch_size, lr=tr.lr, precision=tr.precision, ema=tr.ema,
                               on_progress=lambda f, loss, d=done, s_=share: update(d + s_ * f, loss=f"{loss:.3f}")))
            done += share
    result = results[0]
    for r_ in results[1:]:
        result.steps += r_.steps
        result.seconds += r_.seconds
        result.losses += r_.losses
    # the training material is no longer needed: hand its memory (and the training's) back
    # before the whole-song inference
    del data, song, targets, backgrounds, train_mix
    release_memory()
    timings["train"] = time.perf_counter() - t

    t = time.perf_counter()
    with progress.stage("separate") as update:
        net_mask = predict_mask(model, mix, grid, tnotes, onotes, tuning, device=device,
                                on_progress=lambda f: update(0.5 * f))
        stem = apply_masks(audio.samples, audio.sr, **ensemble_masks(net_mask, grid, nmf_mask, ngrid, settings, one_part),
                           power=settings.mask_power, on_progress=lambda f: update(0.5 + 0.5 * f))
    masks = dict(net=net_mask, nmf=nmf_mask) if keep_model else None
    # free the song-long analysis arrays before the residual (a long song's peak is here)
    del net_mask, nmf_mask, mix
    release_memory()
    residual = np.subtract(audio.samples, stem, dtype=np.float32)
    timings["separate"] = time.perf_counter() - t
    return Result(stem=stem, residual=residual, sr=audio.sr, aligned_midi=aligned, target_index=target_index,
                  alignment=alignment, train=result, timings=timings, settings=settings,
                  model=model if keep_model else None, warnings=warnings_,
                  masks=masks, input_subtype=audio.subtype)
