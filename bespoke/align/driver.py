"""The aligner's driver: align_notes (a score's notes against a recording, coarse to fine, then the
note-level tempo search, and the confidence) and align_pm (a whole PrettyMIDI)."""
from __future__ import annotations

import math
import time
from typing import List, NamedTuple, Optional, Tuple

import numpy as np

from ..config.align import AlignSettings
from ..errors import AlignmentError
from .attack import attack_lag
from .cost import CostModel
from .dtw import band_from_path, banded_dtw, coarse_dtw
from .features import N_PITCH, PITCH_LO, MixFeatures, mixture_features
from .score import ScoreFeatures
from .tempo import note_dp_band
from .timemap import Alignment, TimeMap, path_to_timemap


class _Frame(NamedTuple):
    """What every level shares: the features, the score's first note (s) and span (s), and the
    settings."""

    feats: MixFeatures
    s0: float
    span: float
    settings: AlignSettings


def align_notes(mix: np.ndarray, sr: int, notes: np.ndarray, tuning_cents: float = 0.0,
                settings: Optional[AlignSettings] = None, features: Optional[MixFeatures] = None,
                onset_lag: float = 0.0) -> Alignment:
    """Align a score's notes to a recording (see _align_once), and where the MIDI does not seem to
    fit (confidence below settings.tempo_rescue_below), try it again at each of
    settings.tempo_rescue times its tempo (a MIDI written at half or double the tempo played) and
    keep the best."""
    settings = settings or AlignSettings()
    notes = _checked_notes(notes)
    feats = features if features is not None else mixture_features(mix, sr, tuning_cents, settings)
    best = _align_once(mix, sr, notes, tuning_cents, settings, feats, onset_lag)
    if best.confidence >= settings.tempo_rescue_below:
        return best
    for scale in settings.tempo_rescue:
        scaled = notes.copy()
        scaled[:, :2] *= scale
        al = _align_once(mix, sr, scaled, tuning_cents, settings, feats, onset_lag)
        if al.confidence > best.confidence:
            best = _rescaled(al, scale)
    return best


def _rescaled(al: Alignment, scale: float) -> Alignment:
    """An Alignment of the score with its times multiplied by ``scale``, said of the score as given."""
    tm = al.time_map
    path = al.path.copy()
    path[:, 0] /= scale
    coarse = None if al.coarse_path is None else al.coarse_path * np.array([1.0 / scale, 1.0])
    ext = None if al.cost_extent is None else (al.cost_extent[0] / scale, al.cost_extent[1] / scale,
                                               al.cost_extent[2], al.cost_extent[3])
    info = dict(al.info, tempo_scale=scale)
    return Alignment(time_map=TimeMap(tm.score_times / scale, tm.audio_times), confidence=al.confidence, path=path,
                     frame_rate=al.frame_rate, cost=al.cost, cost_extent=ext, coarse_path=coarse, info=info)


