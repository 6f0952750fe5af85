"""The registry side of a token: the one ``AWS:<bcrypt>`` line of a registry's htpasswd file."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

from airflow_ecr.testing.emulator.model import BCRYPT_ROUNDS


def bcrypt_line(password: str) -> bytes:
    """The htpasswd line ``AWS:<bcrypt hash>`` for ``password``.

    :param password: the registry password (an ECR token's password).
    """
    try:
        import bcrypt
    except ImportError as exc:  # an optional dependency: say how to get it
        raise RuntimeError("the ECR emulator needs bcrypt: pip install 'airflow-ecr[testing]'") from exc
    # bcrypt reads only a password's first 72 bytes (the registry's too); bcrypt 5 refuses more
    # instead of ignoring them, and ECR's passwords are longer.
    secret = password.encode()[:72]
    return b"AWS:" + bcrypt.hashpw(secret, bcrypt.gensalt(rounds=BCRYPT_ROUNDS)) + b"\n"


def write_htpasswd(path: Path, password: str, after_ns: int) -> int:
    """Replace ``path`` atomically (temp file + ``os.replace``) with the line of ``password``.

    The registry reloads its htpasswd when the mtime changes, so the new file's mtime is never one
    already used, even within one clock tick.

    :param path: the registry's htpasswd file.
    :param password: the password to accept from now on.
    :param after_ns: the mtime (ns) of the previous write; the new one is at least 1 ms later.
    :return: the new file's mtime in ns.
    """
    line = bcrypt_line(password)
    fd, tmp = tempfile.mkstemp(prefix=".htpasswd.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(line)
        mtime_ns = max(time.time_ns(), after_ns + 1_000_000)
        os.utime(tmp, ns=(mtime_ns, mtime_ns))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return mtime_ns
