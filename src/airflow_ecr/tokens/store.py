"""
Where tokens are kept between lookups: the :class:`TokenStore` protocol and its three stores.

- :class:`MemoryStore`: this process's tokens, one store per :class:`~airflow_ecr.tokens.cache.TokenCache`.
- :class:`FileStore`: the host cache shared by every task process of a worker: one JSON file per
  key in a directory only its owner can read, written atomically (``mkstemp`` + ``os.replace``),
  with a kernel-released ``flock`` per name for single flight (:mod:`~airflow_ecr.tokens.process_lock`).
  The directory's rules (location, owner, mode) are :mod:`~airflow_ecr.tokens.private_files`'s: it
  finds a problem code, which a task's log words here (:func:`log_message`) and ``doctor`` in
  :mod:`airflow_ecr.doctor.cache` (from :meth:`FileStore.inspect`).
- :class:`NullStore`: no host cache (``[ecr] cache_enabled = False``, or a directory that cannot be used).

Besides tokens, a store keeps a small identity index (a non-secret locator, such as a connection
id, to the identity it resolved to), so a cache hit needs no connection lookup.

Every problem (missing, corrupt, foreign or group-readable file, unwritable directory) is logged
and treated as a miss: a store can make things faster, never make them fail.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from airflow_ecr.process_state import STATE
from airflow_ecr.tokens import process_lock
from airflow_ecr.tokens.private_files import (
    CACHE_DIR_NAME as CACHE_DIR_NAME,
)
from airflow_ecr.tokens.private_files import (
    DirectoryProblem,
    directory_problem,
    examine_directory,
    read_private_json,
)
from airflow_ecr.tokens.process_lock import LockState
from airflow_ecr.tokens.token import EcrToken

log = logging.getLogger(__name__)

_INDEX_VERSION = 1
# A write takes milliseconds: a temp file older than this was left by a killed writer and still
# holds a live token, so the next write removes it.
_STALE_TEMP_AGE = 60.0
_TEMP_PREFIX = ".tmp-"


class TokenStore(Protocol):
    """Keeps tokens by key (a non-secret hash); every method tolerates every problem."""

    def read(self, key: str) -> EcrToken | None:
        """The token stored under ``key``, or None."""
        ...

    def write(self, key: str, token: EcrToken) -> None:
        """Store ``token`` under ``key``, replacing what was there."""
        ...

    def remove(self, key: str, password: str) -> None:
        """Remove the entry if it still holds ``password`` (a newer token stays)."""
        ...

    def read_identity(self, locator: str, now: float) -> str | None:
        """The identity ``locator`` resolved to, if recorded and not past its ``valid_until``."""
        ...

    def write_identity(self, locator: str, identity: str, valid_until: float) -> None:
        """Record that ``locator`` resolves to ``identity`` until ``valid_until``."""
        ...

    def forget_identity(self, locator: str) -> None:
        """Drop the record of ``locator``."""
        ...

    def lock(
        self, name: str, timeout: float, ready: Callable[[], bool] | None = None
    ) -> contextlib.AbstractContextManager[LockState]:
        """Hold the cross-process lock ``name`` for the block, or stop waiting when ``ready()``; yield how it ended."""
        ...


class NullStore:
    """Keeps nothing."""

    def read(self, key: str) -> EcrToken | None:
        return None

    def write(self, key: str, token: EcrToken) -> None:
        pass

    def remove(self, key: str, password: str) -> None:
        pass

    def read_identity(self, locator: str, now: float) -> str | None:
        return None

    def write_identity(self, locator: str, identity: str, valid_until: float) -> None:
        pass

    def forget_identity(self, locator: str) -> None:
        pass

    def lock(
        self, name: str, timeout: float, ready: Callable[[], bool] | None = None
    ) -> contextlib.AbstractContextManager[LockState]:
        return contextlib.nullcontext("unavailable")


class MemoryStore(NullStore):
    """This process's tokens and identity records, for one cache."""

    def __init__(self) -> None:
        self._tokens: dict[str, EcrToken] = {}
        self._identities: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        STATE.memory_stores.add(self)  # emptied by airflow_ecr.process_state.reset

    def read(self, key: str) -> EcrToken | None:
        return self._tokens.get(key)

    def write(self, key: str, token: EcrToken) -> None:
        with self._lock:
            self._tokens[key] = token

    def remove(self, key: str, password: str) -> None:
        with self._lock:
            if (current := self._tokens.get(key)) is not None and current.password == password:
                del self._tokens[key]

    def read_identity(self, locator: str, now: float) -> str | None:
        record = self._identities.get(locator)
        return record[0] if record is not None and now < record[1] else None

    def write_identity(self, locator: str, identity: str, valid_until: float) -> None:
        with self._lock:
            self._identities[locator] = (identity, valid_until)

    def forget_identity(self, locator: str) -> None:
        with self._lock:
            self._identities.pop(locator, None)

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()
            self._identities.clear()


