"""Writing files so that a crash or a kill never leaves a half-written one under its final name."""
import os
import re
import threading


def atomic_write(path, data_or_writer, tidy=True):
    """Write `data_or_writer` (bytes, str as UTF-8, or a function given the open binary file) to `path`.

    It goes to a temporary file beside `path` (named `<path>.<pid>.<thread>.tmp`, so concurrent writers
    never share one) and is renamed over `path` once complete: readers see the old file or the new one.
    `tidy`: then remove what killed earlier writes of `path` left (remove_stale_temporaries); False for
    a writer of thousands of files in one folder, which tidies the folder itself.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    temporary = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        with open(temporary, "wb") as handle:
            if callable(data_or_writer):
                data_or_writer(handle)
            else:
                handle.write(data_or_writer.encode() if isinstance(data_or_writer, str) else data_or_writer)
        os.replace(temporary, path)
    except BaseException:  # an error, or Ctrl-C mid-write: no temporary file left behind
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    if tidy:
        remove_stale_temporaries(path)


def remove_stale_temporaries(path):
    """Remove the temporary files of `path` (see atomic_write) whose writer was killed mid-write: those
    named after a process that no longer runs. A live process's are kept, as it may be writing them now.

    It lists the folder, so it is for files saved now and then (checkpoints, caches), not for each file
    of a folder of thousands. Process ids are this machine's: writers on other machines sharing the folder
    must not share a path."""
    folder, base = os.path.split(os.path.abspath(path))
    pattern = re.compile(re.escape(base) + r"\.(\d+)\.\d+\.tmp")
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        match = pattern.fullmatch(name)
        if match and not process_alive(int(match.group(1))):
            try:
                os.remove(os.path.join(folder, name))
            except OSError:  # removed by another saver meanwhile, or not ours to remove: tidying is best effort
                pass


def process_alive(pid):
    """Whether process `pid` runs on this machine (True when that cannot be told)."""
    if os.name != "posix":  # os.kill(pid, 0) would end the process on Windows: assume alive
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, as another user's process
        return True
    return True
