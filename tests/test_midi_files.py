"""MIDI as users have it: type 0 and 1, many tracks, tempo maps, drums, empty tracks, odd programs."""
import json

import mido
import pytest

from bespoke.cli import main
from bespoke.errors import InputError
from bespoke.midi import check_duration, load_midi, parts, select_part

TPB = 480


def notes(track, channel, pitches, beats=1.0, start_gap=0):
    """Append one note per pitch, each ``beats`` long, back to back."""
    first = True
    for p in pitches:
        track.append(mido.Message("note_on", note=p, velocity=80, channel=channel, time=start_gap if first else 0))
        track.append(mido.Message("note_off", note=p, velocity=0, channel=channel, time=int(beats * TPB)))
        first = False


def named(name):
    t = mido.MidiTrack()
    t.append(mido.MetaMessage("track_name", name=name))
    return t


def save(mf, path):
    mf.save(str(path))
    return path


def test_type0_splits_channels_into_parts_and_flags_drums(tmp_path):
    mf = mido.MidiFile(type=0, ticks_per_beat=TPB)
    t = named("Everything")
    t.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(120)))
    t.append(mido.Message("program_change", program=40, channel=0))
    t.append(mido.Message("program_change", program=32, channel=1))
    # interleaved: melody on 0, bass on 1, kick on 9 (the GM drum channel)
    for i in range(4):
        t.append(mido.Message("note_on", note=72 + i, velocity=80, channel=0))
        t.append(mido.Message("note_on", note=36 + i, velocity=80, channel=1))
        t.append(mido.Message("note_on", note=36, velocity=80, channel=9))
        t.append(mido.Message("note_off", note=72 + i, channel=0, time=TPB))
        t.append(mido.Message("note_off", note=36 + i, channel=1))
        t.append(mido.Message("note_off", note=36, channel=9))
    mf.tracks.append(t)
    pm = load_midi(save(mf, tmp_path / "t0.mid"))
    ps = parts(pm)
    assert pm.bespoke_info["type"] == 0
    assert sorted((p.program, p.is_drum, p.n_notes) for p in ps) == [(0, True, 4), (32, False, 4), (40, False, 4)]
    assert all(p.end == pytest.approx(2.0) for p in ps)  # 4 beats at 120 bpm
    assert ps[select_part(pm, "drums")].is_drum
    assert ps[select_part(pm, "violin")].program == 40
    assert ps[select_part(pm, "program:32")].program == 32


def test_tempo_map_is_followed_even_when_it_sits_on_a_later_track(tmp_path):
    for tempo_track in (0, 1):
        mf = mido.MidiFile(type=1, ticks_per_beat=TPB)
        conductor, lead = named("conductor"), named("lead")
        tempos = [mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(120)),
                  mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(60), time=2 * TPB)]
        (conductor if tempo_track == 0 else lead).extend(tempos)
        if tempo_track == 1:  # the tempo events sit between notes: re-time the notes around them
            lead.clear()
            lead.append(mido.MetaMessage("track_name", name="lead"))
            lead.append(tempos[0])
            notes(lead, 0, [60, 62])
            lead.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(60)))
            notes(lead, 0, [64, 65])
        else:
            notes(lead, 0, [60, 62, 64, 65])
        mf.tracks += [conductor, lead]
        pm = load_midi(save(mf, tmp_path / f"tempo{tempo_track}.mid"))
        starts = [n.start for n in pm.instruments[0].notes]
        # two beats at 120 bpm (0.5 s each), then two at 60 bpm (1 s each)
        assert starts == pytest.approx([0.0, 0.5, 1.0, 2.0]), tempo_track
        assert pm.bespoke_info["moved_tempos"] == (2 if tempo_track == 1 else 0)


def test_many_tracks_empty_tracks_and_a_program_change_inside_a_part(tmp_path):
    mf = mido.MidiFile(type=1, ticks_per_beat=TPB)
    mf.tracks.append(named("Song title"))
    for k in range(20):
        t = named(f"Voice {k}")
        ch = k % 9
        t.append(mido.Message("program_change", program=k, channel=ch))
        notes(t, ch, [48 + k, 50 + k], beats=0.5)
        if k == 3:  # switches instrument half way: still one part, with its first program
            t.append(mido.Message("program_change", program=99, channel=ch))
            notes(t, ch, [60, 61], beats=0.5)
        mf.tracks.append(t)
    mf.tracks += [named("Strings (empty)"), mido.MidiTrack()]
    path = save(mf, tmp_path / "many.mid")
    pm = load_midi(path)
    ps = parts(pm)
    assert len(ps) == 20 and [p.name for p in ps] == [f"Voice {k}" for k in range(20)]
    assert ps[3].n_notes == 4 and ps[3].program == 3
    assert pm.bespoke_info["dropped_program_changes"] == 1
    assert pm.bespoke_info["empty_tracks"] == ["Strings (empty)"]
    assert select_part(pm, "17") == 17 and select_part(pm, "#12") == 12 and select_part(pm, "voice 5") == 5
    with pytest.raises(InputError, match="holds no notes"):
        select_part(pm, "Strings (empty)")
    with pytest.raises(InputError, match="names no part"):
        select_part(pm, "tuba solo")
    with pytest.raises(InputError, match="parts #0-#19"):
        select_part(pm, "20")
    with pytest.raises(InputError, match="choose one with target= "):
        select_part(pm, None)


