"""Putting files in place: every file bespoke writes goes through atomic_paths, which keeps the
README's promises ("Bad input"): nothing half-written, nothing but a regular file replaced, no
output placed over one that appeared meanwhile, no temporary left behind.

Each output is written into a temporary file in its folder, placed under its name only when the
whole block has succeeded. The temporary is unnamed (Linux's O_TMPFILE; writers reach it as
/proc/self/fd/N) where the file system has them: if the process dies, even by kill -9, the kernel
frees it. Elsewhere it is named TEMP_PREFIX<machine>.<pid>.<random><suffix>, and a later write
in that folder removes those of processes that are gone (clean_stale_temporaries). Without
overwrite, placement is a hard link, which fails if the name exists; with it, only a regular file
is replaced (os.replace from a named temporary). A symbolic link, device, FIFO or socket at an
output's name is refused before the work (check_replaceable) and again at placement.
"""
from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

from .errors import OutputError


def probe_writable(folder) -> None:
    """An OutputError unless a file can be created in ``folder`` (tried for real: permission bits
    say little to root, or on read-only and network file systems). The try leaves no name: an
    unnamed file where the file system has them, else one of our named temporaries, removed."""
    folder = Path(folder) if str(folder) else Path(".")
    if not folder.exists():
        raise OutputError(f"the folder {folder} does not exist")
    if not folder.is_dir():
        raise OutputError(f"{folder} is not a folder")
    try:
        fd = _unnamed_temp(folder)
        name = None
        if fd is None:
            name, fd = _named_temp(folder, "")
    except OSError as e:
        raise OutputError(f"cannot write in {folder} ({_why(e)})") from None
    os.close(fd)
    if name is not None:
        with contextlib.suppress(OSError):
            os.unlink(name)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


TEMP_PREFIX = ".bespoke-tmp."
_TEMP_NAME = re.compile(r"^\.bespoke-tmp\.([0-9a-f]{8})\.([0-9]+)\.")
USE_O_TMPFILE = True   # False: named temporaries only (the fallback; tests set it)
_ACTIVE: dict = {}     # str(a temporary path given to a writer) -> the user's output path
_NO_TMPFILE = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOSYS, errno.ENOENT}
_NO_HARDLINK = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK, errno.EXDEV}
WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG, errno.EROFS}


def _why(e: BaseException) -> str:
    """An OS error in words: 'no space left on device', 'permission denied', ..."""
    if isinstance(e, OSError) and e.errno:
        return os.strerror(e.errno).lower()
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def output_name(path):
    """The user's output for ``path``: ``path`` itself or, for a temporary that atomic_paths gave
    a writer, the output it will become (for messages, and for the format its extension names)."""
    return _ACTIVE.get(str(path), path)


@functools.lru_cache(maxsize=None)
def _machine() -> str:
    """What a pid in a temporary's name is relative to: this host and pid namespace."""
    import hashlib
    import socket

    try:
        ns = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        ns = ""
    return hashlib.sha1(f"{socket.gethostname()}/{ns}".encode()).hexdigest()[:8]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, not ours to signal
        pass
    return True


def _temp_name(suffix: str = "") -> str:
    return f"{TEMP_PREFIX}{_machine()}.{os.getpid()}.{secrets.token_hex(4)}{suffix}"


def clean_stale_temporaries(folder) -> List[str]:
    """Remove the named temporaries that a process which died (kill -9, a power cut) left in
    ``folder``: ours by name, on this machine, owned by this user, whose pid is gone. Returns
    their names."""
    removed: List[str] = []
    me, uid = _machine(), os.getuid() if hasattr(os, "getuid") else None
    try:
        entries = list(os.scandir(folder if str(folder) else "."))
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP_NAME.match(entry.name)
        if not m or m.group(1) != me or int(m.group(2)) == os.getpid() or _alive(int(m.group(2))):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(st.st_mode) and (uid is None or st.st_uid == uid):
                os.unlink(entry.path)
                removed.append(entry.name)
        except OSError:
            pass
    return removed


