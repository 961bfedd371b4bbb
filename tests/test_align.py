"""Score-to-audio alignment (bespoke.align) on tiny songs built in code."""
import dataclasses

import numpy as np
import pretty_midi
import pytest
import soundfile as sf
from conftest import SR, make_score

from bespoke import align as A
from bespoke import midi as midimod
from bespoke.align.dtw import _run_dtw
from bespoke.config.align import AlignSettings
from bespoke.errors import AlignmentError


def tones(notes: np.ndarray, seconds: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    """Additive synthesis of notes ``(n, 4)`` (start, end, pitch, velocity): 6 decaying harmonics,
    a 10 ms attack; float32 ``(n_samples,)``. Fast, for long inputs."""
    y = np.zeros(int(seconds * sr) + 1, np.float32)
    for s, e, p, v in notes:
        i0, i1 = int(s * sr), min(int((e + 0.05) * sr), len(y))
        if i1 <= i0:
            continue
        t = np.arange(i1 - i0) / sr
        f0 = 440.0 * 2 ** ((p - 69) / 12)
        env = np.minimum(t / 0.01, 1.0) * np.exp(-t / 1.5) * (v / 127.0)
        env[-int(0.05 * sr):] *= np.linspace(1, 0, min(int(0.05 * sr), len(env)))
        x = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 7) if f0 * h < sr / 2)
        y[i0:i1] += (0.1 * env * x).astype(np.float32)
    return y


def onset_errors(aligned, truth) -> np.ndarray:
    """|aligned - true| onsets (s), note for note (warp keeps every note in order)."""
    out = []
    for a, t in zip(aligned.instruments, truth.instruments):
        out.append(np.abs(np.array([n.start for n in a.notes]) - np.array([n.start for n in t.notes])))
    return np.concatenate(out)


@pytest.fixture(scope="module")
def song(tiny_song):
    mix, sr = sf.read(tiny_song / "mix.wav", dtype="float32")
    return {"mix": mix, "sr": sr, "true": make_score(), "warped": make_score(tempo_scale=1.12, offset=0.4)}


def test_timemap_rejects_non_monotonic():
    with pytest.raises(AlignmentError, match="monotonic"):
        A.TimeMap(np.array([0.0, 1.0, 1.0]), np.array([0.0, 1.0, 2.0]))
    with pytest.raises(AlignmentError, match="monotonic"):
        A.TimeMap(np.array([0.0, 1.0, 2.0]), np.array([0.0, 2.0, 1.0]))
    with pytest.raises(AlignmentError):
        A.TimeMap(np.array([0.0]), np.array([0.0]))
    tm = A.TimeMap(np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.5, 3.5]))
    assert np.allclose(tm([0.5, 1.5]), [1.25, 2.5])
    assert np.allclose(tm([3.0]), [3.5 + 1.25])  # beyond the anchors: the average slope


def test_full_score_recovers_truth_and_keeps_every_note(song):
    al = A.align_pm(song["mix"], song["sr"], song["warped"])
    tm = al.time_map
    assert np.all(np.diff(tm.score_times) > 0) and np.all(np.diff(tm.audio_times) >= 0)
    aligned = midimod.warp(song["warped"], tm)
    for a, w in zip(aligned.instruments, song["warped"].instruments):
        assert [n.pitch for n in a.notes] == [n.pitch for n in w.notes]  # every note, in order
        assert all(n.end > n.start for n in a.notes)
    err = onset_errors(aligned, song["true"])
    assert np.mean(err <= 0.05) >= 0.9, np.round(err, 3)
    assert np.max(err) < 0.25
    assert al.confidence > 0.5


def test_single_part_recovers_truth(song):
    solo = pretty_midi.PrettyMIDI(initial_tempo=120)
    solo.instruments = [song["warped"].instruments[0]]
    al = A.align_pm(song["mix"], song["sr"], solo)
    aligned = midimod.warp(solo, al.time_map)
    truth = pretty_midi.PrettyMIDI()
    truth.instruments = [song["true"].instruments[0]]
    err = onset_errors(aligned, truth)
    assert np.mean(err <= 0.05) >= 0.85, np.round(err, 3)