def test_zero_length_and_unfinished_notes_are_dropped(tmp_path):
    mf = mido.MidiFile(type=1, ticks_per_beat=TPB)
    t = named("x")
    t.append(mido.Message("note_on", note=60, velocity=80))
    t.append(mido.Message("note_off", note=60, time=0))        # zero length
    notes(t, 0, [62])
    t.append(mido.Message("note_on", note=64, velocity=80))    # never ends
    mf.tracks.append(t)
    pm = load_midi(save(mf, tmp_path / "odd.mid"))
    assert [n.pitch for n in pm.instruments[0].notes] == [62]


def test_a_midi_without_notes_is_an_input_error(tmp_path):
    mf = mido.MidiFile(type=1, ticks_per_beat=TPB)
    mf.tracks += [named("conductor"), named("piano")]
    with pytest.raises(InputError, match="holds no notes"):
        load_midi(save(mf, tmp_path / "empty.mid"))


def test_truncated_at_any_byte_is_an_input_error(tmp_path):
    mf = mido.MidiFile(type=1, ticks_per_beat=TPB)
    t = named("lead")
    notes(t, 0, [60, 62, 64])
    mf.tracks.append(t)
    data = save(mf, tmp_path / "full.mid").read_bytes()
    for cut in range(len(data)):
        (tmp_path / "cut.mid").write_bytes(data[:cut])
        with pytest.raises(InputError):
            load_midi(tmp_path / "cut.mid")


def test_duration_check_names_both_lengths():
    class FakeNote:
        def __init__(self, s, e):
            self.start, self.end = s, e

    class FakeInst:
        is_drum = False
        notes = [FakeNote(1.0, 2.0), FakeNote(3.0, 61.0)]

    class FakePM:
        instruments = [FakeInst(), FakeInst()]

    class OnePart:
        instruments = [FakeInst()]

    check_duration(FakePM(), (0.0, 45.0), 2.0)          # 60 s of score, 45 s of sound: fine
    with pytest.raises(InputError, match=r"4\.0 times longer .*60\.0 s.*15\.0 s"):
        check_duration(FakePM(), (5.0, 20.0), 2.0)
    with pytest.raises(InputError, match=r"times shorter"):
        check_duration(FakePM(), (0.0, 300.0), 2.0)
    check_duration(FakePM(), (0.0, 300.0), 0.0)         # 0: the check is off (--force)
    # one part that plays a minute of a five-minute song (a solo): the confidence judges it
    check_duration(OnePart(), (0.0, 300.0), 2.0)
    with pytest.raises(InputError, match=r"times longer"):    # but never a part longer than the song
        check_duration(OnePart(), (5.0, 20.0), 2.0)

    class LeadIn:   # two minutes of silence, then 20 s of music (notes 120..140 s)
        instruments = [type("I", (), {"is_drum": False,
                                      "notes": [FakeNote(120.0, 121.0), FakeNote(122.0, 140.0)]})()] * 2

    check_duration(LeadIn(), (0.0, 22.0), 2.0)          # the lead-in does not count
    with pytest.raises(InputError, match=r"times shorter"):
        check_duration(LeadIn(), (0.0, 300.0), 2.0)


def test_info_lists_parts_as_a_table_and_as_json(tmp_path, capsys):
    mf = mido.MidiFile(type=1, ticks_per_beat=TPB)
    mf.tracks.append(named("conductor"))
    for name, prog, ch in (("Violin I", 40, 0), ("Cello", 42, 1), ("Kit", 0, 9)):
        t = named(name)
        t.append(mido.Message("program_change", program=prog, channel=ch))
        notes(t, ch, [60, 64, 67])
        mf.tracks.append(t)
    mf.tracks.append(named("Harp"))
    path = save(mf, tmp_path / "trio.mid")
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "type 1" in out[0] and "3 parts" in out[0]
    assert out[1].split()[:5] == ["#", "name", "program", "notes", "start"]
    assert out[2].split()[:4] == ["0", "Violin", "I", "40"]
    assert "Cello" in out[3] and "42 Cello" in out[3]
    assert "Kit" in out[4] and "drums" in out[4]
    assert "'Harp'" in out[-1]
    assert main(["info", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(p["name"], p["program"], p["n_notes"], p["is_drum"]) for p in data["parts"]] == \
        [("Violin I", 40, 3, False), ("Cello", 42, 3, False), ("Kit", 0, 3, True)]
    assert data["empty_tracks"] == ["Harp"]
