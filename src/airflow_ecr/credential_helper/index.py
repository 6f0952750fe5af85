"""
The credential helper's index: which host cache entry answers ``get`` for this process's identity
and a registry host, read without importing Airflow (a warm ``get`` runs once per ``docker pull``).

A record, written by the cold path (:mod:`~airflow_ecr.credential_helper.cold`) after the token cache
served a token, maps (:func:`locator`, host) to the token's cache key, and says until when it may be
used without asking Airflow again:

- ``serve_until``: the earlier of when the refresh policy wants a new token and when the token stops
  being usable (both decided by :class:`~airflow_ecr.tokens.policy.RefreshPolicy` on the cold path);
- ``valid_until``: now + ``[ecr] identity_recheck``, the window in which every mode trusts a recorded
  "connection -> identity" without reading the connection (0: no record, every ``get`` is cold);
- ``issued_at``: the token it was written for: once another process refreshes that cache entry, the
  record no longer matches and the next ``get`` is cold (it reads the new token through the cache).

The locator must change whenever the same ``[ecr] aws_conn_id`` could name another identity. The
warm path cannot ask Airflow (that is the import it avoids), so it takes everything Airflow would
read to resolve the id: every ``AIRFLOW_*`` variable (configuration overrides and their ``_CMD`` /
``_SECRET`` forms, ``AIRFLOW_CONN_*`` connections, the team, ``AIRFLOW_HOME`` / ``AIRFLOW_CONFIG``)
but the task context (``AIRFLOW_CTX_*``, which names the task, not the deployment),
the configuration file's bytes (the database, the secrets backends, ``[ecr]`` itself), and the AWS
credential facts of the environment (:func:`~airflow_ecr.tokens.credential_facts.environment_facts`).
Any change to them is a miss, never a wrong identity. What none of them shows, an edit of the
connection in the metadata database or a secrets backend, counts after ``identity_recheck``, as in
every other mode (docs/credential-helper.md).
"""

from __future__ import annotations

import os

from airflow_ecr.tokens.private_files import NOFOLLOW, default_cache_path, private_directory, read_private_json

# typing.TYPE_CHECKING without importing typing (see airflow_ecr/__init__.py): this module, like
# everything a warm get imports, sticks to os, stat and json (no pathlib, typing, contextlib).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

try:
    # CPython's own SHA-256 (3.12+; _sha256 before): hashlib loads OpenSSL first, 2 ms per warm get.
    from _sha2 import sha256  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover - per interpreter
    try:
        from _sha256 import sha256  # type: ignore[import-not-found,no-redef,unused-ignore]
    except ImportError:
        from hashlib import sha256  # type: ignore[assignment,no-redef,unused-ignore]

INDEX_VERSION = 1
INDEX_SUFFIX = ".helper"
LOCK_SUFFIX = ".helper-lock"
USERNAME = "AWS"


def server_host(server_url: str) -> str:
    """
    The registry host of a server URL as Docker sends it (``host``, ``https://host``,
    ``https://host/v2/``), lowercased; what the helper serves and indexes.

    :param server_url: the protocol's ``get`` input.
    """
    name = server_url.strip()
    for scheme in ("https://", "http://"):
        if name.lower().startswith(scheme):
            name = name[len(scheme) :]
    return name.split("/", 1)[0].lower()


def config_path(environ: Mapping[str, str]) -> str:
    """
    Airflow's configuration file, found as Airflow finds it (``AIRFLOW_CONFIG``, else in ``AIRFLOW_HOME``).

    :param environ: the environment (``os.environ``).
    """
    if environ.get("AIRFLOW_CONFIG"):
        return os.path.expanduser(environ["AIRFLOW_CONFIG"])
    home = environ.get("AIRFLOW_HOME") or os.path.join(os.path.expanduser("~"), "airflow")
    return os.path.join(os.path.expanduser(home), "airflow.cfg")