def test_open_begin_and_end(song):
    """Silence before, other music after: the score is found inside the recording."""
    sr = song["sr"]
    rng = np.random.default_rng(1)
    other = np.array([[t, t + 0.4, p, 90] for t, p in zip(np.arange(0.0, 4.0, 0.5), rng.integers(40, 90, 8))])
    tail = tones(other, 4.0, sr) * 0.5
    lead = 3.0
    mix = np.concatenate([np.zeros(int(lead * sr), np.float32), song["mix"], tail])
    al = A.align_pm(mix, sr, song["warped"])
    aligned = midimod.warp(song["warped"], al.time_map)
    truth = midimod.warp(song["true"], A.TimeMap(np.array([0.0, 10.0]), np.array([lead, lead + 10.0])))
    err = onset_errors(aligned, truth)
    assert np.mean(err <= 0.05) >= 0.85, np.round(err, 3)


def test_tuning_not_a440(song):
    """A recording 40 cents sharp, told its tuning, aligns as well."""
    notes = np.concatenate([midimod.notes_array(i) for i in song["true"].instruments])
    sharp = notes.copy()
    sharp[:, 2] += 0.4
    y = tones(sharp, 9.0)
    al = A.align_pm(y, SR, song["warped"], tuning_cents=40.0)
    err = onset_errors(midimod.warp(song["warped"], al.time_map), song["true"])
    assert np.mean(err <= 0.05) >= 0.9


def test_wrong_midi_gets_low_confidence(song):
    """The MIDI of another piece (other pitches, other rhythm) is refused (below min_confidence)
    and scores below the right one, which is accepted."""
    rng = np.random.default_rng(7)
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    inst = pretty_midi.Instrument(program=0)
    t = 0.3
    while t < 8.0:
        d = float(rng.choice([0.3, 0.6, 0.9]))
        for p in rng.choice(np.arange(37, 96), size=2, replace=False):
            inst.notes.append(pretty_midi.Note(80, int(p), t, t + d))
        t += d
    pm.instruments = [inst]
    right = A.align_pm(song["mix"], song["sr"], song["warped"])
    wrong = A.align_pm(song["mix"], song["sr"], pm)
    assert wrong.confidence < AlignSettings().min_confidence < right.confidence
    assert wrong.info["evidence"] < right.info["evidence"]


def test_memory_bounded_levels():
    """A long input with a tiny budget for the global matrix: several levels, and no matrix
    larger than its band's block (never the full fine-resolution matrix)."""
    rng = np.random.default_rng(3)
    notes, t = [], 0.5
    while t < 89.0:
        d = float(rng.choice([0.25, 0.5, 0.75]))
        notes.append([t, t + 0.9 * d, int(rng.integers(55, 80)), 90])
        if rng.random() < 0.5:
            notes.append([t, t + 0.9 * d, int(rng.integers(40, 55)), 70])
        t += d
    true = np.array(notes)
    y = tones(true, 90.0)
    score = true.copy()
    score[:, :2] = score[:, :2] * 0.9 + 0.2   # another tempo and start
    al = A.align_notes(y, SR, score, settings=AlignSettings(coarse_cells=2e4))
    levels = al.info["levels"]
    assert len(levels) >= 3
    assert levels[0]["rows"] * levels[0]["cols"] <= 2e4 * 1.05
    fine = levels[-1]
    assert fine["factor"] == 1
    # the largest matrix the fine level built is a sliver of the full one
    assert fine["largest_block"] < 0.05 * fine["rows"] * fine["cols"]
    for lv in levels[1:]:
        assert lv["band_cells"] < 0.2 * lv["rows"] * lv["cols"]
    est = al.time_map(score[:, 0])
    assert np.mean(np.abs(est - true[:, 0]) <= 0.05) >= 0.9


def test_no_pitched_notes_is_a_clear_error(song):
    pm = pretty_midi.PrettyMIDI()
    drums = pretty_midi.Instrument(program=0, is_drum=True)
    drums.notes.append(pretty_midi.Note(100, 36, 0.0, 0.1))
    pm.instruments = [drums]
    with pytest.raises(AlignmentError, match="pitched"):
        A.align_pm(song["mix"], song["sr"], pm)