def _align_once(mix: np.ndarray, sr: int, notes: np.ndarray, tuning_cents: float = 0.0,
                settings: Optional[AlignSettings] = None, features: Optional[MixFeatures] = None,
                onset_lag: float = 0.0) -> Alignment:
    """Align a score's notes to a recording.

    mix: mono ``(n_samples,)`` at ``sr``. notes: ``(n_notes, 4)`` start, end, pitch, velocity in
    score seconds (every part that should guide the alignment; see midi.notes_array).
    settings: the aligner's knobs; ``settings.keep_cost`` keeps the global cost matrix (for plots).
    onset_lag: seconds the instruments take to speak after their note-on (see attack_lag); the
    time map places note-ons that much before the onsets heard in the recording.
    Returns an Alignment whose time map takes score seconds to audio seconds.
    """
    settings = settings or AlignSettings()
    notes = _checked_notes(notes)
    t_start = time.perf_counter()
    feats = features if features is not None else mixture_features(mix, sr, tuning_cents, settings)
    t_feat = time.perf_counter() - t_start
    score = ScoreFeatures(notes, settings)
    fr = _Frame(feats, score.t0, max(score.t1 - score.t0, 1.0 / feats.rate), settings)
    factors = _level_factors(fr)
    r, c, k, dist, coarse, (confidence, null, evidence, nulls) = _global_level(score, factors[0], fr)
    transpose = _transposition(notes, dist, nulls, evidence, factors[0], k, fr) if settings.transpose else 0
    if transpose:
        import dataclasses

        moved = _align_once(mix, sr, _shifted(notes, transpose), tuning_cents,
                            dataclasses.replace(settings, transpose=False), feats, onset_lag)
        moved.info["transpose"] = transpose
        moved.info["unmoved_confidence"] = confidence
        moved.info["total_s"] = time.perf_counter() - t_start
        return moved
    coarse_path = np.stack([fr.s0 + (r + 0.5) * coarse.s_period, (c + 0.5) * coarse.a_period], axis=1)
    levels = [{"factor": factors[0], "rows": coarse.n_rows, "cols": coarse.n_cols, "cells": int(coarse.largest)}]
    r, c, finest, finer = _finer_levels(r, c, coarse, factors[1:], score, k, fr)
    levels += finer
    r, c, tempo_prior = _note_level_pass(r, c, finest, score, k, settings)
    tm = path_to_timemap(r, c, fr.s0, finest.s_period, finest.a_period, shift=-onset_lag)
    path = np.stack([fr.s0 + (r + 0.5) * finest.s_period, c * finest.a_period], axis=1)
    info = {"levels": levels, "tempo_ratio": k, "path_cost": dist, "null_cost": null, "evidence": evidence,
            "feature_s": t_feat, "total_s": time.perf_counter() - t_start, "tuning_cents": feats.tuning_cents,
            "onset_lag": onset_lag, "tempo_prior": tempo_prior, "transpose": 0, "tempo_scale": 1.0}
    return Alignment(time_map=tm, confidence=confidence, path=path, frame_rate=feats.rate / finest.factor,
                     cost=coarse.last_full.astype(np.float32) if settings.keep_cost else None,
                     cost_extent=(fr.s0, fr.s0 + coarse.n_rows * coarse.s_period, 0.0,
                                  coarse.n_cols * coarse.a_period),
                     coarse_path=coarse_path, info=info)


def _checked_notes(notes: np.ndarray) -> np.ndarray:
    """The notes ``(n, >= 3)`` as float64 without those of no length; AlignmentError if none."""
    notes = np.asarray(notes, np.float64)
    if notes.ndim != 2 or notes.shape[1] < 3:
        raise AlignmentError("the MIDI holds no notes to align")
    notes = notes[notes[:, 1] > notes[:, 0]]
    if len(notes) == 0:
        raise AlignmentError("the MIDI holds no notes to align")
    return notes


