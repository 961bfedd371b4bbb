"""The manifest of ``bespoke batch``: a CSV file read into Rows, every path resolved, every
output checked to lie inside one output root.

A manifest is data, perhaps someone else's: every output path a row names (out, residual,
save_aligned, report, plot) must lie inside one output root, the manifest's folder or
``--out-dir`` (symbolic links resolved), unless ``--allow-outside`` is given; a manifest naming
one elsewhere, or an output that is another row's output or input, is refused before any work.

The manifest: a header row, then one row per song. Columns (case and ``-``/``_`` do not
matter): mix, midi, out (required) and the options of ``bespoke separate`` by name
(options.SEPARATE; an empty cell takes the batch default). Paths are relative to the manifest's
folder. Blank lines and lines starting with ``#`` are ignored. The delimiter (comma, semicolon or
tab) is sniffed from the header; quoting is the csv module's standard (Excel's):
``"a ""b"" c.wav"`` is ``a "b" c.wav``.
"""
from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

from .errors import InputError
from .options import SEPARATE

REQUIRED = ("mix", "midi", "out")
# column -> (flag of 'bespoke separate', kind): the options of a separation (options.SEPARATE)
OPTIONS: Dict[str, tuple] = {o.name: (o.flag, "str" if o.kind == "choice" else o.kind) for o in SEPARATE}
ALIASES = {"output": "out", "stem": "out", "audio": "mix", "recording": "mix", "score": "midi",
           "aligned": "save_aligned", "part": "target", "instrument": "program"}
TRUE = {"1", "true", "yes", "y", "x", "on"}
FALSE = {"0", "false", "no", "n", "off"}
# the columns naming files a row writes (out, and the output paths of 'bespoke separate')
OUTPUT_COLUMNS = ("out",) + tuple(o.name for o in SEPARATE if o.output and o.kind == "path")
INPUT_COLUMNS = ("mix", "midi") + tuple(o.name for o in SEPARATE if not o.output and o.kind == "path")


@dataclass
class Row:
    """One song of the manifest: absolute paths and the options its cells set."""

    line: int
    mix: Path
    midi: Path
    out: Path
    label: str                                  # the out cell as written, for the table
    options: Dict[str, object] = field(default_factory=dict)
    cells: Dict[str, str] = field(default_factory=dict)   # path cells as written, for messages

    def outputs(self) -> Dict[str, Path]:
        """The files this row writes, by column (out first)."""
        found = {"out": self.out}
        found.update({c: self.options[c] for c in OUTPUT_COLUMNS[1:] if self.options.get(c)})
        return found

    def inputs(self) -> Dict[str, Path]:
        found = {"mix": self.mix, "midi": self.midi}
        found.update({c: self.options[c] for c in INPUT_COLUMNS[2:] if self.options.get(c)})
        return found


def _norm_column(name: str) -> str:
    n = name.strip().lower().replace("-", "_").replace(" ", "_")
    return ALIASES.get(n, n)


def _real(path) -> Path:
    """``path`` made absolute with every symbolic link in it resolved (those in existing folders,
    and the file itself when it is one), ``..`` taken away: where a write to it would land."""
    return Path(os.path.realpath(path))


def _parse(kind: str, text: str, base: Path):
    if kind in ("path", "output"):
        p = Path(os.path.expanduser(text))  # (Path.expanduser raises for an unknown ~user)
        if kind == "output":
            return _real(base / p)
        return (base / p).resolve() if not p.is_absolute() else p
    if kind == "int":
        return int(text)
    if kind == "float":
        v = float(text)
        if v != v:
            raise ValueError("NaN")
        return v
    if kind == "bool":
        t = text.lower()
        if t in TRUE:
            return True
        if t in FALSE:
            return False
        raise ValueError("not yes/no")
    return text


