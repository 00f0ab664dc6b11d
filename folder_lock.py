"""One writer per folder: a training run holds its model_dir, a generation each folder it writes captchas
into. A second writer is refused at once, in one line that names the first (pid, command, start time).

The lock is an flock on FOLDER/.lock (the `filelock` package): the operating system lets go of it when its
process ends, however it ends, so a run killed with kill -9 leaves nothing to clean up and the next run takes
the folder over. FOLDER/.lock.json says who holds it, for the refusal's message.
"""
import contextlib
import json
import os
import sys
import time

import filelock

from files import atomic_write
from errors import ProjectError

LOCK_FILE = ".lock"
OWNER_FILE = ".lock.json"


class FolderInUse(ProjectError):
    """Another process is writing the folder."""


def owner(folder):
    """Who holds `folder`'s lock, in words (what its .lock.json says)."""
    try:
        with open(os.path.join(folder, OWNER_FILE)) as handle:
            who = json.load(handle)
        return f"pid {who['pid']}, started {who['started']}: {who['command']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not said who it is yet"


@contextlib.contextmanager
def one_writer(folder):
    """Hold `folder` (created if need be) for the `with` block; FolderInUse when another process holds it."""
    os.makedirs(folder, exist_ok=True)
    lock = filelock.FileLock(os.path.join(folder, LOCK_FILE), timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise FolderInUse(f"{folder} is being written by another run ({owner(folder)}): wait for it to end, "
                          f"or write to another folder") from None
    try:
        who = {"pid": os.getpid(), "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
               "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        atomic_write(os.path.join(folder, OWNER_FILE), json.dumps(who))
        yield
    finally:
        with contextlib.suppress(OSError):
            os.remove(os.path.join(folder, OWNER_FILE))
        lock.release()