@pytest.mark.slow
def test_cli_align_with_plot(tiny_song, tmp_path):
    pytest.importorskip("matplotlib")
    from bespoke.cli import main

    out, png = tmp_path / "aligned.mid", tmp_path / "align.png"
    rc = main(["align", str(tiny_song / "mix.wav"), str(tiny_song / "score.mid"), "-o", str(out),
               "--plot", str(png), "-q"])
    assert rc == 0
    assert out.exists() and png.exists() and png.stat().st_size > 10000
    aligned = midimod.load_midi(out)
    warped = midimod.load_midi(tiny_song / "score.mid")
    assert sum(len(i.notes) for i in aligned.instruments) == sum(len(i.notes) for i in warped.instruments)


def test_squeeze_limited_steps():
    """With max_squeeze the path never advances the score more than that many rows in one audio
    column (no run of lone score steps), where the free search would."""
    rng = np.random.default_rng(0)
    C = rng.uniform(0.5, 1.0, size=(60, 40))
    C[10:50, 20] = 0.0          # a cheap column: the free path runs down it
    for m, limit in ((0, None), (2, 2), (3, 3)):
        r, c, _ = _run_dtw(C, hv_weight=1.5, max_squeeze=m)
        per_col = np.bincount(c)
        assert r[0] == 0 and c[0] == 0 and r[-1] == C.shape[0] - 1 and c[-1] == C.shape[1] - 1
        assert np.all(np.diff(r) >= 0) and np.all(np.diff(c) >= 0)
        if limit is None:
            assert per_col.max() > 10
        else:
            assert per_col.max() <= limit


def _roll_features(events, n_frames: int, rate: float = 100.0):
    """MixFeatures of a recording holding ``events`` [(start s, end s, pitch, level)]: pitch salience
    the level while a note sounds, onset salience the level at its start decaying over 50 ms, and
    the onsets at any pitch their sum."""
    sal = np.zeros((n_frames, A.N_PITCH), np.float32)
    ons = np.zeros((n_frames, A.N_PITCH), np.float32)
    for s, e, pitch, level in events:
        j0, j1, k = int(round(s * rate)), int(round(e * rate)), int(pitch) - A.PITCH_LO
        sal[j0:j1, k] = np.maximum(sal[j0:j1, k], level)
        tail = level * np.exp(-np.arange(min(10, n_frames - j0)) / (0.05 * rate))
        ons[j0:j0 + len(tail), k] = np.maximum(ons[j0:j0 + len(tail), k], tail)
    return A.MixFeatures(sal=sal.astype(np.float16), ons=ons.astype(np.float16), rate=rate, tuning_cents=0.0,
                         flux=ons.sum(axis=1))


def _search_from(notes, feats, k: float, start: float, score_len: float, settings):
    """note_dp_times over ``notes`` on ``feats``, starting from a path at tempo ``k`` (audio s per
    score s) from ``start`` s: (the score's onsets, their audio times)."""
    score = A.ScoreFeatures(notes, settings)
    model = A.CostModel(score, feats, 1, 0.0, k / feats.rate, int(score_len / (k / feats.rate)), settings)
    rows = np.arange(model.n_rows)
    cols = np.round(start * feats.rate + rows).astype(int)
    return A.note_dp_times(rows, cols, model, score, k, settings)