# How a task's log says that the cache is off, by the problem codes a task meets (doctor words
# every code in airflow_ecr.doctor.cache): a format and the problem's fields that fill it.
_LOG_MESSAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "cannot_create": ("ECR token cache disabled: cannot create %s (%s).", ("path", "error")),
    "foreign_link": (
        "ECR token cache disabled: %s is a symbolic link of another user; "
        "set [ecr] cache_dir to a directory of this user to enable the cache.",
        ("path",),
    ),
    "not_directory": ("ECR token cache disabled: %s is not a directory.", ("path",)),
    "foreign_owner": ("ECR token cache disabled: %s belongs to another user.", ("path",)),
    "open_mode": (
        "ECR token cache disabled: %s is accessible to other users (mode %o); make it 0700 to enable the cache.",
        ("path", "mode"),
    ),
}


def log_message(problem: DirectoryProblem) -> tuple[Any, ...]:
    """
    The warning a task logs for ``problem``: a format and its arguments (``log.warning(*...)``).

    :param problem: what :func:`~airflow_ecr.tokens.private_files.directory_problem` found.
    """
    text, fields = _LOG_MESSAGES.get(problem.kind, ("ECR token cache disabled: %s (%s).", ("path", "kind")))
    return (text, *(getattr(problem, name) for name in fields))


