"""The CLI's outputs: checked before the work (check_outputs), written together after it
(write_separation): every output appears at once, the stem last, or none does."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional, Sequence

from .errors import OutputError


def _same_file(a, b) -> bool:
    try:
        if Path(a).resolve() == Path(b).resolve():
            return True
        return Path(a).exists() and Path(b).exists() and os.path.samefile(a, b)  # hard links
    except OSError:
        return False


def check_outputs(outputs: Sequence[Optional[str]], inputs: Sequence[Optional[str]], overwrite: bool) -> None:
    """Fail early, before any work, if an output cannot or must not be written: an empty name, an
    input, named twice, a folder, in a missing or unwritable folder, a symbolic link, a device,
    FIFO or socket (never replaced), or a file that exists already (without ``overwrite``).
    None: an output not asked for. The writer checks again as it puts the outputs in place."""
    from .files import check_replaceable, probe_writable

    seen = []
    for out in outputs:
        if out is None:
            continue
        if not str(out):
            raise OutputError("an output file name is empty")
        p = Path(out)
        for i in inputs:
            if i and _same_file(p, i):
                raise OutputError(f"{out}: the output would overwrite an input file")
        for s in seen:
            if _same_file(p, s):
                raise OutputError(f"{out}: named for two outputs")
        seen.append(out)
        if p.is_dir():
            raise OutputError(f"{out}: is a folder; give a file name")
        folder = p.parent if str(p.parent) else Path(".")
        if not folder.is_dir():
            raise OutputError(f"{out}: the folder {folder} does not exist")
        try:
            probe_writable(folder)
        except OutputError as e:
            raise OutputError(f"{out}: {e}") from None
        check_replaceable(p, overwrite)


def prepare_outputs(audio_outputs: Sequence[Optional[str]], others: Sequence[Optional[str]],
                    inputs: Sequence[Optional[str]], overwrite: bool, fmt=None, plot=None) -> None:
    """Before any work: check_outputs on every output, a container for each audio output
    (audio.format_for_path) and, with a plot, its format and matplotlib."""
    from .audio import format_for_path

    check_outputs(list(audio_outputs) + list(others), inputs, overwrite)
    for out in audio_outputs:
        if out:
            format_for_path(out, fmt)
    if plot:
        from .plot import check_figure_path, require_matplotlib

        check_figure_path(plot)
        require_matplotlib()


def plan_audio(outputs: Sequence[Optional[str]], audio, fmt=None, subtype=None) -> None:
    """Each audio output's container must take the input's rate and channel count: know it now."""
    from .audio import plan_output

    for out in outputs:
        if out:
            plan_output(out, audio.sr, audio.n_channels, like=audio.subtype, fmt=fmt, subtype=subtype)


def _report_inputs(audio, pm, mix, midi) -> dict:
    from .midi import parts

    return {"mix": {"path": str(mix), "sr": audio.sr, "channels": audio.n_channels,
                    "seconds": audio.duration, "format": audio.format, "subtype": audio.subtype},
            "midi": {"path": str(midi), "parts": [vars(q) for q in parts(pm)],
                     "file": getattr(pm, "bespoke_info", {})}}


def write_separation(res, audio, pm, index: int, paths: Dict[str, Optional[str]], mix, midi, fmt=None,
                     subtype=None, command=None, overwrite: bool = True) -> dict:
    """Write a separation's outputs: ``paths`` {stem, residual, aligned_midi, plot, report} (None:
    not wanted; stem required), all through temporary files put in place together at the end,
    the stem last (audio.atomic_paths). ``overwrite``: replace regular files there; without it, an
    output that appeared meanwhile (another run) is an OutputError and none is placed.
    Returns what was written, by name (path; for audio, the writer's figures: clipped, peak)."""
    from .files import atomic_paths
    from .midi import parts

    if not paths.get("stem"):
        raise OutputError("the stem needs an output file name")
    order = [paths[k] for k in ("residual", "aligned_midi", "plot", "report", "stem") if paths.get(k)]
    written: dict = {}
    with atomic_paths(order, overwrite=overwrite) as tmps:
        tmp = dict(zip(order, tmps))
        written["stem"] = dict(path=paths["stem"], **res.save(tmp[paths["stem"]], subtype=subtype, fmt=fmt))
        if paths.get("residual"):
            written["residual"] = dict(path=paths["residual"],
                                       **res.save_residual(tmp[paths["residual"]], subtype=subtype, fmt=fmt))
        part = parts(pm)[index]
        program = res.settings.program if res.settings.program is not None else part.program
        write_extras(res, audio, pm, paths, tmp, written, mix, midi, command, paths["stem"],
                      dict(target=dict(vars(part), program_used=program)))
    return written


def write_extras(res, audio, pm, paths, tmp, written, mix, midi, command, first_stem, target: dict) -> None:
    """The aligned MIDI, the plot (of ``first_stem``) and the report (``target``: build_report's
    target or targets) of a separation, to their temporaries ``tmp``."""
    if paths.get("aligned_midi"):
        res.save_aligned_midi(tmp[paths["aligned_midi"]])
        written["aligned_midi"] = {"path": paths["aligned_midi"]}
    if paths.get("plot"):
        from .plot import save_figure, separation_figure

        title = f"{Path(mix).name}: {Path(first_stem).name}"
        save_figure(separation_figure(res, audio.samples, title=title), tmp[paths["plot"]])
        written["plot"] = {"path": paths["plot"]}
    if paths.get("report"):
        from .report import build_report, write_json

        written["report"] = {"path": paths["report"]}
        write_json(build_report(res, inputs=_report_inputs(audio, pm, mix, midi), outputs=written,
                                command=command, **target), tmp[paths["report"]])
