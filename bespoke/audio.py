"""Audio in and out: formats, channels, sample rates, clipping, atomic writes.

Arrays are float32 with shape ``(n_channels, n_samples)`` unless said otherwise.
This is the one place that writes audio: it owns clipping and formats, and it
writes to a temporary file beside the target and renames it, so an interrupted
run never leaves a half-written file.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from .errors import InputError, OutputError

MIN_RATE = 8000
MAX_RATE = 192000


@dataclass
class Audio:
    """A loaded recording.

    samples: float32 array ``(n_channels, n_samples)`` in [-1, 1] (PCM sources).
    sr: sample rate in Hz.
    subtype / format: the file's libsndfile subtype and container (``PCM_16``, ``WAV``),
    so that outputs can mirror the input.
    """

    samples: np.ndarray
    sr: int
    subtype: Optional[str] = None
    format: Optional[str] = None

    @property
    def n_channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def n_samples(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration(self) -> float:
        return self.n_samples / float(self.sr)

    def mono(self) -> np.ndarray:
        """Channel average, shape ``(n_samples,)``."""
        return self.samples.mean(axis=0)


def _sf():
    try:
        import soundfile
    except (ImportError, OSError) as e:  # libsndfile missing
        from .errors import DependencyError

        raise DependencyError(f"soundfile/libsndfile is not usable: {e}") from e
    return soundfile


def load_audio(path, check_silence: bool = True) -> Audio:
    """Read an audio file (WAV, FLAC, OGG, MP3, AIFF, ...) as float32 ``(n_channels, n_samples)``.

    Raises InputError with a one-line reason for missing, unreadable, empty,
    silent or non-finite audio.
    """
    sf = _sf()
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a folder, not an audio file")
    if not os.access(p, os.R_OK):
        raise InputError(f"{p}: cannot read the file (permission denied)")
    try:
        info = sf.info(str(p))
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile's messages are specific but long
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"{p}: not a readable audio file ({msg})") from e
    if data.size == 0 or data.shape[0] == 0:
        raise InputError(f"{p}: the audio is empty (0 samples)")
    if not (MIN_RATE <= sr <= MAX_RATE):
        raise InputError(f"{p}: unsupported sample rate {sr} Hz (expected {MIN_RATE}-{MAX_RATE} Hz)")
    samples = np.ascontiguousarray(data.T)
    if not np.all(np.isfinite(samples)):
        raise InputError(f"{p}: the audio holds NaN or infinite samples")
    if check_silence and float(np.max(np.abs(samples))) < 1e-6:
        raise InputError(f"{p}: the audio is silent")
    return Audio(samples=samples, sr=int(sr), subtype=info.subtype, format=info.format)


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample along the last axis (any leading shape)."""
    if int(sr_in) == int(sr_out):
        return np.asarray(x, dtype=np.float32)
    import librosa

    return librosa.resample(np.asarray(x, dtype=np.float32), orig_sr=sr_in, target_sr=sr_out,
                            res_type="soxr_hq").astype(np.float32)


def to_mono(x: np.ndarray) -> np.ndarray:
    """``(n_channels, n_samples)`` or ``(n_samples,)`` -> ``(n_samples,)``."""
    x = np.asarray(x, dtype=np.float32)
    return x if x.ndim == 1 else x.mean(axis=0)


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Cut or zero-pad the last axis to ``n`` samples."""
    if x.shape[-1] >= n:
        return x[..., :n]
    pad = [(0, 0)] * (x.ndim - 1) + [(0, n - x.shape[-1])]
    return np.pad(x, pad)


_EXT_FORMAT = {
    ".wav": "WAV", ".wave": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".oga": "OGG",
    ".mp3": "MP3", ".aif": "AIFF", ".aiff": "AIFF", ".au": "AU", ".caf": "CAF",
    ".w64": "W64", ".rf64": "RF64",
}
_FLOAT_SUBTYPES = {"FLOAT", "DOUBLE", "VORBIS", "OPUS", "MPEG_LAYER_III", "MPEG_LAYER_II", "MPEG_LAYER_I"}


def format_for_path(path, fmt: Optional[str] = None) -> str:
    """The container for an output path: ``fmt`` if given, else from the extension."""
    sf = _sf()
    if fmt:
        fmt = fmt.upper()
        if fmt not in sf.available_formats():
            raise OutputError(f"unknown audio format {fmt!r} (choose from {', '.join(sorted(_EXT_FORMAT.values()))})")
        return fmt
    ext = Path(path).suffix.lower()
    if ext not in _EXT_FORMAT:
        raise OutputError(f"{path}: cannot tell the audio format from the extension {ext or '(none)'!r}; "
                          f"use .wav, .flac, .ogg, .mp3 or .aiff (or --format)")
    return _EXT_FORMAT[ext]


def choose_subtype(fmt: str, like: Optional[str] = None, subtype: Optional[str] = None) -> str:
    """The subtype to write: ``subtype`` if given; else the input's (``like``) where the
    container takes it; else the container's default."""
    sf = _sf()
    if subtype:
        subtype = subtype.upper()
        if not sf.check_format(fmt, subtype):
            raise OutputError(f"format {fmt} cannot hold subtype {subtype} "
                              f"(it takes {', '.join(sf.available_subtypes(fmt))})")
        return subtype
    if like and sf.check_format(fmt, like):
        return like
    if like and like.startswith("PCM_"):  # e.g. PCM_16 WAV in -> FLAC out keeps 16 bit
        for cand in (like, "PCM_24", "PCM_16"):
            if sf.check_format(fmt, cand):
                return cand
    return sf.default_subtype(fmt)


@contextlib.contextmanager
def atomic_path(path, suffix: Optional[str] = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    On any error (or Ctrl-C) the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.exists():
        raise OutputError(f"{path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"{path}: cannot write in {folder} (permission denied)")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix, dir=str(folder))
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def save_audio(path, samples: np.ndarray, sr: int, subtype: Optional[str] = None,
               fmt: Optional[str] = None, like: Optional[str] = None) -> dict:
    """Write ``samples`` ``(n_channels, n_samples)`` atomically.

    Integer and lossy subtypes clip to [-1, 1]; the count of clipped samples is returned
    (``{"clipped": n, "peak": p, "subtype": s, "format": f}``) so callers can warn.
    """
    sf = _sf()
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]
    if not np.all(np.isfinite(x)):
        raise OutputError(f"{path}: refusing to write NaN or infinite samples (a bug; please report it)")
    fmt = format_for_path(path, fmt)
    sub = choose_subtype(fmt, like, subtype)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    clipped = 0
    if sub not in ("FLOAT", "DOUBLE"):
        clipped = int(np.count_nonzero(np.abs(x) > 1.0))
        if clipped:
            x = np.clip(x, -1.0, 1.0)
    if fmt == "MP3" and x.shape[0] > 2:
        raise OutputError(f"{path}: MP3 holds at most 2 channels; write WAV or FLAC for {x.shape[0]} channels")
    try:
        with atomic_path(path) as tmp:
            sf.write(str(tmp), x.T, int(sr), subtype=sub, format=fmt)
    except OutputError:
        raise
    except (OSError, RuntimeError, ValueError, TypeError) as e:
        raise OutputError(f"{path}: could not write audio ({str(e).splitlines()[0] if str(e) else e})") from e
    return {"clipped": clipped, "peak": peak, "subtype": sub, "format": fmt}
