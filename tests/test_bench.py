"""The benchmark's own parts on small made-up signals: the expressive performer, the reference
methods, the settings overrides and the report."""
import numpy as np
import pretty_midi
import pytest

from bench.baselines import oracle_irm, score_mask, score_nmf
from bench.perform import PartScore, ScoreNote, Style, perform
from bench.report import write_report
from bench.worker import apply_overrides
from bespoke.config import Settings
from bespoke.evaluate import si_sdr

SR = 16000


def _chorale():
    """Two voices, 8 quarters, a fermata on quarter 3."""
    up = [ScoreNote(q, 1.0, 72 + (q % 3), q == 3.0, 1.0 if q % 4 == 0 else 0.25) for q in np.arange(8.0)]
    low = [ScoreNote(q, 2.0, 48 + (q % 5), q == 2.0, 0.5) for q in np.arange(0.0, 8.0, 2.0)]
    return [PartScore("upper", 40, up), PartScore("lower", 42, low)]


def test_performance_keeps_the_notes_and_plays_expressively():
    parts = _chorale()
    style = Style(bpm=60.0, seed=3, async_ms=10.0)
    perf, plain = perform(parts, style)
    for part, p, s in zip(parts, perf.instruments, plain.instruments):
        assert len(p.notes) == len(s.notes) == len(part.notes)
        assert sorted(n.pitch for n in p.notes) == sorted(n.pitch for n in s.notes)
        assert p.program == s.program == part.program
    # the plain score: written times at a constant 60 bpm, from 0 s
    up = plain.instruments[0].notes
    assert [n.start for n in up] == pytest.approx(list(np.arange(8.0)))
    assert len({n.velocity for n in up}) == 1
    # the performance: starts after the lead-in, velocities vary, the fermata note is held
    perf_up = perf.instruments[0].notes
    assert min(n.start for n in perf_up) > style.lead_in - 0.05
    assert len({n.velocity for n in perf_up}) > 1
    ioi = np.diff([n.start for n in perf_up])
    assert ioi[3] > 1.3 * np.median(ioi)          # quarter 3 -> 4 spans the held fermata
    # same seed, same performance; another seed, another one
    again, _ = perform(parts, style)
    assert [n.start for n in again.instruments[0].notes] == [n.start for n in perf_up]
    other, _ = perform(parts, Style(bpm=60.0, seed=4))
    assert [n.start for n in other.instruments[0].notes] != [n.start for n in perf_up]


def _tone(f0, start, end, n, amp=0.2):
    t = np.arange(n) / SR
    env = ((t >= start) & (t < end)).astype(float)
    return amp * env * sum(np.sin(2 * np.pi * h * f0 * t) / h for h in range(1, 6))


def _two_parts():
    """Two harmonic voices (MIDI 69 and 57) overlapping in the middle, and their score."""
    n = 3 * SR
    a = _tone(440.0, 0.2, 2.0, n)
    b = _tone(220.0 * 2 ** (0 / 12), 1.0, 2.8, n)
    pm = pretty_midi.PrettyMIDI()
    for pitch, (s, e) in ((69, (0.2, 2.0)), (57, (1.0, 2.8))):
        inst = pretty_midi.Instrument(program=0)
        inst.notes.append(pretty_midi.Note(80, pitch, s, e))
        pm.instruments.append(inst)
    return a, b, pm


def test_oracle_mask_recovers_a_lone_source_and_separates_disjoint_ones():
    grid = Settings().grid
    a, b, _ = _two_parts()
    assert si_sdr(oracle_irm(a, a, SR, grid), a) > 40.0
    mix = a + b
    assert si_sdr(oracle_irm(mix, a, SR, grid), a) > si_sdr(mix, a) + 10.0


@pytest.mark.parametrize("method", ["score-mask", "nmf"])
def test_score_informed_baselines_beat_the_mixture(method):
    grid = Settings().grid
    a, b, pm = _two_parts()
    mix = a + b
    if method == "score-mask":
        est = score_mask(mix, SR, pm, 0, grid)
    else:
        est = score_nmf(mix, SR, pm, [0, 1], grid, n_iter=10)[0]
    assert si_sdr(est, a) > si_sdr(mix, a) + 3.0


def test_nmf_models_the_rest_with_free_components_for_a_single_part():
    grid = Settings().grid
    a, b, pm = _two_parts()
    solo = pretty_midi.PrettyMIDI()
    solo.instruments = [pm.instruments[0]]
    est = score_nmf(a + b, SR, solo, [0], grid, n_iter=10)[0]
    assert est.shape == a.shape and np.all(np.isfinite(est))
    assert si_sdr(est, a) > si_sdr(a + b, a)


def test_settings_overrides_reach_nested_and_frozen_fields():
    default = Settings()
    s = apply_overrides(default, {"synth": {"n_programs": 1}, "train": {"lr": 1e-3}, "grid": {"hop": 256},
                                  "separate": {"mask_power": 2.0}, "model": {"channels": [8, 16]}})
    assert (s.synth.n_programs, s.train.lr, s.grid.hop, s.separate.mask_power, s.model.channels) == \
        (1, 1e-3, 256, 2.0, (8, 16))
    assert default == Settings()  # a new tree; the one given is left alone
    with pytest.raises(SystemExit):
        apply_overrides(s, {"train": {"no_such_knob": 1}})


