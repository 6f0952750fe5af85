"""
Where tokens are kept between lookups: the :class:`TokenStore` protocol and its three stores.

- :class:`MemoryStore`: this process's tokens, one store per :class:`~airflow_ecr.tokens.cache.TokenCache`.
- :class:`FileStore`: the host cache shared by every task process of a worker: one JSON file per
  key in a directory only its owner can read, written atomically (``mkstemp`` + ``os.replace``),
  with a kernel-released ``flock`` per name for single flight. Every rule about that directory
  (location, owner, mode) lives here; :meth:`FileStore.inspect` explains them to ``doctor``.
- :class:`NullStore`: no host cache (``[ecr] cache_enabled = False``, or a directory that cannot be used).

Besides tokens, a store keeps a small identity index (a non-secret locator, such as a connection
id, to the identity it resolved to), so a cache hit needs no connection lookup.

Every problem (missing, corrupt, foreign or group-readable file, unwritable directory) is logged
and treated as a miss: a store can make things faster, never make them fail.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import pwd
import random
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from airflow_ecr.process_state import STATE
from airflow_ecr.tokens.private_files import (
    CACHE_DIR_NAME as CACHE_DIR_NAME,
)
from airflow_ecr.tokens.private_files import (
    NOFOLLOW,
    directory_problem,
    foreign_link,
    private_problem,
    read_private_json,
)
from airflow_ecr.tokens.token import EcrToken

log = logging.getLogger(__name__)

CACHE_DIR_SETTING = "[ecr] cache_dir (AIRFLOW__ECR__CACHE_DIR)"
_INDEX_VERSION = 1
# A write takes milliseconds: a temp file older than this was left by a killed writer and still
# holds a live token, so the next write removes it.
_STALE_TEMP_AGE = 60.0
_TEMP_PREFIX = ".tmp-"
# How many times a waiter takes over, with a takeover lock of its own, from holders still busy
# (ECR slow, botocore retrying) after lock_timeout, then 3, 7 times it; after 15 times
# lock_timeout the waiters fetch without a lock.
LOCK_TAKEOVERS = 3

# How a wait for the lock ended: this process holds it; another process stored the result
# meanwhile; another process holds it (and every takeover); or no lock can be used here.
LockState = Literal["held", "ready", "busy", "unavailable"]


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


@dataclass(frozen=True)
class CacheInspection:
    """
    Whether the host cache can work in a directory, and why not (what ``doctor`` shows).

    :param status: ``ok``, or ``warn`` when the cache is off (tasks then work without it).
    :param summary: what was found, in one sentence.
    :param fix: what to do about a warning.
    :param details: facts for machines (directory, owner, mode, entries); never a secret.
    """

    status: Literal["ok", "warn"]
    summary: str
    fix: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _mode_or_zero(path: Path) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0


class FileStore(NullStore):
    """
    The host cache: one JSON file per key, readable by its owner only.

    :param directory: the cache directory (created 0700 if missing).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._problem: tuple[Any, ...] | None = None

    def usable(self) -> bool:
        """
        Whether the directory exists (or could be created), is ours and is private.

        Checked on every use (one ``stat``), so a directory that is opened up or handed to another
        user stops being used at once; each change of verdict is logged once.
        """
        problem = self._directory_problem()
        if problem != self._problem:
            self._problem = problem
            if problem:
                log.warning(*problem)
        return problem is None

    def _directory_problem(self) -> tuple[Any, ...] | None:
        """None for a usable directory, else the warning (a format and its arguments)."""
        try:
            try:
                problem, info = directory_problem(self.directory)
            except FileNotFoundError:
                self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                problem, info = directory_problem(self.directory)
        except OSError as err:
            return ("ECR token cache disabled: cannot create %s (%s).", self.directory, err.strerror)
        if problem == "foreign_link":
            return (
                "ECR token cache disabled: %s is a symbolic link of another user; "
                "set [ecr] cache_dir to a directory of this user to enable the cache.",
                self.directory,
            )
        if problem == "foreign_owner":
            return ("ECR token cache disabled: %s belongs to another user.", self.directory)
        if problem == "open_mode":
            return (
                "ECR token cache disabled: %s is accessible to other users (mode %o); "
                "make it 0700 to enable the cache.",
                self.directory,
                stat.S_IMODE(info.st_mode),
            )
        return None

    def inspect(self) -> CacheInspection:
        """Whether the cache can work here, with the rules :meth:`usable` applies, creating nothing."""
        directory = self.directory
        details: dict[str, Any] = {"enabled": True, "directory": str(directory)}
        with contextlib.suppress(OSError):
            link = os.lstat(directory)
            if stat.S_ISLNK(link.st_mode):
                details.update(symlink_to=os.path.realpath(directory), link_owner=_user(link.st_uid))
                if foreign_link(link):
                    return CacheInspection(
                        "warn",
                        f"{directory} is a symbolic link of {_user(link.st_uid)}, not of this user "
                        f"({_user(os.geteuid())}): the cache is off",
                        fix=f"set {CACHE_DIR_SETTING} to a directory of this user, or remove the link",
                        details=details,
                    )
                if not os.path.exists(directory):
                    return CacheInspection(
                        "warn",
                        f"{directory} is a symbolic link to {details['symlink_to']}, which does not exist",
                        fix=f"create the target (mkdir -m 700), remove the link, or set {CACHE_DIR_SETTING}",
                        details=details,
                    )
        try:
            info = directory.stat()
        except FileNotFoundError:
            parent = next((p for p in directory.parents if p.exists()), Path("/"))
            details["exists"] = False
            if os.access(parent, os.W_OK | os.X_OK):
                return CacheInspection(
                    "ok", f"{directory} does not exist yet; it is created (mode 0700) on first use", details=details
                )
            return CacheInspection(
                "warn",
                f"{directory} does not exist and cannot be created: {parent} is not writable by this user",
                fix=f"create it (mkdir -m 700 {directory}) or set {CACHE_DIR_SETTING}; "
                "until then every task fetches its own token",
                details=details,
            )
        except OSError as err:
            return CacheInspection(
                "warn",
                f"cannot inspect {directory}: {err.strerror}",
                fix=f"fix it or set {CACHE_DIR_SETTING}",
                details=details,
            )
        mode = stat.S_IMODE(info.st_mode)
        details.update(exists=True, owner=_user(info.st_uid), mode=f"{mode:04o}")
        if not stat.S_ISDIR(info.st_mode):
            return CacheInspection(
                "warn", f"{directory} is not a directory", fix=f"remove it or set {CACHE_DIR_SETTING}", details=details
            )
        problem = private_problem(info)
        if problem == "foreign_owner":
            return CacheInspection(
                "warn",
                f"{directory} belongs to {_user(info.st_uid)}, not to this user ({_user(os.geteuid())}): "
                "the cache is off",
                fix=f"run tasks as its owner, chown it, or set {CACHE_DIR_SETTING} to a directory of this user",
                details=details,
            )
        if problem == "open_mode":
            return CacheInspection(
                "warn",
                f"{directory} has mode {mode:04o}, open to other users: the cache is off (tokens are secrets)",
                fix=f"chmod 700 {directory}",
                details=details,
            )
        if not os.access(directory, os.W_OK | os.X_OK):
            return CacheInspection(
                "warn", f"{directory} is not writable: the cache is off", fix=f"chmod 700 {directory}", details=details
            )
        entries = list(directory.glob("*.json"))
        exposed = [p.name for p in entries if _mode_or_zero(p) & 0o077]
        details["entries"] = len(entries)
        if exposed:
            return CacheInspection(
                "warn",
                f"{len(exposed)} cache file(s) in {directory} are readable by others and ignored",
                fix=f"chmod 600 {directory}/*.json (or delete them)",
                details=details,
            )
        return CacheInspection(
            "ok", f"{directory} (mode {mode:04o}, owner {_user(info.st_uid)}, {len(entries)} token(s))", details=details
        )

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

    def _open_lock(self, name: str, generation: int) -> int | None:
        """The lock file of ``name`` (a takeover's from generation 1), opened; None if it cannot be."""
        suffix = ".lock" if generation == 0 else f".{generation}.lock"
        try:
            return os.open(self._path(name, suffix), os.O_RDWR | os.O_CREAT | NOFOLLOW, 0o600)
        except OSError as err:
            log.warning("Cannot open the ECR token cache lock (%s); fetching without it.", err.strerror)
            return None

    @contextlib.contextmanager
    def lock(self, name: str, timeout: float, ready: Callable[[], bool] | None = None) -> Iterator[LockState]:
        """
        Hold the cross-process lock ``name`` for the block, or stop waiting once ``ready()`` (polled
        while waiting: another process stored what the caller needs); yield how the wait ended.

        A holder slower than ``timeout`` (ECR slow, botocore retrying for minutes) is not stampeded:
        after ``timeout`` one waiter takes over with a takeover lock, the others keep waiting and
        re-checking; further takeovers back off (3, 7 times ``timeout``; :data:`LOCK_TAKEOVERS`).
        Only after 15 times ``timeout`` does a waiter go on without a lock (``busy``); ``timeout``
        0 tries once. The kernel drops a ``flock`` when its holder dies, so a killed holder is
        replaced at once.

        :param name: the lock's name (a non-secret hash).
        :param timeout: seconds to wait for a holder before taking over from it.
        :param ready: polled while waiting; True ends the wait with ``ready``.
        """
        if not self.usable():
            yield "unavailable"
            return
        generation = 0
        fd = self._open_lock(name, generation)
        try:
            started = time.monotonic()
            delay = 0.002
            state: LockState = "unavailable"
            while fd is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    state = "held"
                    break
                except OSError as err:
                    if err.errno not in (errno.EAGAIN, errno.EACCES):
                        log.warning("ECR token cache lock failed (%s); fetching without it.", err.strerror)
                        break
                if ready is not None and ready():
                    state = "ready"
                    break
                waited = time.monotonic() - started
                # Takeovers back off: after 1, 3, 7, 15 timeouts (each a fetch more for a slow ECR).
                if waited >= timeout * (2 ** (generation + 1) - 1):
                    if timeout <= 0 or generation >= LOCK_TAKEOVERS:
                        if timeout > 0:
                            log.warning(
                                "Waited %.0f s for other processes fetching an ECR token; fetching without a lock.",
                                waited,
                            )
                        state = "busy"
                        break
                    generation += 1
                    log.warning(
                        "Waited %.0f s for another process fetching an ECR token; moving to takeover lock %d of %d "
                        "(one waiter fetches, the others keep waiting).",
                        waited,
                        generation,
                        LOCK_TAKEOVERS,
                    )
                    os.close(fd)
                    fd = self._open_lock(name, generation)
                    continue  # try the takeover lock at once
                time.sleep(delay * (1 + random.random()))  # noqa: S311 - jitter, not crypto
                delay = min(delay * 2, 0.05)
            yield state
        finally:
            if fd is not None:
                os.close(fd)  # closing drops the lock
