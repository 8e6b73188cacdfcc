"""Files only this installation's owner may read: the data dir, the SQLite file, the key.

The embedded mode keeps customer data (the SQLite file) and the key that decrypts the
channels' access tokens (``secret.key``) in the data dir. Each is created owner-only
from its first moment (directories 0700, files 0600) instead of with the umask's
usual 0755/0644 and a later chmod: another account on the machine never gets a window
in which it could read them. Existing files and directories are left as they are (an
operator may have chosen other modes on purpose).
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) owner-only; an existing one stays as it is."""
    if path.is_dir():
        return
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # another process made it in the meantime
        directory.chmod(DIR_MODE)  # mkdir's mode is filtered by the umask


def private_file(path: Path) -> None:
    """Create ``path`` empty and owner-only unless it exists (its directory too)."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    os.close(fd)


def write_private(path: Path, content: str) -> None:
    """Write a new owner-only file; never readable by others, not even for a moment."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(fd, "w") as file:
        file.write(content)
