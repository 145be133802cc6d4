"""Files by name, safely: list the regular files of a tree, and read one without blocking.

A data folder may hold things that are not files: a FIFO named `x.jpg` (opening it blocks until a
writer comes, which is forever), a socket, a device (`/dev/zero` reads forever), a broken link, or a
directory symlink that loops back (`os.walk(followlinks=True)` lists its files again at every level,
and two loops never end). Every source that lists a tree and every op that opens a sample by path
goes through here: listings keep regular files and visit each real directory once; reads refuse
anything but a regular file before reading it, and never block in open().
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a directory"))


def kind(mode: int) -> str:
    """What a file of st_mode `mode` is, in words ("a FIFO", "a regular file")."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "a regular file" if stat.S_ISREG(mode) else "a special file"


class NotRegularFileError(OSError):
    """A path that names something other than a regular file (a FIFO, a device, a directory)."""

    def __init__(self, path: str, mode: int) -> None:
        super().__init__(f"not a regular file ({kind(mode)})")
        self.strerror = str(self.args[0])
        self.filename = path


def read_regular(path: str | os.PathLike[str]) -> bytes:
    """The bytes of the regular file at `path`; NotRegularFileError (an OSError) for anything else.

    The path is checked before it is opened (a device is never opened), and opened with O_NONBLOCK so
    that a FIFO swapped in after the check cannot block; fstat on the open file decides.
    """
    name = os.fspath(path)
    st = os.stat(name)
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFileError(name, st.st_mode)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(name, flags)
    with os.fdopen(fd, "rb", closefd=True) as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFileError(name, st.st_mode)
        return f.read()


def regular_files(top: str | os.PathLike[str], keep: Callable[[str], bool]) -> tuple[list[str], list[str]]:
    """The regular files under `top` whose name `keep` accepts, and the special entries skipped.

    Symlinks are followed, but each real directory (device, inode) is listed once, at the first path
    that reaches it: a loop or a second link to the same folder adds nothing. Within a directory,
    files come first (sorted by name), then each subdirectory's files (sorted, depth first), as
    os.walk lists them. Names starting with "." are skipped; unreadable directories and broken
    links too. Returns (paths, skipped): skipped names FIFOs, sockets, devices and broken links.
    """
    out: list[str] = []
    skipped: list[str] = []
    seen: set[tuple[int, int]] = set()
    stack = [os.fspath(top)]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        subdirs: list[str] = []
        for entry in entries:
            try:
                mode = entry.stat().st_mode  # follows symlinks
            except OSError:
                skipped.append(entry.path)  # a broken link, or gone since the listing
                continue
            if stat.S_ISDIR(mode):
                subdirs.append(entry.path)
            elif entry.name.startswith("."):
                continue
            elif stat.S_ISREG(mode):
                if keep(entry.name):
                    out.append(entry.path)
            else:
                skipped.append(entry.path)
        stack.extend(reversed(subdirs))
    return out, skipped
