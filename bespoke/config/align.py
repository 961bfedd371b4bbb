"""Settings of the alignment stage (bespoke.align): when to refuse a MIDI, and the aligner's knobs.
Defaults measured with bench/align_eval.py (bench/ALIGN.md)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple


@dataclass(frozen=True)
class AlignSettings:
    enabled: bool = True            # False: the MIDI is already aligned to the recording
    # Below min_confidence: an error (unless force); 0 disables the check. Below warn_confidence:
    # a warning. Calibrated with bench/align_eval.py's full case set (right MIDI against another
    # piece's MIDI cut to the same length): right pairs 0.79-1.0, wrong pairs up to 0.45 (a
    # single part of one chorale against another chorale's), most below 0.1.
    min_confidence: float = 0.5
    warn_confidence: float = 0.7
    # The score's notes and the recording's sound may differ in length by at most this factor
    # (else an error unless force; 0 disables): catches a MIDI of another piece before the work.
    # 4: as far as the tempo search reaches (tempo_ratio_range), so a MIDI at half or double the
    # tempo played passes even where the part starts late (a band score at double tempo: 3.2).
    max_duration_ratio: float = 4.0
    keep_cost: bool = False         # keep the global DTW cost matrix in the Alignment (for --plot)
    # Place note-ons before the onsets heard in the recording by the instruments' attack time
    # (align.attack.ATTACK_LAG_MS), so that the aligned MIDI, rendered, sounds in time with the recording.
    compensate_attack: bool = True
    # A part whose notes sound an octave below where its MIDI writes them (a bass written an octave
    # up, as bass guitar is notated) is separated at the pitch it sounds (align/octave.py): when
    # the recording's pitch salience over its aligned notes an octave down beats that as written by
    # this factor, for parts of at least octave_min_notes notes. The bench's band bass, given its
    # MIDI an octave down with the true alignment: -0.48 -> 6.81 dB SI-SDR.
    octave_check: bool = True
    octave_margin: float = 1.15
    octave_min_notes: int = 8

    # ---- the aligner's knobs (bespoke.align)

    hop: int = 220                   # samples at 22050 Hz: the finest frame (10 ms)
    n_fft: int = 2048                # window of the pitch salience
    onset_n_fft: int = 2048          # window of the onset salience
    harmonics: int = 6               # harmonics summed into a pitch's salience
    harmonic_decay: float = 0.7      # weight of harmonic h: decay ** (h - 1)
    compress: float = 1000.0         # log(1 + compress * power / reference)
    salience_floor: float = 0.2      # pitch salience over the frame's strongest pitch, or this fraction
                                     #   of the 90th percentile of those peaks if larger (quiet frames stay low)
    onset_weight: float = 1.0        # weight of the onset cost next to the presence cost
    onset_norm_s: float = 4.0        # window (s) of the local maximum normalising onsets (1.5 s let a
                                     #   loud chord's onset drown a quiet part's nearby)
    onset_floor: float = 0.1         # ... or this fraction of the 90th percentile of those maxima if larger
                                     #   (per-pitch onsets and the flux)
    onset_decay_s: float = 0.05      # decaying tail of onsets (both sides)
    coarse_rate: float = 10.0        # frames per second of the global DTW at most
    # The recording's average tempo against the score's, as the first global DTW measures it,
    # clipped to this (see driver._level_model for how it is used).
    tempo_ratio_range: Tuple[float, float] = (0.25, 4.0)
    # Where the MIDI does not seem to fit (confidence below tempo_rescue_below), it is aligned again
    # with its times multiplied by each of these (a MIDI written at half or double the tempo
    # played: lussier's full score, confidence 0.13 / 0.25 as written, 1.0 rescued) and the
    # best kept. Empty: never.
    tempo_rescue: Tuple[float, ...] = (0.5, 2.0)
    tempo_rescue_below: float = 0.5
    # Where the recording's length over the score's end differs from that first measure by more
    # than this factor, that ratio is tried too (driver._global_level); 0: never.
    tempo_from_length: float = 1.3
    coarse_cells: float = 4e6        # cells of the global DTW's matrix at most
    level_ratio: int = 10            # frame-rate ratio between successive levels
    radius_frames: float = 3.0       # band half-width, in frames of the level above
    min_radius_s: float = 0.25       # ... and in seconds at least
    block_s: float = 4.0             # rows per block of the banded DTW (seconds of score)
    overlap_s: float = 2.0           # look-ahead rows per block, discarded
    skip_cost: float = 0.8           # cost of an audio frame matched to nothing (open ends)
    z_scale: float = 3.0             # cost = 1 - tanh(z / z_scale)
    hv_weight: float = 1.5           # weight of horizontal/vertical DTW steps (diagonal: 2)
    hv_weight_coarse: float = 1.5    # ... in the global DTW
    # The confidence: the global search is run again with the score transposed by each of
    # null_shifts semitones (the score's rhythm, other pitches). Two measures, the larger kept:
    # z = how many of those nulls' standard deviations the right path's cost lies below their
    # mean, logistic((z - conf_center) / conf_scale); and the share by which it lies below the
    # tritone null's cost, logistic((share - share_center) / share_scale) (the only measure
    # before). Measured on right and wrong pairs (another piece's MIDI cut to the same length;
    # bench/align_eval.py --sets trios,synth,band, bench/ALIGN.md): z of band single parts aligned
    # right 4.5-9.5 (choir, bass, flute, guitars, strings, pianos), 2.3-2.6 for two distorted
    # guitars of 3 and 19 notes; wrong pairs up to 3.48 (two Bach chorales, full score), so the
    # centre sits at 3.8. The share alone refused 8 of 15 band parts (a quiet part in a dense mix:
    # its costs all sit near 1) but holds chamber parts whose nulls spread wide (a chorale's alto:
    # z 2.45, share 0.057).
    null_shifts: Tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
    # A transposed MIDI (another key: common for pop songs and transposing instruments): the
    # global search is also run with the score moved down 1..5 semitones (up 1..6 are nulls
    # already). The cheapest shift, when cheaper than the score as written, is searched again
    # from the start (its own tempo and nulls) and taken when its confidence is above
    # transpose_confidence and its evidence z (the confidence's) transpose_margin above the
    # written score's; the whole alignment is then done on the moved score, and the notes moved.
    transpose: bool = True
    transpose_confidence: float = 0.5
    transpose_margin: float = 2.0
    conf_center: float = 3.8
    conf_scale: float = 0.25
    share_center: float = 0.045
    share_scale: float = 0.01
    max_squeeze: int = 2             # >= 2: the score may advance at most this many frames per audio frame
                                     #   (no lone score steps) below the global level; 0: free
    squeeze_coarse: bool = True      # ... and in the global DTW at the recording's tempo (and its null)
    note_dp: bool = True             # tempo prior: a note-level search (see note_dp_band) then the finest DTW again
    dp_window: float = 6.0           #   s either side of the first path an onset may move
    dp_step: int = 3                 #   finest frames between candidate onset times (then refined, see below)
    dp_refine_s: float = 0.3         #   a second search within this many s of the first, every 2 frames
    dp_lambda: float = 50.0          #   weight (in frames of cost) of an interval's departure from the tempo
    dp_stretch: float = 0.5          #   penalty per unit of log-stretch (a note held longer; squeeze: 1)
    dp_onset: float = 8.0            #   weight (in frames) of the onset evidence at each onset
    # ... and of the mixture's onsets at any pitch (spectral flux): the part's notes start where
    # something in the recording starts, even where their own pitches are masked or repeated (a
    # repeated note after a fermata; a line whose pitches another voice holds). align_eval single
    # part, within 100 ms: 0 / 4 / 8 / 12 gave 96.5 / 96.9 / 97.2 / 97.2 %; full score 99.8 -> 99.9.
    dp_any_onset: float = 8.0
    # An interval's length is known to +- dp_slack candidate steps only (each onset may lie
    # anywhere in its step), and its tempo penalty forgives that much: with no slack a dense score
    # (Slakh Track01501, ~10 onsets per second, steps of 30 ms) paid more for quantising its short
    # intervals than for a path a bar off, and took it for 18 s. align_eval full score, within 50 ms,
    # slack 0 / 0.5 / 1: band 72.4 / 98.4 / 99.0 %, synth 98.0 / 98.0 / 97.9, trios 100 (all three);
    # single part: synth 94.9 / 95.0 / 95.2, trios 94.6 / 94.4 / 94.6.
    dp_slack: float = 1.0
    dp_tempo_bins: int = 15          #   the performer's tempo, a hidden state: this many bins of log-tempo ...
    dp_tempo_step: float = 0.1       #   ... this far apart, centred on the average tempo
    dp_tempo_change: float = 100.0   #   penalty per unit of log-tempo change between onsets
    dp_max_hold: float = 2.0         #   an interval between onsets lasts at most this many times its length
    dp_max_hold_s: float = 4.0       #   ... at the slowest tempo bin, plus this many s (a hold, a fermata)
    dp_passes: int = 1               #   times the note-level search and the finest DTW are run
    # An interval's presence evidence is a sum over its frames; holding a note over another voice's
    # sustained notes of the same pitch then buys evidence with every extra frame. Scaled by
    # (expected frames / actual frames) ** dp_presence_norm, a note is credited nearer its mean
    # evidence over its expected length (0: the plain sum; 1: the mean). align_eval single part,
    # within 100 ms, with onset_norm_s 1.5 and dp_stretch 0.3: 0 / 0.3 / 0.5 / 0.7 / 1 gave
    # 95.6 / 96.1 / 96.1 / 95.7 / 95.3 %; 0.5 with onset_norm_s 4: 96.3; and dp_stretch 0.5: 96.5
    # (full score unchanged: 99.7 -> 99.8).
    dp_presence_norm: float = 0.5
    # The finest DTW only polishes the note-level map (+-30 ms): with the 0.3 s it had, it pulled
    # onsets back onto the other voices the tempo search had kept them off (align_eval single part
    # 88.1 / 92.5 -> 93.2 / 95.6 % within 50 / 100 ms; full score 97.2 / 99.2 -> 98.5 / 99.7).
    dp_radius: float = 0.03          #   band (s) of the finest DTW around the note-level map
