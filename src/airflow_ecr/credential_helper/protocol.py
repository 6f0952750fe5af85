"""
The ``docker-credential-airflow-ecr`` console script: Docker's credential-helper protocol
(github.com/docker/docker-credential-helpers, ``credentials/credentials.go``).

- ``get``: the server URL on stdin; ``{"ServerURL", "Username", "Secret"}`` on stdout. A host this
  helper does not serve answers the protocol's :data:`NOT_FOUND` with exit code 1, which Docker and
  docker-py read as "no credentials" and so pull anonymously.
- ``list``: ``{server URL: username}`` of the hosts with a current index record for this identity.
- ``store`` / ``erase``: refused, one sentence, exit code 2: tokens come from ECR, not from Docker.

As in the Go helpers, errors go to stdout (Docker shows that text) and any failure exits non-zero.
A warm ``get`` imports no Airflow (:mod:`~airflow_ecr.credential_helper.index`); a cold one does
(:mod:`~airflow_ecr.credential_helper.cold`), with Airflow's own output kept off stdout, which is
the protocol's channel.
"""

from __future__ import annotations

import os
import sys
import time

from airflow_ecr.credential_helper import index
from airflow_ecr.exit_codes import EXIT_HELPER_PROTOCOL as EXIT_PROTOCOL_ERROR
from airflow_ecr.exit_codes import EXIT_UNEXPECTED, EXIT_USAGE, error_result

# typing.TYPE_CHECKING without importing typing (see airflow_ecr/__init__.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO

PROG = "docker-credential-airflow-ecr"
# The protocol's texts (credentials.go: errCredentialsNotFoundMessage, errCredentialsMissingServerURLMessage):
# clients compare them verbatim.
NOT_FOUND = "credentials not found in native keychain"
MISSING_SERVER_URL = "no credentials server URL"
REFUSED = (
    "docker-credential-airflow-ecr does not {action} credentials: it hands out ECR tokens from airflow-ecr's "
    "host cache; remove the registry from 'credHelpers' in Docker's config.json to keep a login of your own."
)
USAGE = f"Usage: {PROG} <get|list|store|erase|version>"
# Seconds a get waits for another process of the host already on the cold path for the same host
# and identity: three times [ecr] lock_timeout's default, past the token call's own retries (51 s).
TURN_TIMEOUT = 180.0


def get(stdin: IO[str], stdout: IO[str]) -> int:
    """
    Answer ``get``: the server URL on stdin, the credentials (or :data:`NOT_FOUND`) on stdout.

    :param stdin: the protocol's input.
    :param stdout: the protocol's output.
    """
    server_url = stdin.read().strip()
    host = index.server_host(server_url)
    if not host:
        stdout.write(MISSING_SERVER_URL + "\n")
        return EXIT_PROTOCOL_ERROR
    # Taken before the cold path sets anything in the environment, so that both paths name one locator.
    locator = index.locator(os.environ)
    found = index.warm_get(host, locator, os.environ, time.time())
    if found is None:
        # One process of those missing together takes the cold path; the others wait, then read its
        # record. The wait is long: the leader's own calls are bounded (botocore's retries, the token
        # cache's lock), a dead leader's flock is released at once, and a waiter that gives up
        # imports Airflow too, which is what made 32 cold gets at once take 114 s on 2 cores.
        turn = index.take_turn(host, locator, os.environ, TURN_TIMEOUT)
        try:
            found = index.warm_get(host, locator, os.environ, time.time())
            if found is None:
                code, cold = _cold(host, locator)
                if isinstance(cold, str):
                    stdout.write(cold + "\n")
                    return code
                found = cold
        finally:
            index.end_turn(turn)
    username, secret = found
    stdout.write(
        f'{{"ServerURL": {_quoted(server_url)}, "Username": {_quoted(username)}, "Secret": {_quoted(secret)}}}\n'
    )
    return 0


def _quoted(text: str) -> str:
    """``json.dumps(text)``; without importing ``json`` (see private_files.loads_flat) for printable ASCII."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    import json

    return json.dumps(text)


def _cold(host: str, locator: str) -> tuple[int, tuple[str, str] | str]:
    """
    The cold path, with whatever Airflow prints sent to stderr: (exit code, the credentials or the
    line to answer instead).
    """
    quiet_airflow()
    saved = _stdout_to_stderr()
    try:
        from airflow_ecr.credential_helper.cold import NotServed, cold_get

        try:
            token = cold_get(host, locator)
        except NotServed:
            return EXIT_PROTOCOL_ERROR, NOT_FOUND
        except Exception as err:
            code, message = error_result(err)
            return code, f"{PROG}: {' '.join(message.split())}"
        return 0, (token.username, token.password)
    finally:
        _restore_stdout(saved)


def quiet_airflow() -> None:
    """Airflow's import-time warnings and INFO logs would reach the caller's log on every cold ``get``."""
    import warnings

    warnings.simplefilter("ignore")
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")


def _stdout_to_stderr() -> int:
    """Point file descriptor 1 at stderr (Airflow 3's structlog writes to it); returns the saved one."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    return saved


def _restore_stdout(saved: int) -> None:
    sys.stdout.flush()
    os.dup2(saved, 1)
    os.close(saved)


def list_hosts(stdout: IO[str]) -> int:
    """
    Answer ``list``: the hosts this identity has a current record for, each with the username ``AWS``.

    :param stdout: the protocol's output.
    """
    import json

    stdout.write(json.dumps(dict.fromkeys(index.hosts(os.environ, time.time()), index.USERNAME)) + "\n")
    return 0


def main(argv: list[str] | None = None, stdin: IO[str] | None = None, stdout: IO[str] | None = None) -> int:
    """
    The console script's entry point; returns the exit code.

    :param argv: the arguments after the program name (default: ``sys.argv[1:]``).
    :param stdin: the protocol's input (default: ``sys.stdin``).
    :param stdout: the protocol's output (default: ``sys.stdout``).
    """
    args = sys.argv[1:] if argv is None else argv
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    if len(args) != 1:
        stdout.write(USAGE + "\n")
        return EXIT_PROTOCOL_ERROR
    action = args[0]
    try:
        if action == "get":
            return get(stdin, stdout)
        if action == "list":
            return list_hosts(stdout)
        if action in ("store", "erase"):
            stdin.read()  # the caller writes its payload before reading the answer
            stdout.write(REFUSED.format(action=action) + "\n")
            return EXIT_USAGE
        if action in ("version", "--version", "-v"):
            from airflow_ecr import __version__

            stdout.write(f"{PROG} {__version__}\n")
            return 0
    except Exception as err:  # never a traceback (nor a secret in one) on the protocol's channel
        stdout.write(f"{PROG}: unexpected {type(err).__name__}\n")
        return EXIT_UNEXPECTED
    stdout.write(f"Unknown credential action `{action}`\n")
    return EXIT_PROTOCOL_ERROR
