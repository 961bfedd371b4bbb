"""excerpts.Excerpts: a long song trains on excerpts of it; a short one on all of it."""
import numpy as np
import pretty_midi
import pytest

from bespoke.excerpts import Excerpts

SR = 1000


def notes_every(period: float, total: float) -> np.ndarray:
    starts = np.arange(0.0, total, period)
    return np.stack([starts, starts + 0.5 * period, np.full_like(starts, 60), np.full_like(starts, 90)], axis=1)


def test_short_song_is_used_whole():
    notes = notes_every(1.0, 100.0)
    exc = Excerpts.choose(100 * SR, SR, notes, max_s=300, excerpt_s=60, rng=np.random.default_rng(0))
    assert exc.whole
    x = np.arange(100 * SR, dtype=np.float32)
    assert exc.cut(x) is x
    assert exc.notes(notes) is notes


def test_long_song_excerpts_cover_it_and_keep_the_timeline():
    total = 1000.0
    notes = notes_every(2.0, total)
    exc = Excerpts.choose(int(total * SR), SR, notes, max_s=300, excerpt_s=60, rng=np.random.default_rng(1))
    assert not exc.whole and len(exc.spans) == 5
    spans = exc.spans
    assert np.all(spans[:, 1] - spans[:, 0] == 60 * SR)
    assert np.all(spans[1:, 0] >= spans[:-1, 1])          # in order, no overlap
    assert spans[0, 0] < total * SR / 5 and spans[-1, 1] > total * SR * 4 / 5  # spread over the song
    x = np.arange(int(total * SR), dtype=np.float64)       # each sample's own index
    y = exc.cut(x)
    assert len(y) == 300 * SR
    # a note moved to the excerpts' timeline starts where its sample landed
    out = exc.notes(notes)
    assert len(out) > 0 and out[:, 1].max() <= 300 + 1e-9 and np.all(out[:, 1] > out[:, 0])
    for s, e, p, v in out:
        src = y[min(int(round(s * SR)), len(y) - 1)] / SR
        assert np.any(np.isclose(notes[:, 0], src, atol=2.0 / SR) | ((notes[:, 0] < src) & (notes[:, 1] > src)))


def test_instrument_matches_notes():
    total = 700.0
    notes = notes_every(3.0, total)
    inst = pretty_midi.Instrument(program=40)
    inst.notes = [pretty_midi.Note(int(v), int(p), float(s), float(e)) for s, e, p, v in notes]
    inst.pitch_bends = [pretty_midi.PitchBend(100, float(t)) for t in np.arange(0, total, 7.0)]
    exc = Excerpts.choose(int(total * SR), SR, notes, max_s=120, excerpt_s=30, rng=np.random.default_rng(2))
    new = exc.instrument(inst)
    arr = np.array([[n.start, n.end] for n in new.notes])
    np.testing.assert_allclose(arr, exc.notes(notes)[:, :2])
    assert all(0 <= b.time < 120 for b in new.pitch_bends) and len(new.pitch_bends) > 0


@pytest.mark.slow
def test_pipeline_trains_on_excerpts_and_separates_the_whole_song(tiny_song, monkeypatch):
    """With a tiny max_song_s the training set holds excerpts only; the stem still covers the song."""
    import soundfile as sf

    from bespoke import api, synth
    from bespoke.config import Settings, override

    seen = {}
    real = synth.render_targets

    def spy(target_inst, programs, n_samples, *a, **kw):
        seen["n_samples"] = n_samples
        return real(target_inst, programs, n_samples, *a, **kw)

    monkeypatch.setattr(synth, "render_targets", spy)
    s = override(Settings(), {"train": {"max_song_s": 4.0, "excerpt_s": 2.0}, "synth": {"n_renders": 1}})
    res = api.separate(str(tiny_song / "mix.wav"), str(tiny_song / "score.mid"), target=0, steps=2, seed=0,
                       device="cpu", settings=s, force=True)
    n = sf.info(str(tiny_song / "mix.wav")).frames
    assert seen["n_samples"] == 2 * int(round(2.0 * s.grid.sr))
    assert res.stem.shape == (1, n) and np.all(np.isfinite(res.stem))
