"""
Find secrets where they must not be: command lines and environments of processes, task logs,
XCom, rendered template fields, exception texts and files.

A test of a DAG that handles ECR tokens (or any other secret) samples the processes while the DAG
runs, then scans what the run left behind::

    from airflow_ecr_lab.leaks import ProcessSampler, ecr_secret_forms, scan_files, scan_sqlite

    with ProcessSampler(secret_source=lambda: {emulator.password("123456789012")}) as sampler:
        run_the_dag()
    secrets = ecr_secret_forms(sampler.secrets)
    leaks = [
        *sampler.leaks(secrets),
        *scan_files([airflow_home], secrets),
        *scan_sqlite(airflow_home / "airflow.db", secrets),
    ]
    assert not leaks, "\\n".join(map(str, leaks))

Every finding is a :class:`Leak` naming where the secret was, with the secret blanked out of the
excerpt, so a failing assertion never prints the secret itself.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

# Shorter strings would match by chance (and no real token is this short).
MIN_SECRET_LENGTH = 8
_BLANK = b"<SECRET>"


@dataclass(frozen=True)
class Leak:
    """
    One place a secret was found.

    :param where: e.g. ``pid 42 cmdline``, ``file /path (mode 0644)``, ``table xcom row 3 column value``.
    :param excerpt: the text around the secret, the secret replaced by ``<SECRET>``.
    """

    where: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.where}: {self.excerpt}"


def _needles(secrets: Iterable[str]) -> list[bytes]:
    needles = []
    for secret in secrets:
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(f"a secret of {len(secret)} characters would match by chance: give longer ones")
        needles.append(secret.encode())
    return needles


def ecr_secret_forms(passwords: Iterable[str], hosts: Iterable[str] = ()) -> set[str]:
    """
    The forms an ECR registry password travels in: those Airflow's masker is given
    (:func:`airflow_ecr.tokens.token.secret_forms`: the password, ECR's ``authorizationToken``
    ``base64("AWS:<password>")``, each URL-encoded), and for each of ``hosts`` the
    ``X-Registry-Auth`` header docker-py sends for it (base64 of the auth JSON).

    :param passwords: the registry passwords (e.g. from ``EmulatorClient.password``).
    :param hosts: registry hosts the password was used for.
    """
    from airflow_ecr.tokens.token import EcrToken, secret_forms

    forms: set[str] = set()
    hosts = list(hosts)
    for password in passwords:
        forms.update(secret_forms(password))
        token = EcrToken(username="AWS", password=password, proxy_endpoint="", expires_at=0.0, issued_at=0.0)
        for host in hosts:
            # As docker.auth.encode_header writes the auth config we hand docker-py.
            forms.add(base64.urlsafe_b64encode(json.dumps(token.docker_auth(host)).encode("ascii")).decode())
    return forms


def _excerpt(data: bytes, needle: bytes, needles: Iterable[bytes], width: int = 60) -> str:
    """The text around the first ``needle``, with every secret (not only this one) blanked out."""
    secrets = sorted({needle, *needles}, key=len, reverse=True)
    at = data.find(needle)
    low, high = max(0, at - width), at + len(needle) + width
    # Match in a window wider by the longest secret, so that a secret cut by an edge of the
    # excerpt is still found and blanked whole instead of showing in part.
    origin = max(0, low - len(secrets[0]))
    window = data[origin : high + len(secrets[0])]
    pattern = re.compile(b"|".join(re.escape(secret) for secret in secrets))  # longest first
    out, position = bytearray(), low - origin
    for match in pattern.finditer(window):
        if match.end() <= position or match.start() >= high - origin:
            continue
        out += window[position : match.start()] + _BLANK
        position = match.end()
    out += window[position : max(position, high - origin)]
    return bytes(out).replace(b"\0", b" ").decode(errors="replace").replace("\n", "\\n")


def scan_text(where: str, text: str | bytes, secrets: Iterable[str]) -> list[Leak]:
    """
    The secrets found in one text.

    :param where: how findings name the text, e.g. ``task log first``.
    :param text: the text (or bytes).
    :param secrets: the secrets to look for (at least 8 characters each).
    """
    data = text.encode(errors="replace") if isinstance(text, str) else text
    needles = _needles(secrets)
    return [Leak(where, _excerpt(data, needle, needles)) for needle in needles if needle in data]


def scan_texts(texts: Mapping[str, str | bytes], secrets: Iterable[str]) -> list[Leak]:
    """
    The secrets found in several texts (task logs, exception messages, command output...).

    :param texts: name -> text.
    :param secrets: the secrets to look for.
    """
    secrets = list(secrets)
    return [leak for where, text in texts.items() for leak in scan_text(where, text, secrets)]


def scan_files(
    roots: Iterable[str | os.PathLike[str]],
    secrets: Iterable[str],
    *,
    skip: Iterable[str | os.PathLike[str]] = (),
    max_bytes: int = 64 * 1024 * 1024,
) -> list[Leak]:
    """
    The secrets found in every regular file under ``roots`` (symbolic links are not followed).

    Findings name the file and its mode, so that a test can allow one place on purpose (a private
    cache file) and refuse every other.

    :param roots: files or directories.
    :param secrets: the secrets to look for.
    :param skip: directories (or files) not to look into, e.g. a Docker engine's data root.
    :param max_bytes: larger files are read up to this size only.
    """
    needles = _needles(secrets)
    skipped = {Path(p).resolve() for p in skip}
    leaks: list[Leak] = []
    for root in roots:
        for path in _walk(Path(root), skipped):
            try:
                with open(path, "rb") as handle:
                    info = os.fstat(handle.fileno())
                    data = handle.read(max_bytes)
            except OSError:
                continue
            for needle in needles:
                if needle in data:
                    mode = stat.S_IMODE(info.st_mode)
                    leaks.append(Leak(f"file {path} (mode {mode:04o})", _excerpt(data, needle, needles)))
    return leaks


def _walk(root: Path, skipped: set[Path]) -> Iterable[Path]:
    if root.resolve() in skipped:
        return
    if root.is_file() and not root.is_symlink():
        yield root
        return
    for directory, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = [d for d in dirnames if (Path(directory) / d).resolve() not in skipped]
        for name in filenames:
            path = Path(directory) / name
            if path.is_file() and not path.is_symlink() and path.resolve() not in skipped:
                yield path


def scan_sqlite(path: str | os.PathLike[str], secrets: Iterable[str]) -> list[Leak]:
    """
    The secrets found in any column of any table of a SQLite database, e.g. Airflow's metadata
    database (``xcom``, ``rendered_task_instance_fields``, ``log``, ``task_instance``...).

    :param path: the database file (opened read-only).
    :param secrets: the secrets to look for.
    """
    needles = _needles(secrets)
    leaks: list[Leak] = []
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as conn:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            cursor = conn.execute(f'SELECT rowid, * FROM "{table}"')  # noqa: S608 - names from sqlite_master
            columns = [d[0] for d in cursor.description][1:]
            for rowid, *values in cursor:
                for column, value in zip(columns, values, strict=True):
                    if value is None or isinstance(value, (int, float)):
                        continue
                    data = value if isinstance(value, bytes) else str(value).encode(errors="replace")
                    for needle in needles:
                        if needle in data:
                            where = f"table {table} row {rowid} column {column}"
                            leaks.append(Leak(where, _excerpt(data, needle, needles)))
    return leaks


class ProcessSampler:
    """
    Reads every visible process's ``/proc/<pid>/cmdline`` (what ``ps`` shows every local user)
    and ``/proc/<pid>/environ`` every ``interval`` seconds, in a thread, while in its block.

    :param interval: seconds between samples.
    :param environ: also read the environments (those of other users' processes need root).
    :param secret_source: called every ``secret_interval`` seconds (and at the end); what it returns
        is added to :attr:`secrets`. For secrets that change during the run, such as ECR tokens
        that rotate.
    :param secret_interval: seconds between calls of ``secret_source``.
    """

    def __init__(
        self,
        interval: float = 0.05,
        *,
        environ: bool = True,
        secret_source: Callable[[], Iterable[str]] | None = None,
        secret_interval: float = 0.5,
    ) -> None:
        self.interval = interval
        self.environ = environ
        self.secret_source = secret_source
        self.secret_interval = secret_interval
        self.seen: dict[bytes, str] = {}  # content -> where it was first seen
        self.secrets: set[str] = set()
        self.samples = 0
        self.errors: list[str] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="leak-process-sampler")

    def _run(self) -> None:
        next_secrets = 0.0
        while not self._done.is_set():
            self.sample()
            if self.secret_source is not None and time.monotonic() >= next_secrets:
                self._collect_secrets()
                next_secrets = time.monotonic() + self.secret_interval
            self._done.wait(self.interval)

    def _collect_secrets(self) -> None:
        assert self.secret_source is not None
        try:
            self.secrets.update(self.secret_source())
        except Exception as err:  # a sampler must not die with its source: report it instead
            self.errors.append(f"secret_source: {err!r}")

    def sample(self) -> None:
        """Read every process once."""
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue  # gone already
            command = cmdline.replace(b"\0", b" ").strip()
            if command and command not in self.seen:
                self.seen[command] = f"pid {proc.name} cmdline"
            if not self.environ:
                continue
            try:
                environ = (proc / "environ").read_bytes()
            except OSError:
                continue
            if environ and environ not in self.seen:
                self.seen[environ] = f"pid {proc.name} environ of {command[:100].decode(errors='replace')!r}"
        self.samples += 1

    def start(self) -> ProcessSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling (after one last sample and one last call of ``secret_source``)."""
        self._done.set()
        self._thread.join(timeout=30)
        self.sample()
        if self.secret_source is not None:
            self._collect_secrets()

    def __enter__(self) -> ProcessSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def leaks(self, secrets: Iterable[str] | None = None) -> list[Leak]:
        """
        The command lines and environments seen that held a secret.

        :param secrets: the secrets to look for; default :attr:`secrets`.
        """
        needles = _needles(self.secrets if secrets is None else secrets)
        return [
            Leak(where, _excerpt(content, needle, needles))
            for content, where in self.seen.items()
            for needle in needles
            if needle in content
        ]
