"""Several parts at once (``bespoke separate --all``, ``api.separate(targets=...)``): the stems'
file names, filled in from one template, and their writing, all or none."""
from __future__ import annotations

from typing import Callable, Dict, Optional

import numpy as np

from .errors import OutputError

FIELDS = ("{index}", "{name}")


def safe_name(name: Optional[str], program: int = 0, is_drum: bool = False) -> str:
    """A part's name as a file name may hold it on any system: letters, digits, ``-``, ``_``, ``.``
    and ``+`` kept, anything else a ``_``, at most 60 characters; an unnamed part takes its
    instrument's name ("drums" for a drum part)."""
    import re

    text = str(name or "").strip()
    if not text:
        from .midi import program_name

        text = "drums" if is_drum else program_name(program)
    text = re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("._") or "part"
    return text[:60]


def stem_paths(template: str, names: Dict[int, str], n_parts: int) -> Dict[object, str]:
    """Each stem's path, by part index, and the residual's ("residual"): ``template`` with
    ``{index}`` and ``{name}`` filled (the residual: name "residual", index ``n_parts``, after the
    last part's). An OutputError when the template holds neither or names two stems alike."""
    template = str(template)
    if not any(f in template for f in FIELDS):
        raise OutputError(f"{template}: with several stems the output name needs {{index}} or {{name}} "
                          "(e.g. 'stems/{index}-{name}.flac')")
    fill = {**{i: (str(i), n) for i, n in names.items()}, "residual": (str(n_parts), "residual")}
    paths = {k: template.replace("{index}", i).replace("{name}", n) for k, (i, n) in fill.items()}
    seen: Dict[str, object] = {}
    for k, p in paths.items():
        if p in seen:
            raise OutputError(f"{template}: gives {p} to two stems ({seen[p]} and {k}); add {{index}}")
        seen[p] = k
    return paths


def write_stems(res, audio, pm, paths: Dict[str, Optional[str]], mix, midi, fmt=None, subtype=None, command=None,
                overwrite: bool = True) -> dict:
    """write_separation for several stems (a Result with stems): ``paths`` {stems: the template,
    residual (None: the template's), aligned_midi, plot, report}, all placed together, the stems
    last. Returns what was written: "stems", a list of {index, name, path, clipped, peak, ...} in
    part order, "residual" and the others as write_separation's."""
    from .files import atomic_paths
    from .midi import parts
    from .outputs import write_extras

    where = stem_paths(paths["stems"], res.names, len(pm.instruments))
    if paths.get("residual"):
        where["residual"] = paths["residual"]
    order = [where["residual"]] + [paths[k] for k in ("aligned_midi", "plot", "report") if paths.get(k)] + \
        [where[i] for i in res.stems]
    with atomic_paths(order, overwrite=overwrite) as tmps:
        tmp = dict(zip(order, tmps))
        info = write_set(res, {k: tmp[p] for k, p in where.items()}, subtype=subtype, fmt=fmt)
        written = {"stems": [dict(index=i, name=res.names[i], path=where[i], **info[i]) for i in res.stems],
                   "residual": dict(path=where["residual"], **info["residual"])}
        ps = parts(pm)
        write_extras(res, audio, pm, paths, tmp, written, mix, midi, command, where[next(iter(res.stems))],
                     dict(targets=[vars(ps[i]) for i in res.stems]))
    return written


def write_set(res, paths: Dict[object, str], subtype=None, fmt=None) -> Dict[object, dict]:
    """Write each of ``res.stems`` to ``paths[index]``, then the residual to ``paths["residual"]``
    (audio.save_audio, the input's format unless told), the residual taking up what writing the
    stems lost (their rounding to the sample format, clipping, a lossy codec's error), read back
    from the files: the files then add up to the mixture to one file's rounding, not to the
    stems' and the residual's together. Returns the writer's figures by index and "residual"."""
    from .audio import save_audio

    residual = res.residual.astype(np.float64)
    info: Dict[object, dict] = {}
    for i, stem in res.stems.items():
        info[i] = save_audio(paths[i], stem, res.sr, subtype=subtype, fmt=fmt, like=res.input_subtype)
        residual += stem
        residual -= _read_back(paths[i], stem.shape)
    info["residual"] = save_audio(paths["residual"], residual.astype(np.float32), res.sr, subtype=subtype, fmt=fmt,
                                  like=res.input_subtype)
    return info


def _read_back(path, shape) -> np.ndarray:
    """The audio file at ``path`` as float64 ``shape`` ``(n_channels, n_samples)`` (a codec's extra
    samples cut, missing ones zero)."""
    import soundfile as sf

    x = sf.read(str(path), dtype="float64", always_2d=True)[0].T
    out = np.zeros(shape, np.float64)
    n = min(shape[1], x.shape[1])
    out[:, :n] = x[:x.shape[0], :n]
    return out




def separate_several(mix, midi, template: str, targets, run_opts: dict, outs: Dict[str, Optional[str]], fmt=None,
                     subtype=None, overwrite: bool = False, command=None,
                     check_stop: Callable[[], None] = lambda: None):
    """What ``bespoke separate --all`` (or several --target) does: the outputs checked before any
    work (their names come from the MIDI's parts), api.separate with ``targets`` and ``run_opts``,
    then every stem, the residual and ``outs`` (residual: its path instead of the template's;
    aligned_midi, plot, report) written together. Returns (Result, what write_stems wrote)."""
    from . import api, options
    from .audio import load_audio
    from .config import Settings
    from .midi import load_midi, select_parts
    from .outputs import plan_audio, prepare_outputs

    pm = load_midi(midi)
    idxs = select_parts(pm, targets, source=midi)
    insts = pm.instruments
    where = stem_paths(template, {i: safe_name(insts[i].name, insts[i].program, insts[i].is_drum) for i in idxs},
                       len(insts))
    if outs.get("residual"):
        where["residual"] = outs["residual"]
    audio_outs = [where[i] for i in idxs] + [where["residual"]]
    prepare_outputs(audio_outs, [outs.get(k) for k in ("aligned_midi", "report", "plot")],
                    [mix, midi, run_opts.get("soundfont")], overwrite, fmt, outs.get("plot"))
    audio = load_audio(mix)
    plan_audio(audio_outs, audio, fmt, subtype)
    settings = options.apply(Settings(), plot=bool(outs.get("plot")))
    res = api.separate(audio, pm, targets=idxs, settings=settings, **run_opts)
    check_stop()
    written = write_stems(res, audio, pm, dict(outs, stems=template), mix=mix, midi=midi, fmt=fmt, subtype=subtype,
                          command=command, overwrite=overwrite)
    return res, written


def stems_line(written: dict) -> str:
    """'wrote 3 stems (#0 violin stems/0-violin.flac, ...) and the residual stems/3-residual.flac'."""
    stems = ", ".join(f"#{w['index']} {w['name']} {w['path']}" for w in written["stems"])
    return f"wrote {len(written['stems'])} stems ({stems}) and the residual {written['residual']['path']}"