def test_a_held_note_is_not_credited_with_another_voice_sustaining_its_pitch():
    """After part note 8, a louder voice sustains that note's pitch and then plays the part's next
    eight notes 3 s late. Summed frame by frame, holding note 8 over the sustained pitch buys
    evidence with every frame, and the search follows the louder voice; with each interval's
    presence scaled towards its mean over the expected length (dp_presence_norm), every onset
    stays where the part plays it. (The onsets at any pitch are left out, dp_any_onset 0: here
    they would keep the part in place on their own.)"""
    rng = np.random.default_rng(1)
    n, j = 24, 8
    pitches = rng.choice([60, 62, 64, 65, 67, 69], size=n)
    score_on = np.arange(n) * 0.5
    notes = np.array([[u, u + 0.5, p, 90] for u, p in zip(score_on, pitches)])
    true_on = 1.0 + score_on
    events = [(t, t + 0.45, q, 0.3 if i > j else 0.6) for i, (t, q) in enumerate(zip(true_on, pitches))]
    events += [(true_on[j] + 0.5, true_on[j] + 3.5, pitches[j], 1.0)]
    events += [(t + 3.0, t + 3.45, q, 1.0) for t, q in zip(true_on[j + 1:j + 9], pitches[j + 1:j + 9])]
    feats = _roll_features(events, n_frames=2000)
    misplaced = {}
    for norm in (0.0, AlignSettings().dp_presence_norm):
        settings = dataclasses.replace(AlignSettings(), dp_presence_norm=norm, dp_any_onset=0.0)
        _, t = _search_from(notes, feats, 1.0, true_on[0], n * 0.5, settings)
        misplaced[norm] = int(np.sum(np.abs(t - true_on) > 0.03))
    assert misplaced[0.0] >= 8, misplaced          # the plain sum follows the louder voice
    assert misplaced[AlignSettings().dp_presence_norm] == 0, misplaced


