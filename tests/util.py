"""Small helpers shared by the tests."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(pred: Callable[[], object], timeout: float = 10.0, every: float = 0.02) -> bool:
    """Poll ``pred`` until it is true or ``timeout`` seconds pass; errors count as not yet."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if pred():
                return True
        except OSError:
            pass
        time.sleep(every)
    return bool(pred())


def live_pids_of(uid: int) -> list[int]:
    """Live processes of ``uid``: a zombie has already ended, and reaping it is the host init's job."""
    import os

    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid != uid:
                    continue
                with open(f"/proc/{entry}/stat") as f:
                    if f.read().rpartition(")")[2].split()[0] in ("Z", "X"):
                        continue
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            out.append(int(entry))
    return out


def tree_digest(path: str, owners: bool = False) -> str:
    """A hash of every name, mode, size (and with ``owners`` uid) and byte under ``path``."""
    import hashlib
    import os

    h = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        for n in sorted(files + dirs):
            p = os.path.join(root, n)
            st = os.lstat(p)
            owner = f":{st.st_uid}" if owners else ""
            h.update(f"{os.path.relpath(p, path)}:{st.st_mode}:{st.st_size}{owner}".encode())
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    h.update(f.read())
    return h.hexdigest()
