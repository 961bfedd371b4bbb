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
from typing import Iterator, List, Optional, Sequence

import numpy as np

from .errors import InputError, OutputError

MIN_RATE = 8000
MAX_RATE = 192000
MAX_SECONDS = 4 * 3600   # longer recordings are refused (split them)
SILENCE = 1e-6           # peak below this: silent


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

    @classmethod
    def from_array(cls, x, sr: int, name: str = "the audio", check_silence: bool = True) -> "Audio":
        """An Audio from an array ``(n_channels, n_samples)`` or ``(n_samples,)``, checked like a
        loaded file (rate, emptiness, NaN/inf, silence)."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2:
            raise InputError(f"{name}: expected an array shaped (n_channels, n_samples), got {x.shape}")
        if x.shape[0] > x.shape[1] > 0:
            raise InputError(f"{name}: an array shaped {x.shape} has more channels than samples; "
                             "pass (n_channels, n_samples)")
        _check_samples(x, int(sr), name, check_silence)
        return cls(samples=np.ascontiguousarray(x), sr=int(sr))


def _check_samples(samples: np.ndarray, sr: int, name, check_silence: bool) -> None:
    if not (MIN_RATE <= sr <= MAX_RATE):
        raise InputError(f"{name}: unsupported sample rate {sr} Hz (expected {MIN_RATE}-{MAX_RATE} Hz)")
    if samples.size == 0:
        raise InputError(f"{name}: the audio is empty (0 samples)")
    if not np.all(np.isfinite(samples)):
        raise InputError(f"{name}: the audio holds NaN or infinite samples")
    if check_silence and float(np.max(np.abs(samples))) < SILENCE:
        raise InputError(f"{name}: the audio is silent")


def _sf():
    try:
        import soundfile
    except (ImportError, OSError) as e:  # libsndfile missing
        from .errors import DependencyError

        raise DependencyError(f"soundfile/libsndfile is not usable: {e}") from e
    return soundfile


_AUDIO_MAGIC = (b"RIFF", b"RF64", b"FORM", b"fLaC", b"OggS", b"ID3", b".snd", b"caff")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _check_readable(p: Path, what: str) -> None:
    """Missing, a folder, or unreadable: an InputError naming the file."""
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a folder, not {what}")
    try:
        with open(p, "rb") as f:
            f.read(1)
    except PermissionError:
        raise InputError(f"{p}: cannot read the file (permission denied)") from None
    except OSError as e:
        raise InputError(f"{p}: cannot read the file ({e.strerror or e})") from None


def load_audio(path, check_silence: bool = True) -> Audio:
    """Read an audio file (WAV, FLAC, OGG, MP3, AIFF, ...) as float32 ``(n_channels, n_samples)``.

    Any channel count, 8-192 kHz, integer or float samples. Raises InputError with a
    one-line reason for missing, unreadable, empty, silent, too long or non-finite audio,
    and for anything libsndfile cannot decode.
    """
    sf = _sf()
    p = Path(path)
    _check_readable(p, "an audio file")
    try:
        with open(p, "rb") as f:
            head = f.read(16)
    except OSError:
        head = b""
    if not head:
        raise InputError(f"{p}: the file is empty (0 bytes)")
    try:
        info = sf.info(str(p))
    except Exception as e:  # libsndfile's messages are specific but long
        hint = ""
        if head.startswith(b"MThd"):
            hint = "; it looks like a MIDI file: give the recording first, then the MIDI"
        raise InputError(f"{p}: not a readable audio file ({_first_line(e)}){hint}") from None
    sr = int(info.samplerate)
    if not (MIN_RATE <= sr <= MAX_RATE):
        raise InputError(f"{p}: unsupported sample rate {sr} Hz (expected {MIN_RATE}-{MAX_RATE} Hz)")
    if info.channels < 1:
        raise InputError(f"{p}: the audio has no channels")
    if info.frames > MAX_SECONDS * sr:
        raise InputError(f"{p}: {info.frames / sr / 3600:.1f} hours of audio is more than one run can take "
                         f"({MAX_SECONDS // 3600} h); split the recording")
    try:
        data, sr_read = sf.read(str(p), dtype="float32", always_2d=True)
    except MemoryError:
        raise InputError(f"{p}: not enough memory to read the audio") from None
    except Exception as e:
        raise InputError(f"{p}: not a readable audio file ({_first_line(e)})") from None
    samples = np.ascontiguousarray(data.T)
    _check_samples(samples, int(sr_read), p, check_silence)
    return Audio(samples=samples, sr=int(sr_read), subtype=info.subtype, format=info.format)


def active_span(y: np.ndarray, sr: int, floor_db: float = -45.0, frame_s: float = 0.05) -> tuple:
    """(start, end) seconds of the part of ``y`` ``(n_samples,)`` that holds sound: the first and
    last 50 ms frames within ``floor_db`` of the loudest one. (0, 0) for silence."""
    y = np.asarray(y, dtype=np.float32)
    n = max(int(frame_s * sr), 1)
    k = len(y) // n
    if k == 0:
        return (0.0, len(y) / float(sr))
    rms = np.sqrt(np.mean(y[: k * n].reshape(k, n) ** 2, axis=1))
    top = float(rms.max())
    if top <= SILENCE:
        return (0.0, 0.0)
    on = np.flatnonzero(rms >= top * 10 ** (floor_db / 20.0))
    return (float(on[0] * n) / sr, float((on[-1] + 1) * n) / sr)


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
    ".wav": "WAV", ".wave": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".oga": "OGG", ".opus": "OGG",
    ".mp3": "MP3", ".aif": "AIFF", ".aiff": "AIFF", ".au": "AU", ".caf": "CAF",
    ".w64": "W64", ".rf64": "RF64",
}
_PCM_BITS = {"PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32}
_FLOAT_SUBTYPES = {"FLOAT", "DOUBLE"}
_LOSSY_SUBTYPES = {"VORBIS", "OPUS", "MPEG_LAYER_III", "MPEG_LAYER_II", "MPEG_LAYER_I"}
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


def format_for_path(path, fmt: Optional[str] = None) -> str:
    """The container for an output path: ``fmt`` if given, else from the extension."""
    sf = _sf()
    if fmt:
        fmt = fmt.upper()
        if fmt not in sf.available_formats():
            raise OutputError(f"unknown audio format {fmt!r} (choose from WAV, FLAC, OGG, MP3, AIFF)")
        return fmt
    ext = Path(path).suffix.lower()
    if ext not in _EXT_FORMAT:
        raise OutputError(f"{path}: cannot tell the audio format from the extension {ext or '(none)'!r}; "
                          f"use .wav, .flac, .ogg, .mp3 or .aiff (or «format»)")
    return _EXT_FORMAT[ext]


def choose_subtype(fmt: str, like: Optional[str] = None, subtype: Optional[str] = None) -> str:
    """The subtype to write into container ``fmt``.

    ``subtype`` if given (it must fit the container). Else the input's subtype ``like`` where the
    container takes it; else the nearest the container has: integer PCM keeps at least its bit
    depth where it can (PCM_32 into FLAC: PCM_24), float becomes the deepest integer PCM
    (FLOAT WAV into FLAC: PCM_24); else (lossy sources, lossy containers) the container's default.
    """
    sf = _sf()
    fmt = fmt.upper()
    if subtype:
        subtype = subtype.upper()
        if subtype not in sf.available_subtypes() or not sf.check_format(fmt, subtype):
            raise OutputError(f"format {fmt} cannot hold subtype {subtype} "
                              f"(it takes {', '.join(sf.available_subtypes(fmt))})")
        return subtype
    like = like.upper() if like else None
    if like and like in sf.available_subtypes() and sf.check_format(fmt, like):
        return like
    pcm = sorted((b, s) for s, b in _PCM_BITS.items() if s != "PCM_U8" and sf.check_format(fmt, s))
    if like in _PCM_BITS and pcm:
        deeper = [s for b, s in pcm if b >= _PCM_BITS[like]]
        return deeper[0] if deeper else pcm[-1][1]
    if like in _FLOAT_SUBTYPES:
        if pcm:
            return pcm[-1][1]
    return sf.default_subtype(fmt)


def plan_output(path, sr: int, n_channels: int, like: Optional[str] = None, fmt: Optional[str] = None,
                subtype: Optional[str] = None) -> tuple:
    """The (format, subtype) an audio output will be written with; an OutputError now, before
    any work, when the container cannot hold ``n_channels`` channels at ``sr`` Hz."""
    import io

    sf = _sf()
    fmt = format_for_path(path, fmt)
    if fmt == "OGG" and not subtype and Path(path).suffix.lower() == ".opus":
        subtype = "OPUS"
    sub = choose_subtype(fmt, like, subtype)
    if fmt == "MP3" and n_channels > 2:
        raise OutputError(f"{path}: MP3 holds at most 2 channels, the input has {n_channels}; "
                          f"write .flac or .wav")
    if fmt == "MP3" and sr not in MP3_RATES:
        raise OutputError(f"{path}: MP3 cannot be written at {sr} Hz (it takes {', '.join(map(str, MP3_RATES))} Hz); "
                          f"write .flac or .wav")
    if sub == "OPUS" and sr not in OPUS_RATES:
        raise OutputError(f"{path}: Opus cannot be written at {sr} Hz (it takes {', '.join(map(str, OPUS_RATES))} Hz); "
                          f"write .ogg (Vorbis), .flac or .wav")
    try:  # whatever else libsndfile refuses (channel counts, rates), found now with a tiny probe
        sf.write(io.BytesIO(), np.zeros((64, n_channels), dtype=np.float32), int(sr), format=fmt, subtype=sub)
    except Exception as e:
        raise OutputError(f"{path}: libsndfile cannot write {fmt}/{sub} with {n_channels} channels at {sr} Hz "
                          f"({_first_line(e).split(':')[-1].strip()}); try .flac or .wav") from None
    return fmt, sub


def probe_writable(folder) -> None:
    """An OutputError unless a file can be created in ``folder`` (tried for real: permission bits
    say little to root, or on read-only and network file systems)."""
    folder = Path(folder) if str(folder) else Path(".")
    if not folder.exists():
        raise OutputError(f"the folder {folder} does not exist")
    if not folder.is_dir():
        raise OutputError(f"{folder} is not a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".bespoke-probe.", dir=str(folder))
    except OSError as e:
        why = "permission denied" if isinstance(e, PermissionError) else (e.strerror or str(e))
        raise OutputError(f"cannot write in {folder} ({why})") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temp_beside(path: Path, suffix: Optional[str]) -> Path:
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"{path}: the folder {folder} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix, dir=str(folder))
    except OSError as e:
        why = "permission denied" if isinstance(e, PermissionError) else (e.strerror or str(e))
        raise OutputError(f"{path}: cannot write in {folder} ({why})") from None
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(path, suffix: Optional[str] = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    On any error (or Ctrl-C) the temporary file is removed and ``path`` is left as it was.
    """
    with atomic_paths([path], suffix=suffix) as tmps:
        yield tmps[0]


