"""Writing files so that a crash or a kill never leaves a half-written one under its final name."""
import os
import threading


def atomic_write(path, data_or_writer):
    """Write `data_or_writer` (bytes, str as UTF-8, or a function given the open binary file) to `path`.

    It goes to a temporary file beside `path` (named `<path>.<pid>.<thread>.tmp`, so concurrent writers
    never share one) and is renamed over `path` once complete: readers see the old file or the new one.
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