def test_one_part_midi_holds_the_target_alone_and_leaves_the_score_whole():
    import pretty_midi

    from bench.run import DEFAULT_METHODS, METHODS, only_part

    pm = pretty_midi.PrettyMIDI()
    for prog, pitch in ((40, 76), (60, 64), (0, 48)):
        inst = pretty_midi.Instrument(program=prog)
        inst.notes.append(pretty_midi.Note(90, pitch, 0.5, 1.0))
        pm.instruments.append(inst)
    one = only_part(pm, 1)
    assert [(i.program, i.notes[0].pitch) for i in one.instruments] == [(60, 64)]
    assert len(pm.instruments) == 3
    assert "bespoke-one-part" in METHODS and "bespoke-one-part" not in DEFAULT_METHODS


def test_report_lists_every_method_and_category(tmp_path):
    def row(method, si, category="real", same=False, **kw):
        return {"song": "s", "category": category, "target": 0, "part": "violin", "program": 40,
                "same_instrument": same, "method": method, "duration": 10.0, "si_sdr": si, "sdr": si,
                "si_sdr_improvement": si + 1, "sdr_improvement": si + 1, "si_sdr_independent": si,
                "independent_impl": "x", **kw}
    methods = ["mixture", "oracle", "score-mask", "score-mask@true", "nmf", "nmf@true", "bespoke", "bespoke@true"]
    results = [row(m, float(i)) for i, m in enumerate(methods)]
    doc = {"meta": {"label": "full", "date": "today", "argv": [], "git": {"commit": "abc"}, "machine": {},
                    "budgets": [None], "total_seconds": 60.0, "timbre_overlap": {}},
           "songs": [{"name": "s", "category": "real", "duration": 10.0, "parts": ["violin"], "programs": [40],
                      "source": "made up", "targets": [0], "true_align": [0]}],
           "results": results, "cli_checks": [{"diff": 0.001, "impl": "x"}]}
    out = tmp_path / "R.md"
    write_report(doc, out)
    text = out.read_text()
    for m in methods:
        assert f"| {m} |" in text
    assert "agrees to 0.05 dB" in text
    assert "| real | synthetic | same instrument | all |" in text


def test_band_rows_have_their_own_columns_and_leave_the_chamber_means_alone(tmp_path):
    from bench.report import categories, in_category, mean

    def row(song, category, si, same=False, method="nmf", **kw):
        return {"song": song, "category": category, "target": 0, "part": "p", "program": 40,
                "same_instrument": same, "method": method, "duration": 10.0, "si_sdr": si, "sdr": si,
                "si_sdr_improvement": si, "sdr_improvement": si, **kw}
    rows = [row("a", "real", 1.0), row("b", "synthetic", 3.0, same=True), row("c", "band", 10.0),
            row("c", "band", 20.0, same=True), row("c", "band", 0.0, method="score-mask", error="no drums")]
    chamber = [r for r in rows if r["category"] != "band"]
    assert categories(chamber) == [("real", "real"), ("synthetic", "synthetic"),
                                   ("same-instrument", "same instrument"), ("all", "all")]
    keys = categories(rows)
    assert ("all", "all chamber") in keys and ("band", "band") in keys
    ok = [r for r in rows if "error" not in r]

    def m(cat):
        return mean(r["si_sdr"] for r in ok if r["method"] == "nmf" and in_category(r, cat))
    # the chamber columns are what they were without the band rows
    assert (m("real"), m("synthetic"), m("same-instrument"), m("all")) == (1.0, 3.0, 3.0, 2.0)
    assert (m("band"), m("band-same-instrument")) == (15.0, 20.0)
    doc = {"meta": {"label": "full", "date": "today", "argv": [], "git": {"commit": "abc"}, "machine": {},
                    "budgets": [None], "total_seconds": 60.0, "timbre_overlap": {}},
           "songs": [], "results": rows, "cli_checks": []}
    out = tmp_path / "R.md"
    write_report(doc, out)
    text = out.read_text()
    assert "| real | synthetic | same instrument | all chamber | band | band, same instrument |" in text
    assert "| nmf | 1.00 (+1.00) [1] | 3.00 (+3.00) [1] | 3.00 (+3.00) [1] | 2.00 (+2.00) [2] | " \
           "15.00 (+15.00) [2] | 20.00 (+20.00) [1] |" in text
    assert "| score-mask | — | — | — | — | — | — |" in text   # its only row failed
    assert "1 run(s) failed" in text and "Slakh" in text


def test_band_song_lists_its_parts_in_score_order():
    import pretty_midi

    from bench import songs

    if not (songs.slakh_root() / "Track00001" / "score.mid").is_file():
        pytest.skip("the Slakh excerpts (shared/data/slakh) are absent")
    song = songs.load_song("track00001", log=lambda *_: None)
    truth = pretty_midi.PrettyMIDI(str(song.truth))
    names = [i.name for i in truth.instruments]
    assert song.category == "band" and song.part_names == names
    assert [p.stem for p in song.parts] == [n.split()[0] for n in names]
    assert [song.part_names[i].split()[0] for i in song.targets] == ["S03", "S00", "S08", "S02", "S01"]
    assert song.same_instrument(names.index("S00 Distortion Guitar")) and not song.same_instrument(song.targets[0])
    assert song.drums[names.index("S01 Drums")] and sum(song.drums) == 1
    score = pretty_midi.PrettyMIDI(str(song.score))   # de-aligned: same parts, same notes, other times
    assert [i.name for i in score.instruments] == names
    assert [len(i.notes) for i in score.instruments] == [len(i.notes) for i in truth.instruments]
    assert score.instruments[2].notes[5].start != pytest.approx(truth.instruments[2].notes[5].start, abs=0.05)
    assert songs.load_song("track00001", ["s08", "S01"], log=lambda *_: None).targets == \
        [names.index("S08 Distortion Guitar"), names.index("S01 Drums")]