def _unnamed_temp(folder: Path) -> Optional[int]:
    """An unnamed file in ``folder`` (O_TMPFILE), or None where the system or file system has none."""
    if not (USE_O_TMPFILE and hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")):
        return None
    try:
        return os.open(str(folder), os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
    except OSError as e:
        if e.errno in _NO_TMPFILE:
            return None
        raise


def _named_temp(folder: Path, suffix: str) -> tuple:
    """A new hidden file ``folder/TEMP_PREFIX...suffix``: (its path, an fd open on it)."""
    suffix = suffix if len(suffix) <= 16 and "/" not in suffix else ""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    while True:
        name = folder / _temp_name(suffix)
        try:
            return name, os.open(str(name), flags, 0o600)
        except FileExistsError:
            continue


@dataclass
class _Temp:
    final: Path                  # the user's output
    path: Path                   # what the writer gets
    fd: int = -1                 # open on the temporary; -1: nested (the outer atomic_paths places it)
    name: Optional[Path] = None  # the temporary's name while it has one (the fallback; a replace)
    dfd: int = -1                # the folder, for linking an unnamed temporary


def _open_temp(path: Path, suffix: Optional[str]) -> _Temp:
    if str(path) in _ACTIVE:  # a writer inside an atomic_paths block writing to what it was given
        return _Temp(final=path, path=path)
    if not path.name or path.name in (".", ".."):
        raise OutputError(f"an output needs a file name (got {str(path)!r})")
    folder = path.parent
    if not folder.is_dir():
        raise OutputError(f"{path}: the folder {folder} does not exist")
    try:
        fd = _unnamed_temp(folder)
        if fd is not None:
            try:
                dfd = os.open(str(folder), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                os.close(fd)
                raise
            return _Temp(final=path, path=Path(f"/proc/self/fd/{fd}"), fd=fd, dfd=dfd)
        name, fd = _named_temp(folder, suffix if suffix is not None else path.suffix)
        return _Temp(final=path, path=name, fd=fd, name=name)
    except OSError as e:
        raise OutputError(f"{path}: cannot write in {folder} ({_why(e)})") from None


_KINDS = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a device"),
          (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def check_replaceable(path, overwrite: bool, appeared: bool = False) -> Optional[int]:
    """Whether an output may go to ``path``: None when nothing is there; the mode of the regular
    file there when ``overwrite`` (it keeps it); else an OutputError: a folder, a symbolic link
    (never followed, never replaced), a device, FIFO or socket, or (without ``overwrite``) any
    file. ``appeared``: said at placement, of what came while the run worked."""
    try:
        st = os.lstat(path)
    except OSError:
        return None  # nothing there (or ENOTDIR, EACCES...: the write itself will say)
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        raise OutputError(f"{path}: is a folder; give a file name")
    if not stat.S_ISREG(mode):
        raise OutputError(f"{path}: is {_kind(mode)}; bespoke replaces only regular files "
                          f"(remove it, or write elsewhere)")
    if not overwrite:
        when = "found as the outputs were put in place; " if appeared else ""
        raise OutputError(f"{path}: exists already ({when}use «overwrite» to replace it)")
    return mode


def _same_inode(path, fd: int) -> bool:
    try:
        a, b = os.lstat(path), os.fstat(fd)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _name_unnamed(t: _Temp) -> None:
    """Give an unnamed temporary a (temporary, hidden) name, for os.replace."""
    while True:
        name = _temp_name()
        try:
            os.link(f"/proc/self/fd/{t.fd}", name, src_dir_fd=t.dfd, dst_dir_fd=t.dfd, follow_symlinks=True)
        except FileExistsError:
            continue
        t.name = t.final.parent / name
        return


def _place_one(t: _Temp, overwrite: bool) -> None:
    final = t.final
    if overwrite:
        if t.name is None:
            _name_unnamed(t)
        check_replaceable(final, True, appeared=True)  # again, the instant before
        os.replace(t.name, final)
        t.name = None
        return
    if t.name is None:  # unnamed: a hard link from the open file; never replaces
        os.link(f"/proc/self/fd/{t.fd}", final.name, src_dir_fd=t.dfd, dst_dir_fd=t.dfd, follow_symlinks=True)
        return
    try:
        os.link(t.name, final, follow_symlinks=False)
    except OSError as e:  # a file system without hard links: check, then rename (a small window)
        if e.errno not in _NO_HARDLINK:
            raise
        check_replaceable(final, False, appeared=True)
        os.rename(t.name, final)
        t.name = None
        return
    with contextlib.suppress(OSError):
        os.unlink(t.name)
    t.name = None


def _place(temps: List[_Temp], overwrite: bool) -> None:
    """Put every temporary under its name, in order; all checked first. Without ``overwrite``,
    a failure (one appeared meanwhile, Ctrl-C) takes back the ones already placed."""
    own = [t for t in temps if t.fd >= 0]
    mask = _umask()
    modes = [check_replaceable(t.final, overwrite, appeared=True) for t in own]
    for t, mode in zip(own, modes):
        try:
            os.fsync(t.fd)  # the data is on disk before the name is: no empty output after a power cut
        except OSError as e:
            raise OutputError(f"{t.final}: could not write ({_why(e)})") from None
        with contextlib.suppress(OSError):  # the mode of the file it replaces, else the usual one
            os.chmod(t.path if t.name is None else t.name, (mode & 0o7777) if mode is not None else 0o666 & ~mask)
    placed: List[_Temp] = []
    try:
        for t in own:
            try:
                _place_one(t, overwrite)
            except FileExistsError:
                check_replaceable(t.final, False, appeared=True)  # says what is there
                raise OutputError(f"{t.final}: exists already (use «overwrite» to replace it)") from None
            except OutputError:
                raise
            except OSError as e:
                raise OutputError(f"{t.final}: could not put the output in place ({_why(e)})") from None
            placed.append(t)
    except BaseException:
        if not overwrite:
            for t in placed:
                if _same_inode(t.final, t.fd):
                    with contextlib.suppress(OSError):
                        os.unlink(t.final)
        raise
    for dfd in {t.dfd for t in own if t.dfd >= 0}:
        with contextlib.suppress(OSError):
            os.fsync(dfd)


def _close(temps: List[_Temp]) -> None:
    for t in temps:
        _ACTIVE.pop(str(t.path), None)
        if t.fd < 0:
            continue
        if t.name is not None:
            with contextlib.suppress(OSError):
                os.unlink(t.name)
        for fd in (t.fd, t.dfd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)


def _in_words(e: BaseException, temps: List[_Temp]) -> Optional[OutputError]:
    """An error from a writer, about the user's output rather than our temporary."""
    pairs = sorted(((str(t.path), str(t.final)) for t in temps if t.fd >= 0), key=lambda p: -len(p[0]))
    if not pairs:  # all nested: the enclosing block speaks
        return None
    if isinstance(e, OutputError):
        text = e.args[0] if e.args else str(e)
        for tmp, final in pairs:
            text = text.replace(tmp, final)
        return OutputError(text) if text != (e.args[0] if e.args else str(e)) else None
    if isinstance(e, OSError) and e.errno in WRITE_ERRORS:
        named = [final for tmp, final in pairs if str(e.filename) == tmp] or [str(t.final) for t in temps if t.fd >= 0]
        return OutputError(f"{', '.join(named)}: could not write ({_why(e)})")
    return None


@contextlib.contextmanager
def atomic_path(path, suffix: Optional[str] = None, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path for ``path``; when the block ends without error it becomes ``path``.

    On any error (or Ctrl-C) the temporary file is removed and ``path`` is left as it was.
    """
    with atomic_paths([path], suffix=suffix, overwrite=overwrite) as tmps:
        yield tmps[0]


@contextlib.contextmanager
def atomic_paths(paths: Sequence, suffix: Optional[str] = None, overwrite: bool = True) -> Iterator[List[Path]]:
    """Several outputs written as one: yield a temporary path for each of ``paths`` (write them by
    that path); when the block ends without error, put them under their names in order (the main
    output last, so that its presence means the others are there too). On an error or Ctrl-C no
    output changes and no temporary stays.

    ``overwrite``: replace regular files found at those names; without it, an output that exists,
    even one that appeared while the block ran, is an OutputError ('exists already') and none
    of the outputs is placed. Never replaced: folders, symbolic links, devices, FIFOs, sockets.
    A path that is itself a temporary of an enclosing block is yielded as is (that block places it).
    Unnamed temporaries, and what kill -9 may leave: see the module's docstring."""
    temps: List[_Temp] = []
    try:
        for folder in dict.fromkeys(Path(p).parent for p in paths if str(p) not in _ACTIVE):
            clean_stale_temporaries(folder)
        for p in paths:
            temps.append(_open_temp(Path(p), suffix))
            if temps[-1].fd >= 0:
                _ACTIVE[str(temps[-1].path)] = Path(p)
        try:
            yield [t.path for t in temps]
        except BaseException as e:
            better = _in_words(e, temps)
            if better is not None:
                raise better from None
            raise
        _place(temps, overwrite)
    finally:
        _close(temps)


class ErrorKeepingFile:
    """A file for libsndfile that keeps the first OS error: libsndfile says only 'System error.'
    (and its MP3 writer nothing at all) where the disk is full."""

    def __init__(self, f):
        self._f, self.error = f, None

    def write(self, data) -> int:
        if self.error is not None:
            return 0
        view, done = memoryview(data), 0
        try:
            while done < len(view):
                n = self._f.write(view[done:])
                if not n:
                    raise OSError(errno.EIO, "short write")
                done += n
        except OSError as e:
            self.error = e
        return done

    def __getattr__(self, name):  # seek, tell, read, readinto: the file's own
        return getattr(self._f, name)