class FileStore(NullStore):
    """
    The host cache: one JSON file per key, readable by its owner only.

    :param directory: the cache directory (created 0700 if missing).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._problem: DirectoryProblem | None = None

    def usable(self) -> bool:
        """
        Whether the directory exists (or could be created), is ours and is private.

        Checked on every use (one ``stat``), so a directory that is opened up or handed to another
        user stops being used at once; each change of verdict is logged once.
        """
        problem = self._directory_problem()
        if problem != self._problem:
            self._problem = problem
            if problem is not None:
                log.warning(*log_message(problem))
        return problem is None

    def _directory_problem(self) -> DirectoryProblem | None:
        """The first rule the directory breaks (None: none), creating it if it is missing."""
        try:
            try:
                problem, _ = directory_problem(self.directory)
            except FileNotFoundError:
                self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                problem, _ = directory_problem(self.directory)
        except OSError as err:
            return DirectoryProblem("cannot_create", self.directory, error=err.strerror or str(err))
        return problem

    def inspect(self) -> tuple[DirectoryProblem | None, dict[str, Any]]:
        """
        Whether the cache can work here, for ``doctor`` to report: the rules :meth:`usable` applies
        and what only a report asks, creating nothing
        (:func:`~airflow_ecr.tokens.private_files.examine_directory`).
        """
        return examine_directory(self.directory)

    def _path(self, key: str, suffix: str) -> Path:
        return self.directory / f"{key}{suffix}"

    def _read_json(self, path: Path) -> Any:
        """The JSON in ``path`` if the file is private to this user, else None."""
        data = read_private_json(path)
        if data is None:
            log.warning("Ignoring ECR token cache file %s: not private to this user.", path)
        return data

    def read(self, key: str) -> EcrToken | None:
        if not self.usable():
            return None
        path = self._path(key, ".json")
        try:
            data = self._read_json(path)
            return None if data is None else EcrToken.from_json(data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("Ignoring unreadable ECR token cache file %s (%s).", path, type(err).__name__)
            return None

    def _write_json(self, path: Path, data: Any) -> None:
        try:
            fd, temp = tempfile.mkstemp(dir=self.directory, prefix=_TEMP_PREFIX, suffix=".json")
        except OSError as err:
            log.warning("Cannot write the ECR token cache in %s (%s).", self.directory, err.strerror)
            return
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:  # mkstemp: mode 0600
                json.dump(data, handle)
            os.replace(temp, path)
        except BaseException as err:
            # Whatever stopped the write (an OSError, or SIGTERM raising in a task that timed
            # out), the temp file holds a live token: it must not stay behind.
            with contextlib.suppress(OSError):
                os.unlink(temp)
            if not isinstance(err, OSError):
                raise
            log.warning("Cannot write the ECR token cache in %s (%s).", self.directory, err.strerror)
            return
        self._sweep_temps()

    def _sweep_temps(self) -> None:
        """Remove temp files that a killed writer (SIGKILL) left: they hold live tokens."""
        cutoff = time.time() - _STALE_TEMP_AGE
        try:
            with os.scandir(self.directory) as entries:
                for entry in entries:
                    if not entry.name.startswith(_TEMP_PREFIX):
                        continue
                    with contextlib.suppress(OSError):
                        info = entry.stat(follow_symlinks=False)
                        if info.st_mtime < cutoff and info.st_uid == os.geteuid():
                            os.unlink(entry.path)
        except OSError:
            pass  # the next write sweeps again

    def write(self, key: str, token: EcrToken) -> None:
        if self.usable():
            self._write_json(self._path(key, ".json"), token.to_json())

    def remove(self, key: str, password: str) -> None:
        current = self.read(key)
        if current is not None and current.password == password:
            with contextlib.suppress(OSError):
                os.unlink(self._path(key, ".json"))

    def read_identity(self, locator: str, now: float) -> str | None:
        if not self.usable():
            return None
        try:
            data = self._read_json(self._path(locator, ".identity"))
            if isinstance(data, dict) and data.get("version") == _INDEX_VERSION and now < float(data["valid_until"]):
                return str(data["identity"])
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("Ignoring unreadable ECR token cache index %s (%s).", locator, type(err).__name__)
        return None

    def write_identity(self, locator: str, identity: str, valid_until: float) -> None:
        if self.usable():
            record = {"version": _INDEX_VERSION, "identity": identity, "valid_until": valid_until}
            self._write_json(self._path(locator, ".identity"), record)

    def forget_identity(self, locator: str) -> None:
        if self.usable():
            with contextlib.suppress(OSError):
                os.unlink(self._path(locator, ".identity"))

    def write_record(self, name: str, suffix: str, record: dict[str, Any]) -> None:
        """
        Write a small non-secret record beside the tokens, as atomically and privately as a token
        (the credential helper's index, :mod:`airflow_ecr.credential_helper.index`).

        :param name: the record's name (a fingerprint: never a secret, never a path).
        :param suffix: its kind, e.g. ``.helper``.
        :param record: the JSON-able record.
        """
        if self.usable():
            self._write_json(self._path(name, suffix), record)

    def lock(
        self, name: str, timeout: float, ready: Callable[[], bool] | None = None
    ) -> contextlib.AbstractContextManager[LockState]:
        """
        Hold the cross-process lock ``name`` for the block, or stop waiting once ``ready()`` (polled
        while waiting: another process stored what the caller needs); yield how the wait ended.

        The lock and its takeover rules are :func:`airflow_ecr.tokens.process_lock.hold`'s; here it
        is only refused (``unavailable``) when the directory is not usable.

        :param name: the lock's name (a non-secret hash).
        :param timeout: seconds to wait for a holder before taking over from it.
        :param ready: polled while waiting; True ends the wait with ``ready``.
        """
        if not self.usable():
            return contextlib.nullcontext("unavailable")
        return process_lock.hold(self.directory, name, timeout, ready)