def _level_factors(fr: _Frame) -> List[int]:
    """The pooling factor of each level, coarsest first: the global DTW's (at most ``coarse_rate``
    frames per second and ``coarse_cells`` cells), then ``level_ratio`` times finer down to 1."""
    settings, rate = fr.settings, fr.feats.rate
    f0 = max(int(math.ceil(rate / settings.coarse_rate)),
             int(math.ceil(math.sqrt(fr.span * rate * fr.feats.n / settings.coarse_cells))), 1)
    factors = [f0]
    while factors[-1] > 1:
        factors.append(max(1, factors[-1] // settings.level_ratio))
    return factors


def _level_model(score: ScoreFeatures, factor: int, k: float, fr: _Frame) -> CostModel:
    """The cost model of a level: audio pooled by ``factor``, the score at tempo ratio ``k``.

    (A score row spans k audio frames of score time although k is measured as audio seconds per
    score second: the inverse of the ratio. Stepping the score by 1 / k instead was tried
    (2026-11-29): right for a MIDI at half or double tempo, but it let a sparse part alone in a
    band (a string pad, a pan flute playing 9 s of a minute) be crammed into a stretch of the
    recording at the measured ratio, where this slope cannot (align_eval band single parts: 91 ->
    18 % and 50 -> 0 % of onsets within 50 ms). A MIDI far from the recording's tempo is aligned
    by _tempo_rescue instead.)"""
    s_period = factor * k / fr.feats.rate
    n_rows = max(int(math.ceil(fr.span / s_period)), 2)
    return CostModel(score, fr.feats, factor, fr.s0, s_period, n_rows, fr.settings)


def _coarse_dtw(model: CostModel, settings: AlignSettings) -> Tuple[np.ndarray, np.ndarray, float]:
    """The global DTW at the recording's tempo (the score's, and the nulls')."""
    return coarse_dtw(model, settings.skip_cost, settings.hv_weight_coarse,
                      settings.max_squeeze if settings.squeeze_coarse else 0)


def _global_level(score: ScoreFeatures, f0: int, fr: _Frame) -> Tuple[np.ndarray, np.ndarray, float, float, CostModel,
                                                                     Tuple[float, float, float, dict]]:
    """The global DTW: first at the score's own tempo, to learn the recording's average tempo
    ratio k, then again with the score at that tempo, preferring the diagonal. Where the evidence
    is weak (a quiet part alone in a band), the first search may cram the score into a stretch of
    the recording (skipping audio is cheaper than matching it to nothing): the ratio of the
    recording's length to the score's is then tried too, and the tempo whose path stands further
    above its nulls (the evidence of _confidence) kept. Returns the path (rows, cols), k, the
    path's cost, the level's CostModel and _confidence's figures at that k."""
    settings = fr.settings
    model = _level_model(score, f0, 1.0, fr)
    if model.n_cols < 2:
        raise AlignmentError("the recording is too short to align")
    r, c, _ = coarse_dtw(model, settings.skip_cost, 1.0)
    k_min, k_max = settings.tempo_ratio_range
    k_path = float(np.clip(((c[-1] - c[0] + 1) * model.a_period) / fr.span, k_min, k_max))
    k_length = float(np.clip(model.n_cols * model.a_period / (fr.s0 + fr.span), k_min, k_max))
    candidates = [k_path]
    if settings.tempo_from_length and abs(math.log(k_length / k_path)) > math.log(settings.tempo_from_length):
        candidates.append(k_length)
    best = None
    for k in candidates:
        model = _level_model(score, f0, k, fr)
        r, c, dist = _coarse_dtw(model, settings)
        conf = _confidence(score.notes, dist, f0, k, fr)
        if best is None or conf[2] > best[-1][2]:
            best = (r, c, k, dist, model, conf)
    return best


def _shifted(notes: np.ndarray, shift: int) -> np.ndarray:
    """``notes`` moved ``shift`` semitones, a note that would leave the analysed range (PITCH_LO ..
    PITCH_LO + N_PITCH - 1) moved an octave back into it."""
    moved = notes.copy()
    p = moved[:, 2] + shift
    p = np.where(p > PITCH_LO + N_PITCH - 1, p - 12, p)
    moved[:, 2] = np.where(p < PITCH_LO, p + 12, p)
    return moved


def _transposition(notes: np.ndarray, dist: float, nulls: dict, z: float, f0: int, k: float, fr: _Frame) -> int:
    """The semitones (-5 .. +6) the score must move to match the recording (0: as written). The
    shift whose global path costs least, if it costs less than the score as written (``dist``,
    whose evidence is ``z``; ``nulls``: {shift: cost} already known, the confidence's), is searched
    again from the start (its own tempo, its own nulls) and taken when its confidence is above
    settings.transpose_confidence and its evidence settings.transpose_margin above ``z``."""
    settings = fr.settings
    costs = {s: c for s, c in nulls.items() if 1 <= s <= 6}
    for s in range(-5, 0):
        costs[s] = _coarse_dtw(_level_model(ScoreFeatures(_shifted(notes, s), settings), f0, k, fr), settings)[2]
    best = min(costs, key=costs.get)
    if costs[best] >= dist:
        return 0
    conf, _null, z_best, _nulls = _global_level(ScoreFeatures(_shifted(notes, best), settings), f0, fr)[5]
    return int(best) if conf > settings.transpose_confidence and z_best > z + settings.transpose_margin else 0


def _confidence(notes: np.ndarray, dist: float, f0: int, k: float, fr: _Frame) -> Tuple[float, float, float, dict]:
    """The global search again with the score transposed by each of ``null_shifts`` semitones
    (music that is not in the recording, with the score's own rhythm and density): (confidence in
    [0, 1], the nulls' mean cost, the evidence z: how many of the nulls' standard deviations the
    path's cost lies below their mean). The confidence is the larger of two logistics: of z
    (conf_center, conf_scale), which holds for a quiet part in a dense band mix whose costs all
    sit near 1, and of the path's cost as a share below the tritone null's (share_center,
    share_scale), which holds for a chamber part whose nulls happen to spread wide. Last, each
    null's cost by its shift."""
    settings = fr.settings
    shifts = list(settings.null_shifts)
    nulls = []
    for shift in shifts:
        nulls.append(_coarse_dtw(_level_model(ScoreFeatures(_shifted(notes, shift), settings), f0, k, fr),
                                 settings)[2])
    null = float(np.mean(nulls)) if nulls else 1.0
    spread = float(np.std(nulls, ddof=1)) if len(nulls) > 2 else 0.05 * null
    z = (null - dist) / max(spread, 1e-4 * null, 1e-9)
    tritone = nulls[shifts.index(6)] if 6 in shifts else null
    share = (tritone - dist) / max(tritone, 1e-6)
    confidence = max(_logistic(z, settings.conf_center, settings.conf_scale),
                     _logistic(share, settings.share_center, settings.share_scale))
    return confidence, null, z, dict(zip(shifts, nulls))


def _logistic(x: float, center: float, scale: float) -> float:
    return float(1.0 / (1.0 + math.exp(-max(min((x - center) / scale, 50.0), -50.0))))


def _banded(model: CostModel, lo: np.ndarray, hi: np.ndarray, settings: AlignSettings) -> Tuple[np.ndarray, np.ndarray]:
    """banded_dtw in the band ``[lo, hi)`` with the settings' blocks and steps."""
    return banded_dtw(model, lo, hi, settings.skip_cost, max(int(settings.block_s / model.s_period), 8),
                      max(int(settings.overlap_s / model.s_period), 4), hv_weight=settings.hv_weight,
                      max_squeeze=settings.max_squeeze)


def _finer_levels(r: np.ndarray, c: np.ndarray, coarse: CostModel, factors: List[int], score: ScoreFeatures,
                  k: float, fr: _Frame) -> Tuple[np.ndarray, np.ndarray, CostModel, List[dict]]:
    """The levels below the global one, each in a band around the previous level's path (rows,
    cols). Returns the finest path, its CostModel and each level's figures."""
    settings, rate = fr.settings, fr.feats.rate
    levels, prev = [], coarse
    for F in factors:
        model = _level_model(score, F, k, fr)
        ratio_r = prev.s_period / model.s_period
        ratio_c = prev.factor / F
        radius = int(math.ceil(max(settings.radius_frames * ratio_c, settings.min_radius_s * rate / F)))
        lo, hi = band_from_path(r, c, ratio_r, ratio_c, model.n_rows, model.n_cols, radius)
        r, c = _banded(model, lo, hi, settings)
        levels.append({"factor": F, "rows": model.n_rows, "cols": model.n_cols, "band_cells": int(np.sum(hi - lo)),
                       "largest_block": int(model.largest)})
        prev = model
    return r, c, prev, levels


def _note_level_pass(r: np.ndarray, c: np.ndarray, model: CostModel, score: ScoreFeatures, k: float,
                     settings: AlignSettings) -> Tuple[np.ndarray, np.ndarray, Optional[dict]]:
    """The tempo prior (note_dp_band), then the finest DTW again in its band, ``dp_passes`` times
    (none without ``note_dp``). Returns the path and the figures of the last pass (None: none ran)."""
    tempo_prior = None
    for _ in range(settings.dp_passes if settings.note_dp else 0):
        band = note_dp_band(r, c, model, score, k, settings)
        if band is not None:
            lo, hi = band
            try:
                r, c = _banded(model, lo, hi, settings)
            except AlignmentError:   # no path inside the band: keep the DTW's own
                break
            tempo_prior = {"band_cells": int(np.sum(hi - lo)), "largest_block": int(model.largest)}
    return r, c, tempo_prior


def align_pm(mix: np.ndarray, sr: int, pm, tuning_cents: float = 0.0, settings: Optional[AlignSettings] = None,
             programs: Optional[dict] = None, features: Optional[MixFeatures] = None) -> Alignment:
    """Align a pretty_midi.PrettyMIDI to a recording (mono ``(n_samples,)`` at ``sr``) by the notes
    of all its pitched parts (drum parts carry no pitch and are left out of the search; they are
    moved with the rest by the time map).

    settings.compensate_attack: place note-ons before the heard onsets by the instruments' attack
    time (the notes' mean attack_lag), so that the aligned MIDI, rendered, sounds in time with the
    recording; settings.keep_cost: keep the global cost matrix (for plots). programs: {part index:
    GM program} overriding the MIDI's (the real instruments). features: the recording's, when
    already computed (mixture_features with the same tuning and settings).
    """
    from ..midi import notes_array

    settings = settings or AlignSettings()
    programs = programs or {}
    pitched, lags = [], []
    for i, inst in enumerate(pm.instruments):
        if inst.is_drum or not inst.notes:
            continue
        arr = notes_array(inst)
        pitched.append(arr)
        lags.append(np.full(len(arr), attack_lag(programs.get(i, inst.program))))
    if not pitched:
        raise AlignmentError("the MIDI has no pitched notes to align by (drums only)")
    lag = float(np.mean(np.concatenate(lags))) if settings.compensate_attack else 0.0
    return align_notes(mix, sr, np.concatenate(pitched), tuning_cents=tuning_cents, settings=settings,
                       features=features, onset_lag=lag)
