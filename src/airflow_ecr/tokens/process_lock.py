"""
The host cache's cross-process lock: single flight for every task process of a worker.

One process fetches a token while the others wait for it to land in the cache. The lock is a
``flock`` on a file beside the tokens (``<name>.lock``), so the kernel releases it the moment its
holder dies: a killed holder is replaced at once, with no stale lock file to clean up.

A holder that is alive but slow (ECR slow, botocore retrying for minutes) is not stampeded. The
takeover rules, with ``timeout`` the caller's ``lock_timeout``:

- the waiters poll the lock, and ``ready()`` (another process stored what they need: the wait ends);
- after ``timeout``, the first waiter to notice moves to takeover lock 1 (``<name>.1.lock``) and,
  holding it, fetches; the other waiters move there too and wait for it, re-checking the cache;
- each further takeover waits longer: lock 2 after 3 times ``timeout``, lock 3 after 7 times
  (:data:`LOCK_TAKEOVERS` takeovers, each one fetch more for a slow ECR);
- after 15 times ``timeout`` the waiters fetch without a lock (``busy``); a ``timeout`` of 0 tries once.

A lock file that cannot be opened or locked (read-only filesystem, no ``flock`` support) is logged
and the caller fetches without a lock (``unavailable``): a lock can make things faster, never make
them fail.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

from airflow_ecr.tokens.private_files import NOFOLLOW

log = logging.getLogger(__name__)

# How many times a waiter takes over, with a takeover lock of its own, from holders still busy
# (ECR slow, botocore retrying) after lock_timeout, then 3, 7 times it; after 15 times
# lock_timeout the waiters fetch without a lock.
LOCK_TAKEOVERS = 3

# How a wait for the lock ended: this process holds it; another process stored the result
# meanwhile; another process holds it (and every takeover); or no lock can be used here.
LockState = Literal["held", "ready", "busy", "unavailable"]


def _open(directory: Path, name: str, generation: int) -> int | None:
    """The lock file of ``name`` (a takeover's from generation 1), opened; None if it cannot be."""
    suffix = ".lock" if generation == 0 else f".{generation}.lock"
    try:
        return os.open(directory / f"{name}{suffix}", os.O_RDWR | os.O_CREAT | NOFOLLOW, 0o600)
    except OSError as err:
        log.warning("Cannot open the ECR token cache lock (%s); fetching without it.", err.strerror)
        return None


@contextlib.contextmanager
def hold(directory: Path, name: str, timeout: float, ready: Callable[[], bool] | None = None) -> Iterator[LockState]:
    """
    Hold the lock ``name`` in ``directory`` for the block, or stop waiting once ``ready()``; yield
    how the wait ended (the takeover rules are this module's).

    :param directory: where the lock files are (the private cache directory).
    :param name: the lock's name (a non-secret hash).
    :param timeout: seconds to wait for a holder before taking over from it.
    :param ready: polled while waiting; True ends the wait with ``ready``.
    """
    generation = 0
    fd = _open(directory, name, generation)
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
                fd = _open(directory, name, generation)
                continue  # try the takeover lock at once
            time.sleep(delay * (1 + random.random()))  # noqa: S311 - jitter, not crypto
            delay = min(delay * 2, 0.05)
        yield state
    finally:
        if fd is not None:
            os.close(fd)  # closing drops the lock
