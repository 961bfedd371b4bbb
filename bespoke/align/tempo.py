"""The tempo prior: a note-level search that corrects the finest DTW path (note_dp_times).

Every distinct onset of the score gets an audio time within a few seconds of the path's, and the
performer a tempo that drifts at a price (a hidden state), so that a passage the path crammed or
stretched to land on another voice's notes of the same pitches costs what it should; note_dp_band
turns the result into a narrow band in which the finest DTW runs again."""
from __future__ import annotations

import math
from typing import NamedTuple, Optional, Tuple

import numpy as np

from ..config.align import AlignSettings
from .cost import CostModel, _z_cost
from .dtw import band_around
from .features import N_PITCH
from .score import ScoreFeatures
from .timemap import path_to_timemap


def note_dp_band(rows: np.ndarray, cols: np.ndarray, model: CostModel, score: ScoreFeatures, k: float,
                 settings: AlignSettings) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """A tempo prior (note_dp_times) around the path (rows, cols) of ``model``: the band of columns
    per row within ``settings.dp_radius`` s of the map through the onsets' chosen times, or None."""
    res = note_dp_times(rows, cols, model, score, k, settings)
    if res is None:
        return None
    on, t = res
    tm = path_to_timemap(rows, cols, model.s0, model.s_period, model.a_period)
    st = model.s0 + np.arange(model.n_rows) * model.s_period
    g = np.interp(st, on, t)
    # beyond the first and last onsets: the path's own map
    g = np.where(st < on[0], tm(st), g)
    g = np.where(st > on[-1], tm(st) - tm(on[-1]) + t[-1], g)
    return band_around(np.maximum.accumulate(g), settings.dp_radius, model)


def note_dp_times(rows: np.ndarray, cols: np.ndarray, model: CostModel, score: ScoreFeatures, k: float,
                  settings: AlignSettings) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """A tempo prior: each score onset u_i gets an audio time t_i near the path's (within
    ``dp_window`` s), and the performer a tempo tau_i (a hidden state, ``dp_tempo_bins`` bins of
    log-tempo around the average tempo k), chosen by dynamic programming over the onsets to minimise
      sum_i [ dp_onset * onset cost of u_i's notes at t_i + dp_any_onset * onset cost at any pitch at t_i
              + w_i * sum of the presence cost of the notes sounding in [u_i, u_i+1) over [t_i, t_i+1)
              + dp_tempo_change * |log tau_i+1 - log tau_i|
              + dp_lambda * rho(log((t_i+1 - t_i) / (tau_i+1 (u_i+1 - u_i)))) ]
    with rho(x) = dp_stretch * x for x > 0 (a note held longer: fermatas, breaths, cheap) and -x for
    x < 0 (a passage played faster than the current tempo, dear), and
    w_i = (k (u_i+1 - u_i) / (t_i+1 - t_i)) ** dp_presence_norm (a note held longer is not credited
    with every extra frame of evidence). The tempo drifts at a price, so a
    passage played faster or slower throughout costs one change, not a penalty per note; the path of
    the DTW may jump a run of notes onto another voice's notes of the same pitches, and getting there
    and back takes tempo changes this prices. Searched every ``dp_step`` frames (onset evidence:
    the best within each step), then again every 2 frames within ``dp_refine_s`` s of the result
    (the knobs: ``settings``). Returns (u ``(n_onsets,)`` the score's distinct onset times, t
    ``(n_onsets,)`` their audio times in s), or None where there is nothing to search."""
    tm = path_to_timemap(rows, cols, model.s0, model.s_period, model.a_period)
    on = np.unique(np.round(score.starts, 3))
    if len(on) < 3:
        return None
    ons_w, act_w = _onset_tables(score, on)
    t = _tempo_dp(tm(on), settings.dp_window, max(int(settings.dp_step), 1), on, ons_w, act_w, model, k, settings)
    if t is not None and settings.dp_refine_s > 0 and settings.dp_step > 2:
        t = _tempo_dp(t, settings.dp_refine_s, 2, on, ons_w, act_w, model, k, settings)
    return None if t is None else (on, t)