@contextlib.contextmanager
def atomic_paths(paths: Sequence, suffix: Optional[str] = None) -> Iterator[List[Path]]:
    """Several outputs written as one: yield a temporary path beside each of ``paths``; when the
    block ends without error, rename them onto ``paths`` in order (put the main output last, so
    that its presence means the others are there too). On an error or Ctrl-C every temporary
    file is removed and no output changes."""
    tmps: List[Path] = []
    try:
        for p in paths:
            tmps.append(_temp_beside(Path(p), suffix))
        yield tmps
        mode = 0o666 & ~_umask()  # mkstemp makes 0600 files; outputs get the usual permissions
        for t, p in zip(tmps, paths):
            with contextlib.suppress(OSError):
                os.chmod(t, os.stat(p).st_mode & 0o7777 if os.path.exists(p) else mode)
            os.replace(t, p)
    except BaseException:
        for t in tmps:
            with contextlib.suppress(OSError):
                t.unlink()
        raise


def save_audio(path, samples: np.ndarray, sr: int, subtype: Optional[str] = None,
               fmt: Optional[str] = None, like: Optional[str] = None) -> dict:
    """Write ``samples`` ``(n_channels, n_samples)`` atomically.

    The container comes from ``fmt`` or the extension; the subtype from ``subtype``, else the
    input's (``like``, see choose_subtype). Integer and lossy subtypes clip to [-1, 1]; the count
    of clipped samples is returned (``{"clipped": n, "peak": p, "subtype": s, "format": f}``) so
    callers can warn.
    """
    sf = _sf()
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[0] < 1:
        raise OutputError(f"{path}: expected audio shaped (n_channels, n_samples), got {x.shape}")
    # checked in blocks: a long recording's temporaries stay small
    blocks = [x[:, a:a + (1 << 20)] for a in range(0, x.shape[1], 1 << 20)]
    if not all(np.all(np.isfinite(b)) for b in blocks):
        raise OutputError(f"{path}: refusing to write NaN or infinite samples (a bug; please report it)")
    fmt, sub = plan_output(path, int(sr), x.shape[0], like=like, fmt=fmt, subtype=subtype)
    peak = max((float(np.max(np.abs(b))) for b in blocks if b.size), default=0.0)
    clipped = 0
    if sub not in _FLOAT_SUBTYPES:
        clipped = sum(int(np.count_nonzero(np.abs(b) > 1.0)) for b in blocks)
        if clipped:
            x = np.clip(x, -1.0, 1.0)
    try:
        with atomic_path(path) as tmp:
            sf.write(str(tmp), x.T, int(sr), subtype=sub, format=fmt)
    except OutputError:
        raise
    except (OSError, RuntimeError, ValueError, TypeError) as e:
        raise OutputError(f"{path}: could not write audio ({_first_line(e)})") from None
    return {"clipped": clipped, "peak": peak, "subtype": sub, "format": fmt}
