"""What is wrong with a CSV file, in words: the checks and explanations behind from_csv's errors.

Before parsing, `check_header` reads the head of the file: an empty file, a file of blank lines, a
binary file (or one in another encoding than UTF-8) and duplicate column names are errors that name
the file. (pyarrow keeps both columns of a duplicated name and the reader appended one onto the
other, doubling the rows; pandas renames the second one `a.1`: neither is what the file says.)
When an engine fails anyway, `explain` scans the file to say where: the first line that is not
UTF-8 text, or the first row whose field count differs from the header's.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
from collections import Counter

from cpuwise.data._files import kind
from cpuwise.errors import ConfigError

HEAD_BYTES = 1 << 20  # how much of the file the header check reads
_BOM = codecs.BOM_UTF8


def check_header(path: str) -> list[str]:
    """The column names of the header line; ConfigError for a file from_csv cannot read as a table."""
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
    if not head:
        raise ConfigError(f"{path!r}: expected a CSV file with a header row, found an empty file (0 bytes). "
                          "Fix: check that the file was written completely, or pass another file.")
    _check_text(path, head, complete=len(head) < HEAD_BYTES)
    text = head.removeprefix(_BOM).decode("utf-8", errors="ignore")  # checked above; a cut last char
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ConfigError(f"{path!r}: expected a CSV file with a header row, found no header line (only "
                          "blank lines). Fix: write the column names on the first line.")
    names = next(csv.reader(io.StringIO(text[text.index(lines[0]):])))
    dups = [n for n, k in Counter(names).items() if k > 1]
    if dups:
        raise ConfigError(
            f"{path!r}: expected a header of distinct column names, found duplicate column names {dups} "
            f"(header: {names}). Fix: rename the repeated columns in the file's first line (each name must "
            "appear once)."
        )
    return names


def _check_text(path: str, data: bytes, complete: bool) -> None:
    """ConfigError if the head `data` of the file is not UTF-8 text (or holds a NUL byte)."""
    body = data.removeprefix(_BOM)
    try:
        body.decode("utf-8")
        bad = body.find(b"\x00")
    except UnicodeDecodeError as exc:
        if not complete and exc.reason == "unexpected end of data":
            return  # a character cut by the end of the head, not a broken one
        bad = exc.start
    if bad >= 0:
        raise _not_text(path, body[bad], len(data) - len(body) + bad, 1 + body.count(b"\n", 0, bad))


def _not_text(path: str, byte: int, offset: int, line: int) -> ConfigError:
    return ConfigError(
        f"{path!r}: expected UTF-8 text (a CSV file), found byte 0x{byte:02x} at offset {offset} (line "
        f"{line}), which is not UTF-8 text: a binary file, or text in another encoding. Fix: pass the CSV "
        "file itself, or convert it to UTF-8 (e.g. iconv -f latin1 -t utf-8 in.csv > out.csv)."
    )


def _scan_text(path: str) -> None:
    """ConfigError at the first byte of the file that is not UTF-8 text (or a NUL byte)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    base, line = 0, 1  # file offset and line number of the start of `block`
    with open(path, "rb") as f:
        while True:
            block = f.read(HEAD_BYTES)
            pending = decoder.getstate()[0]  # bytes of a character cut by the previous block
            seen = pending + block
            try:
                decoder.decode(block, final=not block)
                bad = seen.find(b"\x00")
            except UnicodeDecodeError as exc:
                bad = exc.start
            if bad >= 0:
                start = base - len(pending)
                raise _not_text(path, seen[bad], start + bad, line + seen.count(b"\n", 0, bad))
            if not block:
                return
            base += len(block)
            line += block.count(b"\n")


def explain(path: str, engine: str, exc: BaseException) -> ConfigError:
    """Why `engine` could not read `path`: the first non-UTF-8 line or ragged row, else its message."""
    _scan_text(path)  # the error path only: a pass over the file, then one more for the rows
    with open(path, newline="", encoding="utf-8-sig") as text:
        reader = csv.reader(text)
        header = next(reader, [])
        for row in reader:
            if row and len(row) != len(header):
                return ConfigError(
                    f"{path!r}: expected {len(header)} fields (as in the header), found {len(row)} on line "
                    f"{reader.line_num}: {','.join(row)[:120]!r}. Fix: repair that row (a missing or extra "
                    "comma, or a field with a comma that needs \"quotes\"), or drop it."
                )
    return ConfigError(f"{path!r}: the {engine} CSV reader could not read the file ({type(exc).__name__}: "
                       f"{str(exc)[:300]}); expected a comma-separated UTF-8 text file with a header row. "
                       "Fix: check the file, or try engine='pandas'.")


def describe_missing(path: str) -> str:
    """What is at `path` when it is not a regular file: "nothing there", "a directory", "a FIFO"."""
    try:
        return kind(os.stat(path).st_mode)
    except OSError:
        return "nothing there"