def _onset_tables(score: ScoreFeatures, on: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The score's content per distinct onset u_i (``on`` ``(n_on,)``): (onset weights ``(n_on, 88)``,
    1 for each pitch starting at u_i; presence weights ``(n_on, 88)``, the fraction of
    [u_i, u_i+1) each pitch sounds, the last segment ending with the score)."""
    n_on = len(on)
    ons_w = np.zeros((n_on, N_PITCH), np.float32)
    idx = np.searchsorted(on, np.round(score.starts, 3))
    np.maximum.at(ons_w, (idx, score.pitch), 1.0)
    act_w = np.zeros((n_on, N_PITCH), np.float32)
    edges = np.append(on, max(score.t1, on[-1] + 1e-3))
    seg = np.maximum(np.diff(edges), 1e-6)
    for (s_, e_, _p, _v), pk in zip(score.notes, score.pitch):
        a = int(np.searchsorted(edges, s_ + 5e-4, "right")) - 1     # the segment holding the start
        b = int(np.searchsorted(edges, e_ - 1e-6))
        for i in range(max(a, 0), min(b, n_on)):
            ov = min(e_, edges[i + 1]) - max(s_, edges[i])
            if ov > 0:
                act_w[i, pk] = max(act_w[i, pk], ov / seg[i])
    return ons_w, act_w


class _Candidates(NamedTuple):
    """The audio times the search may give each onset: ``n_cand = 2 * half + 1`` candidates ``step``
    finest frames apart, centred on ``center_steps`` ``(n_on,)`` (int, in steps)."""

    frames: np.ndarray        # (n_on, n_cand) int: the candidates' audio frames, clipped to the recording
    in_range: np.ndarray      # (n_on, n_cand) bool: the candidate lay inside the recording before clipping
    center_steps: np.ndarray  # (n_on,) int
    step: int
    half: int

    @property
    def n_cand(self) -> int:
        return 2 * self.half + 1


def _candidates(center: np.ndarray, window: float, step: int, model: CostModel) -> _Candidates:
    """Candidates every ``step`` frames within ``window`` s of each onset's ``center`` (s)."""
    per = model.a_period
    half = int(round(window / (per * step)))
    center_steps = np.round(np.asarray(center) / (per * step)).astype(np.int64)
    frames = (center_steps[:, None] + np.arange(-half, half + 1)[None, :]) * step
    in_range = (frames >= 0) & (frames < model.n_cols)
    frames = np.clip(frames, 0, model.n_cols - 1)
    return _Candidates(frames, in_range, center_steps, step, half)