def _file_digest(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            return sha256(handle.read()).hexdigest()
    except OSError:
        return "absent"


def _names_the_deployment(name: str) -> bool:
    """
    Whether an ``AIRFLOW*`` variable enters the locator: all but the task context the task runner
    exports to every task (``AIRFLOW_CTX_DAG_ID``, ``..._TASK_ID``, ``..._DAG_RUN_ID``, ...), which a
    ``DockerOperator``'s helper process inherits: with them, every task would miss the record of the
    one before. The team (``AIRFLOW_CTX_TEAM_NAME``) stays: it selects connections.
    """
    return not name.startswith("AIRFLOW_CTX_") or name == "AIRFLOW_CTX_TEAM_NAME"


def locator(environ: Mapping[str, str]) -> str:
    """
    What selects the identity and the cache this process would use, as one non-secret hash (see the
    module's docstring). Values enter the hash only: a secret in a variable never reaches a file name.

    :param environ: the environment (``os.environ``).
    """
    from airflow_ecr.tokens.credential_facts import environment_facts

    digest = sha256(f"helper-v{INDEX_VERSION}|uid={os.geteuid()}".encode())
    for name in sorted(n for n in environ if n.startswith("AIRFLOW") and _names_the_deployment(n)):
        digest.update(f"|{name}={environ[name]}".encode())
    digest.update(f"|cfg={_file_digest(config_path(environ))}|".encode())
    digest.update(repr(environment_facts(environ)).encode())
    return digest.hexdigest()


def record_name(locator_: str, host: str) -> str:
    """
    The record's file name (without suffix) for a locator and host.

    :param locator_: a :func:`locator`.
    :param host: the registry host.
    """
    return sha256(f"{locator_}|{host}".encode()).hexdigest()[:40]


def index_directory(environ: Mapping[str, str]) -> str:
    """
    Where the records live: ``AIRFLOW__ECR__CACHE_DIR`` when set, else the default cache directory.
    A ``cache_dir`` set only in the configuration file is not read here (that would take Airflow's
    parser): the record then names that directory as the one holding the token.

    :param environ: the environment (``os.environ``).
    """
    configured = environ.get("AIRFLOW__ECR__CACHE_DIR")
    return os.path.expanduser(configured) if configured else default_cache_path()


def _read(path: str) -> Any:
    try:
        return read_private_json(path)
    except (OSError, ValueError):
        return None  # missing, foreign, corrupt: a miss, and the cold path rewrites it


def warm_get(host: str, locator_: str, environ: Mapping[str, str], now: float) -> tuple[str, str] | None:
    """
    (username, secret) from the host cache when a record of this locator and host is current and
    the token it names is still the one cached; else None (the caller takes the cold path).

    :param host: the registry host (:func:`server_host`).
    :param locator_: this process's :func:`locator`.
    :param environ: the environment (``os.environ``).
    :param now: the time of the lookup (epoch seconds).
    """
    directory = index_directory(environ)
    if not private_directory(directory):
        return None
    record = _read(os.path.join(directory, record_name(locator_, host) + INDEX_SUFFIX))
    try:
        if record.get("version") != INDEX_VERSION or record["host"] != host:
            return None
        if not (now < float(record["valid_until"]) and now < float(record["serve_until"])):
            return None
        token_dir = str(record["token_dir"])
        if token_dir != directory and not private_directory(token_dir):
            return None
        entry = _read(os.path.join(token_dir, f"{record['key']}.json"))
        if entry.get("version") != record["format"] or entry["issued_at"] != record["issued_at"]:
            return None
        return str(entry["username"]), str(entry["password"])
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def take_turn(host: str, locator_: str, environ: Mapping[str, str], timeout: float) -> int | None:
    """
    Wait (up to ``timeout`` seconds) for this host's turn at the cold path: a ``flock`` per record,
    so that of N processes missing together one imports Airflow and asks the token cache, and the
    others, once it is done, find its record warm (the token cache has its own single flight; this
    one saves N - 1 imports of Airflow, seconds of CPU each). Returns the lock's descriptor (to
    :func:`end_turn`), or None when there is no private directory to lock in or the wait timed out:
    the caller goes on without it.

    :param host: the registry host.
    :param locator_: this process's :func:`locator`.
    :param environ: the environment (``os.environ``).
    :param timeout: how long to wait for a process already on the cold path.
    """
    import fcntl
    import time

    directory = index_directory(environ)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError:
        return None
    if not private_directory(directory):
        return None
    path = os.path.join(directory, record_name(locator_, host) + LOCK_SUFFIX)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | NOFOLLOW, 0o600)
    except OSError:
        return None
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError:
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            time.sleep(0.05)


def end_turn(fd: int | None) -> None:
    """Release a turn from :func:`take_turn` (closing the descriptor releases the ``flock``)."""
    if fd is not None:
        os.close(fd)


def hosts(environ: Mapping[str, str], now: float) -> list[str]:
    """
    The hosts with a current record for this locator (the protocol's ``list``).

    :param environ: the environment (``os.environ``).
    :param now: the time of the lookup (epoch seconds).
    """
    directory = index_directory(environ)
    if not private_directory(directory):
        return []
    mine = locator(environ)
    found = []
    for name in sorted(os.listdir(directory)):
        record = _read(os.path.join(directory, name)) if name.endswith(INDEX_SUFFIX) else None
        try:
            if isinstance(record, dict) and record.get("locator") == mine and now < float(record["valid_until"]):
                found.append(str(record["host"]))
        except (KeyError, TypeError, ValueError):
            continue  # not a record of ours: the cold path rewrites what it needs
    return found


def record(
    host: str,
    key: str,
    token_dir: str | os.PathLike[str],
    token: Any,
    times: tuple[float, float],
    locator_: str,
    environ: Mapping[str, str],
) -> tuple[str, str, dict[str, Any]]:
    """
    Where a record goes (directory, name) and what it holds: never the token, only where it is.

    :param host: the registry host served.
    :param key: the token's cache key (:meth:`TokenCache.keys <airflow_ecr.tokens.cache.TokenCache.keys>`).
    :param token_dir: the host cache directory holding it.
    :param token: the :class:`~airflow_ecr.tokens.token.EcrToken` served.
    :param times: ``serve_until``, when the warm path must stop handing it out (the refresh
        policy's answer), and ``valid_until``, when the identity must be resolved again
        (``[ecr] identity_recheck``).
    :param locator_: the :func:`locator` of the process that asked (taken before it read Airflow's
        configuration, which may set variables).
    :param environ: the environment (``os.environ``), for the index directory.
    """
    from airflow_ecr.tokens.token import CACHE_FORMAT_VERSION

    mine = locator_
    serve_until, valid_until = times
    data = {
        "version": INDEX_VERSION,
        "locator": mine,
        "host": host,
        "key": key,
        "token_dir": os.fspath(token_dir),
        "format": CACHE_FORMAT_VERSION,
        "issued_at": token.issued_at,
        "serve_until": serve_until,
        "valid_until": valid_until,
    }
    return index_directory(environ), record_name(mine, host), data