def test_repeated_notes_are_placed_by_the_onsets_of_the_other_voices():
    """The part plays one pitch eight times, its last four notes slower (a ritardando); its own
    pitch shows no re-attack, only one long note, while the other voices start a chord with each
    of its notes. Without the onsets at any pitch (dp_any_onset 0) the search spreads the
    ritardando evenly over the run; with them every onset lands on its chord."""
    rng = np.random.default_rng(0)
    n, f, r = 24, 8, 8
    pitches = rng.choice([60, 62, 64, 65, 67, 69], size=n)
    pitches[f:f + r] = pitches[f]
    score_on = np.arange(n) * 0.5
    notes = np.array([[u, u + 0.5, q, 90] for u, q in zip(score_on, pitches)])
    ioi = np.full(n, 0.5)
    ioi[f + r // 2:f + r] = 0.7
    true_on = 1.0 + np.concatenate([[0.0], np.cumsum(ioi[:-1])])
    events = [(t, t + d - 0.05, q, 0.6) for i, (t, d, q) in enumerate(zip(true_on, ioi, pitches))
              if not f < i < f + r]
    events = [(s, true_on[f + r] - 0.05, q, v) if s == true_on[f] else (s, e, q, v) for s, e, q, v in events]
    chords = rng.choice([43, 45, 47, 48, 50, 52], size=n)      # the other voices, below the part
    events += [(t, t + d - 0.05, q, 0.5) for t, d, q in zip(true_on, ioi, chords)]
    feats = _roll_features(events, n_frames=int((true_on[-1] + 2.0) * 100))
    misplaced = {}
    for w in (0.0, AlignSettings().dp_any_onset):
        settings = dataclasses.replace(AlignSettings(), dp_any_onset=w)
        _, t = _search_from(notes, feats, 1.0, true_on[0], n * 0.5, settings)
        misplaced[w] = int(np.sum(np.abs(t - true_on) > 0.03))
    assert misplaced[0.0] >= 3, misplaced          # their own pitch cannot tell where they start
    assert misplaced[AlignSettings().dp_any_onset] == 0, misplaced


def test_tempo_prior_follows_a_tempo_change():
    """The note-level search starts from a path at the average tempo, while the performance plays
    its first half slowly and its second half 40 % faster: it puts every onset back where it is
    heard, though a louder accompaniment keeps sounding the same pitches at other times."""
    rng = np.random.default_rng(3)
    pitches = rng.choice([60, 62, 64, 65, 67], size=32)
    score_on = np.arange(32) * 0.5
    notes = np.array([[u, u + 0.5, p, 90] for u, p in zip(score_on, pitches)])
    ioi = np.where(np.arange(32) < 16, 0.6, 0.36)
    true_on = 1.0 + np.concatenate([[0.0], np.cumsum(ioi[:-1])])
    events = [(t, t + d, p, 0.6) for t, d, p in zip(true_on, ioi, pitches)]
    acc = np.arange(0.0, 17.0, 0.25) + 0.1
    events += [(t, t + 0.3, q, 1.0) for t, q in zip(acc, rng.choice([55, 60, 62, 64, 65, 67, 69], size=len(acc)))]
    feats = _roll_features(events, n_frames=1800)
    k = float((true_on[-1] + ioi[-1] - true_on[0]) / 16.0)
    on, t = _search_from(notes, feats, k, true_on[0], 16.0, AlignSettings())   # the average tempo throughout
    assert np.allclose(on, score_on)
    err = np.abs(t - true_on)
    assert np.max(err) <= 0.03, np.round(err, 3)


def test_tempo_penalty_forgives_the_candidates_spacing():
    """The note-level search places onsets on candidates ``step`` frames apart, so an interval's
    length is known to a step only: a length within a step of the tempo's is not penalised (on a
    dense band score, ~10 onsets a second on 30-ms steps, the quantisation's penalties once
    outweighed a path a bar off), while one two steps off still is."""
    from bespoke.align.tempo import _interval_penalty

    settings = AlignSettings()
    step_s = settings.dp_step * 0.01
    du, log_tempo = 0.1, np.array([0.0])                      # a 100-ms interval at the score's tempo
    lengths = np.array([0.1 - 0.9 * step_s, 0.1 + 0.9 * step_s, 0.1 + 2.5 * step_s, 0.1 - 2.5 * step_s])
    pen = _interval_penalty(lengths, du, log_tempo, settings, slack=settings.dp_slack * step_s)[:, 0]
    assert np.all(pen[:2] == 0.0), pen
    assert np.all(pen[2:] > 0.0), pen
    assert pen[3] > pen[2]                                     # faster than the tempo costs more than slower


def _quiet_melody_in_a_band(seconds: float = 30.0, level: int = 25, seed: int = 0):
    """A quiet melody (velocity ``level``) under loud four-note chords on every beat and noise
    bursts (drums) on every eighth: (mix, the melody's true notes ``(n, 4)``)."""
    rng = np.random.default_rng(seed)
    mel, acc, t = [], [], 0.5
    while t < seconds - 1:
        d = float(rng.choice([0.25, 0.5, 0.75]))
        mel.append([t, t + d, int(rng.choice([72, 74, 76, 77, 79, 81])), level])
        t += d
    for b in np.arange(0.5, seconds - 1, 0.5):
        acc += [[b, b + 0.45, int(p), 110] for p in rng.choice(np.arange(40, 70), size=4, replace=False)]
    mel = np.array(mel, float)
    y = tones(np.concatenate([mel, np.array(acc, float)]), seconds)
    n = int(0.08 * SR)
    for b in np.arange(0.5, seconds - 1, 0.25):
        i = int(b * SR)
        y[i:i + n] += (0.3 * rng.standard_normal(n) * np.exp(-np.arange(n) / (0.02 * SR))).astype(np.float32)
    return y, mel


def test_a_quiet_part_alone_in_a_band_is_aligned_and_accepted():
    """One quiet part's MIDI against a dense, loud band: every cost sits near 1, and skipping
    audio is cheaper than matching it, so the first global search crammed the whole part into a
    quarter of the recording (tempo ratio 0.28) and the confidence (a share of the null's cost)
    was 0.006. The recording's length is tried as the tempo too, and the evidence counts in the
    spread of eleven transposed nulls: the part lands at the right tempo and is accepted."""
    from bespoke.evaluate import random_warp

    y, mel = _quiet_melody_in_a_band()
    true = pretty_midi.PrettyMIDI(initial_tempo=120)
    inst = pretty_midi.Instrument(program=73)
    inst.notes = [pretty_midi.Note(int(v), int(p), s, e) for s, e, p, v in mel]
    true.instruments = [inst]
    warped = midimod.warp(true, random_warp(30.0, np.random.default_rng(1), first_onset=0.5))
    al = A.align_pm(y, SR, warped)
    est = np.array([n.start for n in midimod.warp(warped, al.time_map).instruments[0].notes])
    assert 0.8 < al.info["tempo_ratio"] < 1.25, al.info["tempo_ratio"]
    assert np.median(np.abs(est - mel[:, 0])) < 0.1
    assert al.confidence >= AlignSettings().min_confidence, al.info["evidence"]


@pytest.mark.parametrize("shift", [3, -5])
def test_transposed_midi_is_moved_back_and_aligned(song, shift):
    """A MIDI written in another key: the aligner finds the shift, moves the notes back to the
    pitch the recording sounds, says so, and aligns as well as the MIDI in key."""
    from bespoke.config import Settings
    from bespoke.stages.align import align_score, transposition_warning

    moved = midimod.warp(song["warped"], lambda t: t, transpose=shift)
    aligned, al = align_score(song["mix"], song["sr"], moved, 0, Settings(), 0.0)
    assert al.info["transpose"] == -shift
    assert al.confidence > AlignSettings().min_confidence
    for a, w in zip(aligned.instruments, song["warped"].instruments):
        assert [n.pitch for n in a.notes] == [n.pitch for n in w.notes]
    assert np.mean(onset_errors(aligned, song["true"]) <= 0.05) >= 0.85
    msg = transposition_warning(al)
    assert f"{abs(shift)} semitones {'above' if shift > 0 else 'below'}" in msg
    # in key, nothing moves and nothing is said
    _, al0 = align_score(song["mix"], song["sr"], song["warped"], 0, Settings(), 0.0)
    assert al0.info["transpose"] == 0 and transposition_warning(al0) is None
    # switched off, the transposed MIDI stays as written (and is refused)
    off = Settings().replace({"align": {"transpose": False}})
    _, al1 = align_score(song["mix"], song["sr"], moved, 0, off, 0.0)
    assert al1.info["transpose"] == 0 and al1.confidence < AlignSettings().min_confidence


@pytest.mark.parametrize("factor", [2.0, 0.5])
def test_half_and_double_tempo_midi_align(song, factor):
    """A MIDI written at half or double the tempo played (its notes twice or half as long): the
    average tempo ratio is measured and the alignment is accepted and right."""
    slow = midimod.warp(song["warped"], lambda t: np.asarray(t) * factor)
    al = A.align_pm(song["mix"], song["sr"], slow)
    assert al.confidence > AlignSettings().min_confidence
    assert abs(np.log(al.info["tempo_ratio"] * factor * 1.12)) < np.log(1.3)   # audio s per score s
    assert np.mean(onset_errors(midimod.warp(slow, al.time_map), song["true"]) <= 0.05) >= 0.85


def test_tempo_rescue_keeps_the_better_tempo_and_maps_the_score_as_given(monkeypatch):
    """A MIDI that does not fit as written is aligned again at half and double its tempo; the
    better fit is kept, its time map said of the score's own times."""
    import bespoke.align.driver as D

    notes = np.array([[0.0, 1.0, 60, 90], [2.0, 3.0, 62, 90], [4.0, 5.0, 64, 90]])
    seen = []

    def fake(mix, sr, n, tuning, settings, feats, lag):
        span = float(n[:, 1].max())
        seen.append(span)
        conf = 0.9 if abs(span - 10.0) < 1e-9 else 0.1        # only the score at double length fits
        tm = A.TimeMap(np.array([0.0, span]), np.array([0.0, 10.0]))
        return A.Alignment(time_map=tm, confidence=conf, path=np.array([[0.0, 0.0], [span, 10.0]]),
                           frame_rate=100.0, info={"tempo_ratio": 1.0})

    monkeypatch.setattr(D, "_align_once", fake)
    monkeypatch.setattr(D, "mixture_features", lambda *a, **k: None)
    al = D.align_notes(np.zeros(10), SR, notes)
    assert seen == [5.0, 2.5, 10.0]
    assert al.confidence == 0.9 and al.info["tempo_scale"] == 2.0
    assert np.allclose(al.time_map(np.array([0.0, 2.5, 5.0])), [0.0, 5.0, 10.0])
    assert np.allclose(al.path[-1], [5.0, 10.0])
    # a MIDI that fits as written is not tried again
    seen.clear()
    al = D.align_notes(np.zeros(10), SR, notes * np.array([2, 2, 1, 1]))
    assert seen == [10.0] and "tempo_scale" not in al.info