def _manifest_text(p: Path):
    """The text of manifest ``p`` and its CSV dialect: Excel's (quotes doubled inside quoted
    cells), with the delimiter and initial-space rule sniffed from the first line that is neither
    blank nor a comment. An InputError for a missing, unreadable or empty file."""
    if not p.is_file():
        raise InputError(f"{p}: no such file" if not p.exists() else f"{p}: not a file")
    try:
        text = p.read_bytes().decode("utf-8-sig")  # line ends as they are: the csv module reads them
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{p}: cannot read the manifest ({e})") from None
    lines = [ln for ln in _lines(text) if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise InputError(f"{p}: the manifest is empty (it needs a header row: mix,midi,out)")
    try:
        sniffed = csv.Sniffer().sniff(lines[0], delimiters=",;\t")
    except csv.Error:
        return text, csv.excel
    # only the delimiter is taken from the header: its quoting says nothing about the rows' (a
    # header without quotes sniffs as doublequote=False, which misreads "a ""b"" c.wav")

    class Manifest(csv.excel):
        delimiter = sniffed.delimiter
        skipinitialspace = sniffed.skipinitialspace

    return text, Manifest


def _lines(text: str) -> List[str]:
    """The lines of ``text`` with their ends, split as a file opened with newline="" is (at \\n,
    \\r\\n or \\r only: not at the other characters str.splitlines takes for line breaks)."""
    return list(io.StringIO(text, newline=""))


def _records(text: str, dialect) -> Iterator[Tuple[int, List[str]]]:
    """(first line number, cells) of each CSV record of ``text``. Blank lines and lines that
    start with ``#`` between records are skipped before the CSV reader sees them (so a quote in
    a comment cannot open a cell that swallows the rows after it); inside a quoted cell, which
    may span lines, every line is kept."""
    state = {"start": True, "line": 0}

    def lines():
        for i, ln in enumerate(_lines(text), start=1):
            if state["start"] and (not ln.strip() or ln.lstrip().startswith("#")):
                continue
            if state["start"]:
                state["start"], state["line"] = False, i
            yield ln

    reader = csv.reader(lines(), dialect)  # it reads exactly the lines of one record per next()
    while True:
        state["start"] = True
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise InputError(f"line {state['line']}: {e}") from None
        yield state["line"], cells


def _read_header(p: Path, cells: List[str]) -> List[str]:
    """The normalised column names of the header row ``cells``; an InputError for unknown columns
    or missing required ones."""
    header = [_norm_column(c) for c in cells]
    unknown = [c for c in header if c not in REQUIRED and c not in OPTIONS]
    if unknown:
        raise InputError(f"{p}: unknown column(s) {', '.join(map(repr, unknown))}; the columns are "
                         f"{', '.join(REQUIRED + tuple(OPTIONS))}")
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InputError(f"{p}: the header must name the columns mix, midi and out "
                         f"(missing: {', '.join(missing)})")
    return header


def _read_row(line_no: int, cells: List[str], header: List[str], base: Path, problems: List[str]) -> Optional[Row]:
    """The Row of the data row ``cells`` (paths relative to ``base``), None when it has too many
    cells or empty required ones; what is wrong with it is appended to ``problems``."""
    if len(cells) > len(header):
        problems.append(f"line {line_no}: {len(cells)} cells for {len(header)} columns")
        return None
    values = {h: c.strip() for h, c in zip(header, cells)}
    empty = [c for c in REQUIRED if not values.get(c)]
    if empty:
        problems.append(f"line {line_no}: empty {', '.join(empty)}")
        return None
    opts = {}
    for col, text_ in values.items():
        if col in REQUIRED or not text_:
            continue
        kind = "output" if col in OUTPUT_COLUMNS else OPTIONS[col][1]
        try:
            opts[col] = _parse(kind, text_, base)
        except ValueError:
            want = {"int": "a whole number", "float": "a number", "bool": "yes or no"}[kind]
            problems.append(f"line {line_no}: {col} {text_!r} is not {want}")
    cells = {c: values[c] for c in OUTPUT_COLUMNS + INPUT_COLUMNS if values.get(c)}
    return Row(line=line_no, mix=_parse("path", values["mix"], base),
               midi=_parse("path", values["midi"], base), out=_parse("output", values["out"], base),
               label=values["out"], options=opts, cells=cells)


def _inside(path: Path, root: Path) -> bool:
    p, r = str(path), str(root)
    return p != r and os.path.commonpath([p, r]) == r


def _check_outputs(rows: List[Row], root: Optional[Path], problems: List[str]) -> bool:
    """Append to ``problems`` each output path of ``rows`` outside ``root`` (None: anywhere is
    fine) and each one that is another output or an input of the manifest. True if one was outside."""
    outside = False
    written: Dict[Path, Tuple[int, str]] = {}
    read: Dict[Path, Tuple[int, str]] = {}
    for r in rows:
        for col, p in r.inputs().items():
            read.setdefault(_real(p), (r.line, col))
    for r in rows:
        for col, p in r.outputs().items():
            shown = f"line {r.line}: {col} {r.cells.get(col, str(p))!r}"
            if root is not None and not _inside(p, root):
                outside = True
                problems.append(f"{shown} is {p}, outside the output root {root}")
            elif p in written:
                line, other = written[p]
                problems.append(f"{shown} is also the {'output' if other == 'out' else other} of line {line}")
            elif p in read:
                line, other = read[p]
                problems.append(f"{shown} would overwrite the {other} of line {line}")
            written.setdefault(p, (r.line, col))
    return outside


def output_root(manifest, out_dir=None) -> Path:
    """The folder a batch's outputs must stay in: ``out_dir``, else the manifest's folder (real paths)."""
    return _real(out_dir if out_dir is not None else Path(manifest).resolve().parent)


def read_manifest(path, out_dir=None, allow_outside: bool = False) -> List[Row]:
    """The rows of a CSV manifest. An InputError (naming the lines) for a missing file, missing or
    unknown columns, empty required cells, unparsable values, two rows writing one file, a row
    writing another's input, or an output path outside the output root (``out_dir``, else the
    manifest's folder; symbolic links resolved) unless ``allow_outside``: nothing has run then."""
    p = Path(path)
    text, dialect = _manifest_text(p)
    header, rows, problems = None, [], []
    base = p.resolve().parent
    try:
        records = list(_records(text, dialect))
    except InputError as e:
        raise InputError(f"{p}: {e}") from None
    for line_no, cells in records:
        if not cells or all(not c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
            continue
        if header is None:
            header = _read_header(p, cells)
            continue
        row = _read_row(line_no, cells, header, base, problems)
        if row is not None:
            rows.append(row)
    if header is None:
        raise InputError(f"{p}: the manifest is empty (it needs a header row: mix,midi,out)")
    root = None if allow_outside else output_root(p, out_dir)
    outside = _check_outputs(rows, root, problems)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        hint = (" (outputs must stay inside the output root: the manifest's folder, or --out-dir; "
                "--allow-outside lets the manifest write anywhere)") if outside else ""
        raise InputError(f"{p}: " + "; ".join(problems[:3]) + more + hint)
    if not rows:
        raise InputError(f"{p}: the manifest lists no songs")
    return rows
