"""The command line stays light: help and usage errors load no heavy library (album loops call
bespoke hundreds of times), and usage errors are one line too."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ["torch", "librosa", "numpy", "scipy", "soundfile", "pretty_midi", "mido", "matplotlib", "dtw", "fluidsynth"]


def _loaded_after(code: str) -> list:
    probe = (f"import sys, json\n{code}\n"
             f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [["--help"], ["separate", "--help"], ["batch", "--help"], ["info", "--help"],
                                  ["--version"], ["separate"], ["nosuchcommand"]])
def test_help_and_usage_errors_import_nothing_heavy(argv):
    code = ("import contextlib, io\nfrom bespoke.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
            f"    main({argv!r})")
    assert _loaded_after(code) == []


def test_importing_the_package_and_cli_is_light():
    assert _loaded_after("import bespoke, bespoke.cli, bespoke.errors") == []


@pytest.mark.parametrize("argv,words", [
    (["separate"], "Missing argument 'MIX'"),
    (["separate", "a.wav", "b.mid"], "Missing option '-o'"),
    (["separate", "a.wav", "b.mid", "-o", "x.wav", "--steps", "0"], "--steps"),
    (["frobnicate"], "No such command"),
    (["batch", "m.csv", "--jobs", "0"], "--jobs"),
])
def test_usage_errors_are_one_line(argv, words, capsys):
    from bespoke.cli import main

    rc = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("bespoke: error: ") and words in err[0], err
    assert "--help" in err[0]


def test_seed_help_and_readme_state_the_seeded_pace(capsys):
    """--seed's help and the README say how many steps a second of budget becomes: the figure
    the code uses."""
    import re

    from bespoke.cli import main
    from bespoke.config import TrainSettings

    main(["separate", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    rate = TrainSettings().seeded_rate
    assert rate == int(rate)
    said = re.findall(r"or (\d+) per second of", out)
    readme = re.findall(r"or (\d+) per second of budget", (REPO / "README.md").read_text())
    assert said == [str(int(rate))] and readme == [str(int(rate))], (said, readme)
