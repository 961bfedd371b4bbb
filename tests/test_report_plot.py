"""The report and the picture, built from a hand-made Result (no training here)."""
import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pretty_midi
import pytest

from bespoke.align import Alignment, TimeMap
from bespoke.config import Settings
from bespoke.report import build_report, jsonable, write_json
from bespoke.train import TrainResult


def fake_result(sr=16000, seconds=4.0, with_alignment=True):
    rng = np.random.default_rng(0)
    n = int(sr * seconds)
    mix = 0.1 * rng.standard_normal((2, n)).astype(np.float32)
    pm = pretty_midi.PrettyMIDI()
    for prog, pitches in ((40, [72, 74, 76]), (0, [48, 52])):
        inst = pretty_midi.Instrument(program=prog)
        for k, p in enumerate(pitches):
            inst.notes.append(pretty_midi.Note(80, p, 0.5 + k, 1.3 + k))
        pm.instruments.append(inst)
    al = None
    if with_alignment:
        rate = 20.0
        q = np.arange(70)
        path = np.stack([q, np.minimum((q * 1.1).astype(int), 79)], axis=1)
        al = Alignment(time_map=TimeMap(np.array([0.0, 3.5]), np.array([0.0, 3.85])), confidence=0.63,
                       path=path / rate, frame_rate=rate, cost=rng.random((70, 80)).astype(np.float32),
                       cost_extent=(0.0, 3.5, 0.0, 4.0), coarse_path=path / rate)
    s = dataclasses.replace(Settings(), seed=3)
    return SimpleNamespace(stem=0.5 * mix, residual=0.5 * mix, sr=sr, aligned_midi=pm, target_index=0, alignment=al,
                           train=TrainResult(steps=30, seconds=1.5, device="cpu", losses=list(np.linspace(1, 0.2, 30))),
                           timings={"load": 0.1, "align": 0.2, "train": 1.5}, settings=s,
                           warnings=["something odd"]), mix


def test_report_holds_what_the_issue_asks_for(tmp_path):
    res, _ = fake_result()
    rep = build_report(res, inputs={"mix": {"path": "m.wav", "sr": np.int64(16000)}},
                       outputs={"stem": {"path": "o.wav"}},
                       command=["bespoke", "separate", "m.wav"], target={"index": 0, "name": "lead"})
    write_json(rep, tmp_path / "r.json")
    back = json.loads((tmp_path / "r.json").read_text())
    assert back["versions"]["bespoke"] and back["versions"]["torch"] and back["versions"]["numpy"]
    assert back["device"]["device"] == "cpu" and back["seed"] == 3
    assert back["timings"]["train"] == 1.5 and back["timings"]["total"] == pytest.approx(1.8)
    assert back["alignment"]["confidence"] == 0.63
    assert back["alignment"]["time_map"] == {"score_times": [0.0, 3.5], "audio_times": [0.0, 3.85]}
    assert back["training"]["steps"] == 30 and len(back["training"]["loss_curve"]) == 30
    assert back["training"]["loss_curve"][0] == [1, 1.0]
    assert back["settings"]["train"]["batch_size"] == Settings().train.batch_size
    assert back["settings"]["align"]["min_confidence"] == Settings().align.min_confidence
    assert back["inputs"]["mix"]["sr"] == 16000 and back["warnings"] == ["something odd"]
    assert back["command"] == ["bespoke", "separate", "m.wav"]
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_jsonable_makes_plain_values():
    out = jsonable({"a": np.float32(1.5), "b": np.arange(3), "c": (1, 2), "d": float("nan"), 4: None})
    assert out == {"a": 1.5, "b": [0, 1, 2], "c": [1, 2], "d": None, "4": None}
    json.dumps(out, allow_nan=False)


def test_separation_figure_draws_the_alignment_notes_and_loss(tmp_path):
    pytest.importorskip("matplotlib")
    from bespoke.plot import save_figure, separation_figure

    res, mix = fake_result()
    fig = separation_figure(res, mix, title="song")
    ax_al, ax_loss, ax_mix, ax_est = fig.axes[:4]
    path_line = [ln for ln in ax_al.get_lines() if ln.get_label() == "DTW path"][0]
    assert np.allclose(path_line.get_xdata(), res.alignment.path[:, 1])   # seconds
    assert np.allclose(path_line.get_ydata(), res.alignment.path[:, 0])
    assert "0.63" in ax_al.get_title(loc="left")
    assert len(ax_al.images) == 1                                  # the cost matrix
    assert len(ax_loss.get_lines()[0].get_ydata()) == 30
    # the target's 3 notes on both spectrograms; the other part's 2 on the mixture only
    mix_boxes = [c for c in ax_mix.collections]
    assert sorted(len(c.get_paths()) for c in mix_boxes) == [2, 3]
    assert [len(c.get_paths()) for c in ax_est.collections] == [3]
    save_figure(fig, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["p.png"]


def test_figure_without_alignment(tmp_path):
    pytest.importorskip("matplotlib")
    from bespoke.plot import save_figure, separation_figure

    res, mix = fake_result(with_alignment=False)
    fig = separation_figure(res, mix)
    assert "no-align" in fig.axes[0].texts[0].get_text()
    save_figure(fig, tmp_path / "p.svg")
    assert b"<svg" in (tmp_path / "p.svg").read_bytes()[:500]


def test_pitch_spectrogram_puts_a_tone_on_its_row():
    from bespoke.plot import pitch_spectrogram

    for sr in (8000, 44100, 96000):
        t = np.arange(sr) / sr
        y = np.sin(2 * np.pi * 440.0 * t)                          # A4 = MIDI 69
        S, times, midi = pitch_spectrogram(y, sr)
        assert S.shape == (len(midi), len(times)) and times[-1] == pytest.approx(1.0, abs=0.05)
        assert midi[np.argmax(S[:, len(times) // 2])] == 69
