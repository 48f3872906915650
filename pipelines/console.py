"""What the command line does with stderr and errors: TensorFlow's native log lines dropped, one line per error.

`NativeLogFilter` runs file descriptor 2 through a pipe and drops the C++
(absl) log lines TensorFlow prints before Python can set a log level.
`is_user_error` tells a user's mistake (exit 2) from a bug (exit 1), and
`error_message` says either in one line, naming the file where Python's
message does not.

Example:

>>> with NativeLogFilter():
...     import tensorflow  # no "I0000 ... oneDNN custom operations are on" on stderr
"""

import errno
import io
import json
import os
import re
import sys
import threading


# TensorFlow's C++ (absl) log lines, e.g. "I0000 00:00:1796590369.416816    3628 port.cc:153] oneDNN custom ...",
# and the line absl writes before them. They are printed before Python can set a log level, so no
# TF_CPP_MIN_LOG_LEVEL silences them; `NativeLogFilter` drops them from stderr.
_NATIVE_LOG_LINE = re.compile(
    rb"^(?:[IWEF]\d{4} \d\d:\d\d:[\d.]+ +\d+ [^ \]]+:\d+\] |WARNING: All log messages before absl::InitializeLog\(\))")
# The second line of cpu_feature_guard's message.
_NATIVE_LOG_CONTINUATION = b"To enable the following instructions: "
# A line start that may still become one of those lines (held back until its end).
_NATIVE_LOG_START = re.compile(
    rb"^(?:[IWEF](?:\d{1,4}(?: [\d:. ]*(?:\d [^\n]*)?)?)?|W(?:A(?:R(?:N(?:I(?:N(?:G(?::[^\n]*)?)?)?)?)?)?)?)$")


class NativeLogFilter:
    """Runs stderr (file descriptor 2) through a pipe and drops TensorFlow's native log lines from it.

    Everything else, Python's own messages and tracebacks included, passes
    through in order; stdout (Keras progress, answers) is untouched.
    """

    def __enter__(self):
        self._thread = None
        try:
            sys.stderr.flush()
            self._stderr = os.dup(2)
        except (AttributeError, OSError, ValueError):  # no stderr file descriptor (embedded): nothing to filter
            return self
        read, write = os.pipe()
        os.dup2(write, 2)
        os.close(write)
        self._thread = threading.Thread(target=self._pump, args=(read,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *error):
        if self._thread is None:
            return False
        sys.stderr.flush()
        os.dup2(self._stderr, 2)  # closes the pipe's last write end (unless a child process holds one)
        self._thread.join(timeout=5)
        os.close(self._stderr)
        return False

    def _write(self, data):
        while data:
            data = data[os.write(self._stderr, data):]

    def _pump(self, read):
        pending = b""
        while True:
            chunk = os.read(read, 65536)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            kept = b"".join(line + b"\n" for line in lines
                            if not (_NATIVE_LOG_LINE.match(line) or line.startswith(_NATIVE_LOG_CONTINUATION)))
            if pending and not _NATIVE_LOG_START.match(pending):  # e.g. a progress line without a newline
                kept, pending = kept + pending, b""
            self._write(kept)
        if pending and not _NATIVE_LOG_LINE.match(pending):
            self._write(pending)
        os.close(read)


# Errors a user causes (bad paths, bad files, bad values): one line, exit 2. OSError covers missing files,
# directories given as files, permissions; ValueError covers UnicodeDecodeError and json's JSONDecodeError.
USER_ERRORS = (ValueError, OSError, EOFError)
# TensorFlow's errors of the same kind (tf.data reading a directory, a missing or truncated file).
_TF_USER_ERRORS = ("NotFoundError", "FailedPreconditionError", "PermissionDeniedError", "DataLossError",
                   "InvalidArgumentError", "OutOfRangeError", "AlreadyExistsError")


def is_user_error(error):
    """Whether ``error`` is a user's mistake (a bad path, file or value) rather than a bug."""
    if isinstance(error, USER_ERRORS):
        return True
    return type(error).__module__.startswith("tensorflow") and type(error).__name__ in _TF_USER_ERRORS


def _open_file_name(error):
    """The name of the file an error was raised while reading (the innermost open file in the traceback), or None."""
    traceback_, name = error.__traceback__, None
    while traceback_ is not None:
        for value in traceback_.tb_frame.f_locals.values():
            if isinstance(value, io.IOBase) and isinstance(getattr(value, "name", None), str):
                name = value.name
        traceback_ = traceback_.tb_next
    return name


def error_message(error):
    """One line: what went wrong, naming the file where Python's message does not."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror and len(error.args) <= 2:
        hints = {errno.EISDIR: "; give a file, not a folder", errno.ENOTDIR: "; a part of this path is not a folder",
                 errno.EACCES: "; check the file's permissions", errno.ENOENT: "; check the path"}
        message = f"{error.filename}: {error.strerror}{hints.get(error.errno, '')}"
    elif isinstance(error, UnicodeDecodeError):
        name = _open_file_name(error)
        message = (f"{name + ': ' if name else ''}not UTF-8 text ({error.reason} at byte {error.start}); "
                   "save the file as UTF-8")
    elif isinstance(error, json.JSONDecodeError):
        name = _open_file_name(error)
        message = f"{name + ': ' if name else ''}not valid JSON: {error}"
    elif type(error).__module__.startswith("tensorflow") and hasattr(error, "message"):
        message = str(error.message).strip().splitlines()[0] if str(error.message).strip() else type(error).__name__
    else:
        message = str(error) or type(error).__name__
    return " ".join(line.strip() for line in message.strip().splitlines())
