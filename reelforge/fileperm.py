"""Files written through a temporary name get the mode a plain `open()` would have given.

`tempfile.mkstemp` and `NamedTemporaryFile` create files as 0600 whatever the umask (right
for secrets, wrong for videos a user or a web server should read), so files renamed into
place from them are chmod-ed to 0666 less the umask first.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["as_if_opened"]


def as_if_opened(path: str | Path) -> None:
    """Give `path` the mode `open(path, "w")` would have created it with."""
    os.chmod(path, 0o666 & ~_umask())


def _umask() -> int:
    # /proc tells without changing anything; os.umask can only be read by setting it, which
    # briefly changes it for every thread.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