def _onset_costs(cands: _Candidates, ons_w: np.ndarray, model: CostModel, settings: AlignSettings) -> np.ndarray:
    """``(n_on, n_cand)`` float32: the onset evidence cost of each onset at each candidate (its own
    pitches', weighted ``dp_onset``, plus any pitch's, weighted ``dp_any_onset``), the best frame
    within each step; inf at candidates outside the recording."""
    import scipy.ndimage

    step, frames, n_cols = cands.step, cands.frames, model.n_cols
    onset_cost = np.empty(frames.shape, np.float32)
    any_onset_cost = None     # onset cost at any pitch, every frame (sliced per onset below)
    if settings.dp_any_onset > 0 and model.flux is not None:
        any_onset_cost = settings.dp_any_onset * (1.0 - np.tanh(model.flux / settings.z_scale))
    for i in range(len(frames)):
        j0 = max(int(frames[i, 0]) - step // 2, 0)
        j1 = min(int(frames[i, -1]) + step, n_cols)
        xo = model.osal[j0:j1].astype(np.float32) - model.mu_o
        per_frame = settings.dp_onset * _z_cost(ons_w[i:i + 1], xo, model.cov_o, settings.z_scale)[0]
        if step > 1:
            per_frame = scipy.ndimage.minimum_filter1d(per_frame, size=step, mode="nearest")
        if any_onset_cost is not None:
            any_here = any_onset_cost[j0:j1]
            if step > 1:
                any_here = scipy.ndimage.minimum_filter1d(any_here, size=step, mode="nearest")
            per_frame = per_frame + any_here
        onset_cost[i] = per_frame[np.clip(frames[i] - j0, 0, len(per_frame) - 1)]
    onset_cost[~cands.in_range] = np.inf
    return onset_cost


def _tempo_grid(k: float, settings: AlignSettings) -> Tuple[np.ndarray, np.ndarray]:
    """The performer's tempo states: (log tempo ``(n_tempo,)`` of each bin, centred on log k;
    the cost ``(n_tempo, n_tempo)`` float32 of changing from one bin to another)."""
    n_tempo = max(int(settings.dp_tempo_bins), 1)
    log_tempo = math.log(k) + (np.arange(n_tempo) - (n_tempo - 1) / 2) * settings.dp_tempo_step
    bins = np.arange(n_tempo)
    change_cost = (settings.dp_tempo_change * settings.dp_tempo_step
                   * np.abs(bins[:, None] - bins[None, :])).astype(np.float32)
    return log_tempo, change_cost


def _tempo_dp(center: np.ndarray, window: float, step: int, on: np.ndarray, ons_w: np.ndarray,
              act_w: np.ndarray, model: CostModel, k: float, settings: AlignSettings) -> Optional[np.ndarray]:
    """note_dp_times' search: candidates every ``step`` frames within ``window`` s of ``center``
    ``(n_on,)`` (one audio time per onset); returns the chosen audio time (s) of each onset
    ``(n_on,)``, or None.

    cost_so_far ``(n_cand, n_tempo)``: the best cost of onsets 0 .. i with onset i at candidate m
    and the tempo in bin l; back_steps and back_tempo ``(n_on, n_cand, n_tempo)``: for onset i at
    (m, l), the candidate steps back to onset i - 1 and its tempo bin."""
    n_on = len(on)
    cands = _candidates(center, window, step, model)
    onset_cost = _onset_costs(cands, ons_w, model, settings)
    log_tempo, change_cost = _tempo_grid(k, settings)
    n_cand, n_tempo = cands.n_cand, len(log_tempo)
    cost_so_far = np.repeat(onset_cost[0][:, None], n_tempo, axis=1)
    back_steps = np.zeros((n_on, n_cand, n_tempo), np.int16)
    back_tempo = np.zeros((n_on, n_cand, n_tempo), np.int8)
    for i in range(n_on - 1):
        cost_after_change, prev_tempo = _change_tempo(cost_so_far, change_cost)
        res = _best_intervals(i, cost_after_change, cands, on, act_w, model, k, log_tempo, settings)
        if res is None:
            return None
        interval_best, best_steps = res
        cost_so_far = interval_best + onset_cost[i + 1][:, None]
        back_steps[i + 1] = best_steps
        shift = int(cands.center_steps[i + 1] - cands.center_steps[i])
        prev_cand = np.clip(np.arange(n_cand)[:, None] + shift - best_steps, 0, n_cand - 1)
        back_tempo[i + 1] = np.take_along_axis(prev_tempo, prev_cand, axis=0)
    if not np.isfinite(cost_so_far).any():
        return None
    chosen = _backtrack(cost_so_far, back_steps, back_tempo, cands.center_steps)
    return cands.frames[np.arange(n_on), chosen] * model.a_period


def _change_tempo(cost_so_far: np.ndarray, change_cost: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The tempo may change between onsets: (cost ``(n_cand, n_tempo)`` of reaching tempo bin l'
    at each candidate, min over l of cost_so_far[m, l] + change_cost[l, l']; the bin l it came
    from ``(n_cand, n_tempo)``)."""
    with_change = cost_so_far[:, :, None] + change_cost[None, :, :]           # (n_cand, n_tempo, n_tempo)
    prev_tempo = np.argmin(with_change, axis=1)
    cost_after_change = np.take_along_axis(with_change, prev_tempo[:, None, :], axis=1)[:, 0, :]
    return cost_after_change, prev_tempo


def _best_intervals(i: int, cost_after_change: np.ndarray, cands: _Candidates, on: np.ndarray, act_w: np.ndarray,
                    model: CostModel, k: float, log_tempo: np.ndarray,
                    settings: AlignSettings) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """From onset i to onset i + 1: for each candidate m' of onset i + 1 and tempo bin l, the best
    interval of d candidate steps back to candidate m = m' + shift - d of onset i (its cost so far,
    after a tempo change, plus the interval's presence and tempo costs). Returns (that cost
    ``(n_cand, n_tempo)`` float32, inf where no interval reaches; d ``(n_cand, n_tempo)`` int16),
    or None where the candidates leave no interval."""
    per, step, n_cand = model.a_period, cands.step, cands.n_cand
    cums = _interval_presence(i, cands, act_w, model, settings)
    if cums is None:
        return None
    cum_at_start, cum_at_end = cums                                          # (n_cand,) each
    # intervals of d candidate steps, d = 1 .. max_steps (longer: a hold of several seconds at most)
    du = on[i + 1] - on[i]
    expected = k * du / (per * step)                                         # in candidate steps
    shift = int(cands.center_steps[i + 1] - cands.center_steps[i])
    max_steps = int(math.ceil((settings.dp_max_hold * du * math.exp(log_tempo[-1]) + settings.dp_max_hold_s)
                              / (per * step)))
    max_steps = max(1, min(max_steps, n_cand + shift - 1))
    tempo_penalty = _interval_penalty(np.arange(1, max_steps + 1) * step * per, du, log_tempo, settings,
                                      slack=settings.dp_slack * step * per)
    interval_best = np.full((n_cand, len(log_tempo)), np.float32(np.inf), np.float32)
    best_steps = np.zeros((n_cand, len(log_tempo)), np.int16)
    for dd in range(1, max_steps + 1):
        # candidate m' of onset i+1 is dd steps after candidate m = m' + shift - dd of onset i
        off = shift - dd
        lo, hi = max(0, -off), min(n_cand, n_cand - off)
        if hi <= lo:
            continue
        w = (np.float32((expected / dd) ** settings.dp_presence_norm) if settings.dp_presence_norm
             else np.float32(1.0))
        presence = (cum_at_end[lo:hi] - cum_at_start[lo + off:hi + off]) * w   # presence over the interval
        total = cost_after_change[lo + off:hi + off] + presence[:, None] + tempo_penalty[dd - 1]
        seg_best = interval_best[lo:hi]
        better = total < seg_best
        seg_best[better] = total[better]
        best_steps[lo:hi][better] = dd
    return interval_best, best_steps


def _interval_presence(i: int, cands: _Candidates, act_w: np.ndarray, model: CostModel,
                       settings: AlignSettings) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """The presence cost (less ``skip_cost``) of the notes sounding in [u_i, u_i+1), summed from the
    first candidate frame of onset i, at each candidate of onset i and of onset i + 1 (float32
    ``(n_cand,)`` each): an interval's cost is a difference of the two. None: no frames."""
    frames = cands.frames
    j0, j1 = int(frames[i, 0]), int(frames[i + 1, -1]) + 1
    if j1 <= j0:
        return None
    xs = model.sal[j0:j1].astype(np.float32) - model.mu_s
    per_frame = _z_cost(act_w[i:i + 1], xs, model.cov_s, settings.z_scale)[0] - np.float32(settings.skip_cost)
    cumsum = np.concatenate([[0.0], np.cumsum(per_frame, dtype=np.float64)]).astype(np.float32)
    return cumsum[frames[i] - j0], cumsum[frames[i + 1] - j0]


def _interval_penalty(seconds: np.ndarray, du: float, log_tempo: np.ndarray, settings: AlignSettings,
                      slack: float = 0.0) -> np.ndarray:
    """``(n_lengths, n_tempo)`` float32: dp_lambda * rho(x), x the log of each interval length
    ``seconds`` ``(n_lengths,)`` over the score's ``du`` s at each tempo (see note_dp_times), the
    lengths known to within +- ``slack`` s (the candidates' spacing: an onset is anywhere in its
    step), so x is the smallest departure any length in that range gives."""
    target = log_tempo[None, :] + math.log(du)
    x_longest = np.log(seconds + slack)[:, None] - target     # the interval at its longest ...
    x_shortest = np.log(np.maximum(seconds - slack, 1e-4))[:, None] - target   # ... and shortest
    x = np.where(x_longest < 0, x_longest, np.where(x_shortest > 0, x_shortest, 0.0))
    return (settings.dp_lambda * np.where(x > 0, settings.dp_stretch * x, -x)).astype(np.float32)


def _backtrack(cost_so_far: np.ndarray, back_steps: np.ndarray, back_tempo: np.ndarray,
               center_steps: np.ndarray) -> np.ndarray:
    """The chosen candidate ``(n_on,)`` of each onset: from the best end state, back along the
    back pointers."""
    n_on = len(back_steps)
    m, tempo = (int(v) for v in np.unravel_index(int(np.argmin(cost_so_far)), cost_so_far.shape))
    chosen = np.empty(n_on, np.int64)
    for i in range(n_on - 1, -1, -1):
        chosen[i] = m
        if i > 0:
            steps = int(back_steps[i, m, tempo])
            tempo = int(back_tempo[i, m, tempo])
            m = m + int(center_steps[i] - center_steps[i - 1]) - steps
    return chosen
