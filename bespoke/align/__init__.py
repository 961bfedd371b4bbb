"""Score-to-audio alignment: the MIDI's notes against the recording, with dtw-python.

No rendering: the score is symbolic, and the question asked of every (score frame, audio frame)
pair is "are the notes the score plays here present in the recording there?", which holds
whether the MIDI has every part or one part of a larger ensemble.

Features, recording side (``features``; one frame every ``hop`` = 10 ms):
  * pitch salience ``(n, 88)``: a semitone log-spectrum (tuned to the recording) summed over
    each pitch's first harmonics, each frame scaled to its own strongest pitch;
  * onset salience ``(n, 88)``: the same harmonic sum of the log-spectral flux (rises only),
    scaled by its local maximum over a few seconds (locally adaptive normalisation) and given a
    decaying tail: decaying locally adaptive normalised onsets (DLNCO), per pitch, not per chroma.
Score side (``score``): which pitches sound (piano roll) and where notes start (decaying impulses).
Cost (``cost``) of (score frame i, audio frame j): how many standard deviations (over the
recording) the salience of the pitches sounding at i stands above its average, at j, squashed to
1 - tanh(z / z_scale); the same for onsets where the score has them. One-sided: energy the score
does not explain (other instruments) costs nothing. Rows without notes (rests) cost 1, "no
evidence", as does an audio frame matched to nothing.

Search (``dtw``, driven by ``driver``), coarse to fine: a global DTW (dtw-python, symmetric2 with
horizontal and vertical steps weighted against the diagonal) on the full matrix at a low frame
rate, kept under ``coarse_cells`` cells, with a skip row before and after the score (open begin
and end: silence or other music at either end of the recording); once to learn the average tempo,
once with the score at that tempo. Then finer levels down to 10 ms, each only inside a band around
the previous level's path, in overlapping blocks of rows: the largest matrix ever built is one
block of the band, whatever the length of the recording.

Tempo prior (``tempo``): a note-level search then corrects the finest path (note_dp_times): every
distinct onset of the score gets an audio time within a few seconds of the path's, and the
performer a tempo that drifts at a price (a hidden state), so that a passage the path crammed or
stretched to land on another voice's notes of the same pitches costs what it should; the finest
DTW runs again in a narrow band around its result.

Confidence (``driver``): the global path's cost against the cost of the same search with the score
transposed by a tritone (music that is not in the recording), squashed to [0, 1].

The result (``timemap``) maps score seconds to audio seconds (TimeMap). ``attack``: the
instruments' attack lag, by which note-ons are placed before the onsets heard.

The knobs: bespoke.config.align.AlignSettings.
"""
from ..spectral import semitone_filterbank
from .attack import ATTACK_LAG_MS, attack_lag
from .cost import CostModel
from .driver import align_notes, align_pm
from .dtw import band_from_path, banded_dtw, coarse_dtw, step_pattern
from .features import (
                       BIN_LO,
                       FEAT_SR,
                       N_BIN,
                       N_PITCH,
                       PITCH_LO,
                       MixFeatures,
                       harmonic_sum_matrix,
                       mixture_features,
                       pool,
)
from .score import ScoreFeatures
from .tempo import note_dp_band, note_dp_times
from .timemap import Alignment, TimeMap, path_to_timemap

__all__ = [
    "ATTACK_LAG_MS", "attack_lag", "CostModel", "align_notes", "align_pm", "band_from_path", "banded_dtw",
    "coarse_dtw", "step_pattern", "BIN_LO", "FEAT_SR", "N_BIN", "N_PITCH", "PITCH_LO", "MixFeatures",
    "harmonic_sum_matrix", "mixture_features", "pool", "semitone_filterbank", "ScoreFeatures", "note_dp_band",
    "note_dp_times", "Alignment", "TimeMap", "path_to_timemap",
]
