"""Audio in and out: formats, channels, sample rates, clipping, atomic writes.

Arrays are float32 with shape ``(n_channels, n_samples)`` unless said otherwise.
This is the one place that writes audio: it owns clipping and formats, and it
writes to a temporary file in the target's folder and puts it in place whole (see
files.atomic_paths), so an interrupted run never leaves a half-written file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import numpy as np

from .errors import InputError, OutputError
from .files import ErrorKeepingFile, _why, atomic_path, atomic_paths, output_name, probe_writable  # noqa: F401 (as before)

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
    warnings: what the user should hear about the input (a file that ends early); the
    pipeline's load stage passes them on like its own warnings.
    """

    samples: np.ndarray
    sr: int
    subtype: Optional[str] = None
    format: Optional[str] = None
    warnings: List[str] = field(default_factory=list)

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
        loaded file (rate, emptiness, NaN/inf, silence).

        Float arrays are taken as they are (full scale is 1.0). Integer PCM arrays (int8, int16,
        int32, and the unsigned uint8 and uint16) are scaled to float32 in [-1, 1) as a WAV
        reader would (int16 / 32768; unsigned ones centred first), and ``subtype`` names their
        depth (``PCM_16``), so the stem comes back float32 in [-1, 1] and saves at that depth.
        Other dtypes (int64: say which scale; bool, complex, objects) are refused."""
        x = np.asarray(x)
        subtype = None
        if (x.dtype.kind, x.dtype.itemsize) in _INT_SUBTYPES:
            subtype = _INT_SUBTYPES[(x.dtype.kind, x.dtype.itemsize)]
            half = 2.0 ** (8 * x.dtype.itemsize - 1)
            x = ((x.astype(np.float64) - (half if x.dtype.kind == "u" else 0.0)) / half).astype(np.float32)
        elif x.dtype.kind not in "f":
            why = ("64-bit integers have no standard audio scale: pass float samples in [-1, 1], or int16/int32 PCM"
                   if x.dtype.kind in "iu" else "pass float samples in [-1, 1], or int16/int32 PCM")
            raise InputError(f"{name}: cannot take an array of {x.dtype} as audio ({why})")
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2:
            raise InputError(f"{name}: expected an array shaped (n_channels, n_samples), got {x.shape}")
        if x.shape[0] > x.shape[1] > 0:
            raise InputError(f"{name}: an array shaped {x.shape} has more channels than samples; "
                             "pass (n_channels, n_samples)")
        _check_samples(x, int(sr), name, check_silence)
        return cls(samples=np.ascontiguousarray(x), sr=int(sr), subtype=subtype)


# an integer array's (dtype kind, bytes) -> the PCM subtype it is
_INT_SUBTYPES = {("i", 1): "PCM_S8", ("u", 1): "PCM_U8", ("i", 2): "PCM_16", ("u", 2): "PCM_16",
                 ("i", 4): "PCM_32", ("u", 4): "PCM_32"}


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
    except Exception as e:  # the header read, the data not: cut short or damaged (a FLAC that lost sync)
        raise InputError(f"{p}: not a readable audio file: it cannot be decoded to its end ({_first_line(e)}); "
                         "is it truncated or damaged?") from None
    samples = np.ascontiguousarray(data.T)
    _check_samples(samples, int(sr_read), p, check_silence)
    warnings = []
    declared = max(_declared_frames(p) or 0, int(info.frames))
    if samples.shape[1] < declared:  # libsndfile reads what is there and says nothing
        read, whole = samples.shape[1] / sr_read, declared / sr_read
        how = f"{read:.1f} of {whole:.1f} s" if whole - read >= 0.1 else f"{samples.shape[1]} of {declared} samples"
        warnings.append(f"{p}: the file ends early: {how} read (is it truncated, or still being written?); "
                        "going on with what is there")
    return Audio(samples=samples, sr=int(sr_read), subtype=info.subtype, format=info.format, warnings=warnings)


def _declared_frames(p: Path) -> Optional[int]:
    """The frame count a WAV or AIFF header declares, which libsndfile quietly trims to the data
    present (None: another container, or a header that declares none, as streamed WAVs do)."""
    import struct

    try:
        with open(p, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[8:12] not in (b"WAVE", b"AIFF", b"AIFC") or head[:4] not in (b"RIFF", b"FORM"):
                return None
            wav = head[:4] == b"RIFF"
            block = None
            for _ in range(256):  # chunks before the audio data
                hdr = f.read(8)
                if len(hdr) < 8:
                    return None
                cid, size = hdr[:4], struct.unpack("<I" if wav else ">I", hdr[4:])[0]
                at = f.tell()
                if wav and cid == b"fmt " and size >= 14:
                    block = struct.unpack("<H", f.read(14)[12:14])[0]
                elif wav and cid == b"data":
                    return size // block if block and size not in (0, 0xFFFFFFFF) else None
                elif not wav and cid == b"COMM" and size >= 6:
                    return struct.unpack(">I", f.read(6)[2:6])[0]
                f.seek(at + size + (size & 1))
    except (OSError, struct.error):
        return None
    return None


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
    if like == "OPUS" and fmt == "OGG":  # .ogg is Vorbis as the README says (.opus, or subtype OPUS: Opus)
        like = None
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


def save_audio(path, samples: np.ndarray, sr: int, subtype: Optional[str] = None,
               fmt: Optional[str] = None, like: Optional[str] = None, overwrite: bool = True) -> dict:
    """Write ``samples`` ``(n_channels, n_samples)`` atomically (see atomic_paths; ``overwrite``:
    replace a regular file at ``path``).

    The container comes from ``fmt`` or the extension; the subtype from ``subtype``, else the
    input's (``like``, see choose_subtype). Integer and lossy subtypes clip to [-1, 1]; the count
    of clipped samples is returned (``{"clipped": n, "peak": p, "subtype": s, "format": f}``) so
    callers can warn.
    """
    sf = _sf()
    shown = output_name(path)
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[0] < 1:
        raise OutputError(f"{shown}: expected audio shaped (n_channels, n_samples), got {x.shape}")
    # checked in blocks: a long recording's temporaries stay small
    blocks = [x[:, a:a + (1 << 20)] for a in range(0, x.shape[1], 1 << 20)]
    if not all(np.all(np.isfinite(b)) for b in blocks):
        raise OutputError(f"{shown}: refusing to write NaN or infinite samples (a bug; please report it)")
    fmt, sub = plan_output(shown, int(sr), x.shape[0], like=like, fmt=fmt, subtype=subtype)
    peak = max((float(np.max(np.abs(b))) for b in blocks if b.size), default=0.0)
    clipped = 0
    if sub not in _FLOAT_SUBTYPES:
        clipped = sum(int(np.count_nonzero(np.abs(b) > 1.0)) for b in blocks)
        if clipped:
            x = np.clip(x, -1.0, 1.0)
    failed = (OSError, RuntimeError, ValueError, TypeError, AssertionError)  # AssertionError: a short write
    try:
        with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "w+b", buffering=0) as f:
            sink = ErrorKeepingFile(f)
            try:
                sf.write(sink, x.T, int(sr), subtype=sub, format=fmt)
            except failed as e:
                sink.error = sink.error or e
            if sink.error is not None:
                raise OutputError(f"{shown}: could not write audio ({_why(sink.error)})")
    except OutputError:
        raise
    except failed as e:
        raise OutputError(f"{shown}: could not write audio ({_why(e)})") from None
    return {"clipped": clipped, "peak": peak, "subtype": sub, "format": fmt}
