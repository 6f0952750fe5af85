"""
What this process keeps between calls, all in one object (:data:`STATE`):

- the ``[ecr]`` settings it has read (:mod:`airflow_ecr.settings`), each with the environment it
  was read under;
- its shared token caches (:meth:`TokenCache.shared <airflow_ecr.tokens.cache.TokenCache.shared>`),
  so that every hook, operator and backend of a task process shares the tokens in memory;
- the image policy files it has read (:func:`airflow_ecr.trust.policy.load_image_policy`);
- every in-memory token store (:class:`~airflow_ecr.tokens.store.MemoryStore`), so that all can be
  emptied at once, those of caches made directly included.

A new task process starts with all of it empty; :func:`reset` brings this process back there
(tests call it before each test, and where a test plays the next task process).

It imports nothing of airflow_ecr, even for typing: :mod:`airflow_ecr.settings` and
:mod:`airflow_ecr.tokens`, above it, keep their state here.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Hashable
from typing import Any, Protocol


class _Emptiable(Protocol):
    """A memory store, as far as the reset needs it (this module imports nothing of airflow_ecr)."""

    def clear(self) -> None: ...


class ProcessState:
    """
    The process-wide state of airflow-ecr.

    :ivar settings_reads: each settings read by name (``ecr_settings``, ``token_retries``, or a
        lazily read option's name): the environment variables it was read under, and its value.
    :ivar token_caches: the shared token cache of each (directory, lock timeout, refresh policy).
    :ivar memory_stores: every memory store of the process (weakly held).
    :ivar image_policies: each image policy file read (by absolute path): its modification time,
        size and inode when read, and the ``ImagePolicy`` (:func:`airflow_ecr.trust.policy.load_image_policy`).
    :ivar lock: held while a shared token cache is made, and by :meth:`reset`.
    """

    def __init__(self) -> None:
        self.settings_reads: dict[str, tuple[tuple[str | None, ...], Any]] = {}
        self.token_caches: dict[Hashable, Any] = {}  # TokenCache: this module is below tokens/
        self.memory_stores: weakref.WeakSet[_Emptiable] = weakref.WeakSet()
        self.image_policies: dict[str, tuple[tuple[int, ...], Any]] = {}  # ImagePolicy: trust/ is above
        self.lock = threading.Lock()

    def reset(self) -> None:
        """
        Forget everything, as a new process starts: the settings are read again, new shared caches
        are made, and every memory store is emptied (those of caches still held too).
        """
        with self.lock:
            self.settings_reads.clear()
            self.token_caches.clear()
            self.image_policies.clear()
            for store in list(self.memory_stores):
                store.clear()


STATE = ProcessState()


def reset() -> None:
    """Forget this process's state (:meth:`ProcessState.reset` of :data:`STATE`)."""
    STATE.reset()
