"""
Verdicts cached per digest on the host, so that a warm task pays no registry or AWS request.

A digest is immutable, so a passing verdict holds for it until one of its outcomes expires (a scan's
refresh, a revocation answer's lifetime: :attr:`Verdict.expires_at
<airflow_ecr.trust.outcome.Verdict.expires_at>`) or the rule changes (its :attr:`fingerprint
<airflow_ecr.trust.policy.ImageRule.fingerprint>` covers the rule and the files it names). One file
per (digest, rule fingerprint) in ``<host cache>/verdicts/``, kept under the token cache's rules: the
same directory checks (0700, this user's), private files (0600, owner checked on every read), atomic
writes; those rules are :mod:`airflow_ecr.tokens.private_files`' and :class:`FileStore
<airflow_ecr.tokens.store.FileStore>`'s, used here, not restated.

Only passing verdicts are kept. A refusal is checked again by the next try, so that an image fixed
since (scanned again, signed, its finding allowlisted) runs at once: a cached refusal could only
delay that, and it would save requests only for tasks that fail anyway. Every problem (missing,
expired, corrupt, foreign file, unusable directory) is a miss: the cache can make a check faster,
never decide it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_ecr.tokens.cache import cache_directory
from airflow_ecr.tokens.private_files import MAX_ENTRY_SIZE, read_private_json
from airflow_ecr.tokens.store import FileStore
from airflow_ecr.trust.outcome import RuleOutcome, Verdict

if TYPE_CHECKING:
    from airflow_ecr.settings import EcrSettings

log = logging.getLogger(__name__)

VERDICTS_DIR = "verdicts"
_SUFFIX = ".verdict"
_RECORD_VERSION = 1


def verdict_to_json(verdict: Verdict, rule_fingerprint: str) -> dict[str, Any]:
    """
    A verdict as the cache file holds it (``cached`` is not kept: a read sets it).

    :param verdict: the verdict.
    :param rule_fingerprint: the fingerprint of the rule it answers.
    """
    return {
        "version": _RECORD_VERSION,
        "digest": verdict.digest,
        "rule": rule_fingerprint,
        "image": verdict.image,
        "scope": verdict.scope,
        "outcomes": [outcome.as_json() for outcome in verdict.outcomes],
    }


def verdict_from_json(data: Mapping[str, Any]) -> Verdict:
    """
    The verdict a cache file holds.

    :param data: what :func:`verdict_to_json` wrote.
    :raises KeyError, TypeError, ValueError: for anything else.
    """
    if data.get("version") != _RECORD_VERSION:
        raise ValueError(f"record version {data.get('version')!r}")
    for item in data["outcomes"]:
        # from_json converts what it reads (bool("false") is True): what decides must be typed already.
        expires_at = item.get("expires_at")
        if not isinstance(item["passed"], bool) or not (expires_at is None or isinstance(expires_at, (int, float))):
            raise TypeError("an outcome's passed or expires_at")
    outcomes = tuple(RuleOutcome.from_json(item) for item in data["outcomes"])
    return Verdict(str(data["image"]), str(data["digest"]), str(data["scope"]), outcomes)


def entry_name(digest: str, rule_fingerprint: str) -> str:
    """
    The file name of a (digest, rule) entry: a hash of both, never a path taken from the input.

    :param digest: the image's digest.
    :param rule_fingerprint: the rule's fingerprint.
    """
    return hashlib.sha256(f"{digest}\n{rule_fingerprint}".encode()).hexdigest()


class VerdictCache:
    """
    Passing verdicts kept per (digest, rule fingerprint) in ``<directory>/verdicts/``.

    :param directory: the host cache directory (the token cache's, :func:`cache_directory
        <airflow_ecr.tokens.cache.cache_directory>`); created 0700 if missing.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory / VERDICTS_DIR
        # The host cache itself first: the verdicts' directory is created inside it, and the cache
        # directory must not be created by a mkdir with the process's umask.
        self._host = FileStore(directory)
        self._store = FileStore(self.directory)

    @classmethod
    def for_settings(cls, settings: EcrSettings) -> VerdictCache | None:
        """
        The verdict cache of the host cache ``settings`` name; None when the cache is off
        (``[ecr] cache_enabled = False``): every task then checks its image.

        :param settings: the ``[ecr]`` settings.
        """
        directory = cache_directory(settings)
        return None if directory is None else cls(directory)

    def usable(self) -> bool:
        """Whether both directories exist (or were just made), are this user's and private."""
        return self._host.usable() and self._store.usable()

    def path(self, digest: str, rule_fingerprint: str) -> Path:
        """The file of the (digest, rule) entry."""
        return self.directory / f"{entry_name(digest, rule_fingerprint)}{_SUFFIX}"

    def get(self, digest: str, rule_fingerprint: str, now: float, *, image: str | None = None) -> Verdict | None:
        """
        The cached passing verdict of ``digest`` under the rule, with ``cached=True``; None when
        there is none, it has expired, or its file is unreadable, corrupt or not private.

        :param digest: the digest that will run.
        :param rule_fingerprint: the effective rule's :attr:`~airflow_ecr.trust.policy.ImageRule.fingerprint`.
        :param now: the time, epoch seconds.
        :param image: the image as this task names it (the cached verdict names the image as the
            task that checked it did); None keeps that name.
        """
        if not self.usable():
            return None
        path = self.path(digest, rule_fingerprint)
        try:
            data = read_private_json(path)
            if data is None:
                log.warning("Ignoring image policy verdict %s: not private to this user.", path)
                return None
            verdict = verdict_from_json(data)
            if data["digest"] != digest or data["rule"] != rule_fingerprint:
                raise ValueError("another digest or rule")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            log.warning("Ignoring unreadable image policy verdict %s (%s).", path, type(err).__name__)
            return None
        if not verdict.passed:
            return None
        expires_at = verdict.expires_at
        if expires_at is not None and now >= expires_at:
            # Checked again now, and the fresh verdict replaces this file; until then it is dead weight.
            with contextlib.suppress(OSError):
                os.unlink(path)
            return None
        return replace(verdict, cached=True, image=image if image is not None else verdict.image)

    def put(self, verdict: Verdict, rule_fingerprint: str) -> None:
        """
        Keep a passing verdict (a refusal is not kept: see the module's description), unless it has
        expired already or is too large for a cache read.

        :param verdict: the verdict the checks just gave.
        :param rule_fingerprint: the fingerprint of the rule it answers.
        """
        if not verdict.passed:
            return
        expires_at = verdict.expires_at
        if expires_at is not None and expires_at <= time.time():
            return
        record = verdict_to_json(verdict, rule_fingerprint)
        if len(json.dumps(record)) > MAX_ENTRY_SIZE:
            log.debug("Not caching the image policy verdict of %s: larger than a cache entry.", verdict.digest)
            return
        if self._host.usable():
            self._store.write_record(entry_name(verdict.digest, rule_fingerprint), _SUFFIX, record)
