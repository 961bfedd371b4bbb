"""The shape of the code: one settings tree, one option list, typed stages that can be re-run
from a saved state, an API that leaves its arguments alone, and small modules."""
import ast
import copy
import dataclasses
import importlib
import inspect
import pkgutil
from pathlib import Path

import numpy as np
import pytest

import bespoke
from bespoke import api, options
from bespoke.config import Settings, from_dict, override
from bespoke.errors import AlignmentError, InputError

PKG = Path(bespoke.__file__).parent


def test_settings_are_one_frozen_tree_changed_only_by_copies():
    s = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.seed = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.train.budget = 5.0
    t = override(s, {"train": {"steps": 7}, "align": {"null_shifts": [5, 7]}, "seed": 1})
    assert (t.train.steps, t.align.null_shifts, t.seed) == (7, (5, 7), 1)
    assert s == Settings() and s.train.steps is None
    assert from_dict(t.to_dict()) == t
    with pytest.raises(ValueError, match="no field 'stepz'"):
        override(s, {"train": {"stepz": 1}})


def test_no_settings_are_defined_outside_the_tree():
    """Every dataclass of knobs (a *Settings, *Params or Recipe class) lives in bespoke/config/."""
    found = []
    for path in PKG.rglob("*.py"):
        if "config" in path.relative_to(PKG).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and (node.name.endswith(("Settings", "Params")) or node.name == "Recipe"):
                found.append(f"{path.name}:{node.name}")
    assert found == []


@pytest.mark.slow
def test_the_api_never_changes_what_it_is_given(tiny_song, monkeypatch):
    """A Settings passed in arrives with the options applied, and is itself unchanged (a device
    the caller set is kept); the MIDI object passed in keeps its notes."""
    from bespoke.midi import load_midi

    seen = {}
    monkeypatch.setattr(api, "run", lambda audio, pm, idx, s, **kw: seen.update(settings=s, pm=pm))
    given = override(Settings(), {"device": "cuda", "train": {"budget": 5.0}, "align": {"min_confidence": 0.3}})
    before = copy.deepcopy(given)
    api.separate(str(tiny_song / "mix.wav"), str(tiny_song / "score.mid"), target=0, steps=4, program="violin",
                 force=True, settings=given)
    assert given == before
    got = seen["settings"]
    assert (got.device, got.train.budget, got.train.steps, got.program) == ("cuda", 5.0, 4, 40)
    assert (got.align.min_confidence, got.align.max_duration_ratio) == (0.0, 0.0)

    pm = load_midi(str(tiny_song / "score.mid"))
    notes = [(n.start, n.end, n.pitch) for i in pm.instruments for n in i.notes]
    monkeypatch.undo()
    api.separate(str(tiny_song / "mix.wav"), pm, target=0, steps=1, seed=0, device="cpu")
    assert [(n.start, n.end, n.pitch) for i in pm.instruments for n in i.notes] == notes


def test_bespoke_separate_stays_the_function_whatever_is_imported():
    """No submodule shadows the top-level function (an import of bespoke.X sets bespoke.X)."""
    for m in pkgutil.walk_packages([str(PKG)], "bespoke."):
        if m.name != "bespoke.__main__":
            importlib.import_module(m.name)
    assert inspect.isfunction(bespoke.separate)


def test_cli_api_and_batch_take_their_options_from_one_list():
    from bespoke.batch import OPTIONS
    from bespoke.cli import cli

    names = {o.name for o in options.SEPARATE}
    params = {p.name for p in cli.commands["separate"].params}
    # --all is the CLI's alone: it makes -o a template of several files, which a batch row's out is not
    assert params == names | {"mix", "midi", "output", "overwrite", "quiet", "all_parts"}
    assert set(OPTIONS) == names
    keywords = set(inspect.signature(api.separate).parameters)
    assert {o.keyword for o in options.SEPARATE if not o.output} <= keywords
    for o in options.SEPARATE:  # each option's setting is a field of the tree
        if o.setting:
            node = Settings()
            for part in o.setting.split("."):
                node = getattr(node, part)


def test_errors_name_options_as_the_reader_writes_them():
    e = AlignmentError("confidence too low («force» to go on)")
    assert str(e) == "confidence too low (force=True to go on)"
    assert e.cli_message() == "confidence too low (--force to go on)"
    e = InputError("«target 9»: no such part; try «device cpu» or «no_align»")
    assert str(e) == "target='9': no such part; try device='cpu' or align=False"
    assert e.cli_message() == "--target 9: no such part; try --device cpu or --no-align"


@pytest.mark.slow
def test_a_stage_runs_again_from_a_saved_state(tiny_song, tmp_path):
    """Stop after the NMF, save, load, go on: the same stem as one run; forget the training and
    it is done again, to the same stem."""
    from bespoke.audio import load_audio
    from bespoke.midi import load_midi
    from bespoke.pipeline import RunState, run

    s = override(Settings(), {"seed": 0, "device": "cpu", "train": {"steps": 2}, "align": {"min_confidence": 0.0}})
    audio, pm = load_audio(str(tiny_song / "mix.wav")), load_midi(str(tiny_song / "score.mid"))
    whole = run(audio, pm, 0, s)
    state = run(audio, pm, 0, s, until="nmf")
    assert isinstance(state, RunState) and {"aligned", "first_pass", "estimates"} <= set(state.values)
    assert "trained" not in state.values
    state.save(tmp_path / "song.state")
    resumed = run(audio, pm, 0, s, state=RunState.load(tmp_path / "song.state"), keep_values=True)
    np.testing.assert_array_equal(resumed.stem, whole.stem)
    assert resumed.timings["nmf"] == state.timings["nmf"]  # not done again
    with pytest.raises(InputError, match="not a saved bespoke run"):
        (tmp_path / "junk").write_bytes(b"not a pickle")
        RunState.load(tmp_path / "junk")
    with pytest.raises(ValueError, match="no stage"):
        run(audio, pm, 0, s, until="polish")


def test_modules_and_functions_stay_small():
    """No module over 400 lines and no function over 60 (the architecture's promise)."""
    big = []
    for path in PKG.rglob("*.py"):
        src = path.read_text()
        if src.count("\n") > 400:
            big.append(f"{path.name}: {src.count(chr(10))} lines")
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                big.append(f"{path.name}:{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert big == []

