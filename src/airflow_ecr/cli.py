"""
The ``airflow-ecr`` command.

``airflow-ecr refresh-connection --conn-id ID (--registry HOST | --registry-id ID) [--region R]``
writes a fresh ECR token into an Airflow docker connection, for a cron job or systemd timer.
AWS credentials come the standard boto3 way (environment, profile, web identity, instance role),
or from an Airflow AWS connection with ``--aws-conn-id``. The connection is upserted through the
ORM (the metadata database of this host's Airflow configuration), or through the Airflow 3 REST
API with ``--api-conn-id``. It prints one line and exits with:

====  ===========================================================================
0     the connection was written
1     unexpected error
2     bad arguments (usage, malformed registry id, host or region)
3     AWS refused: no or invalid credentials, or no ``ecr:GetAuthorizationToken``
4     the ECR API was unreachable or failing
5     the connection could not be written (database or REST API down or refusing)
====  ===========================================================================
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from typing import NoReturn

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_USAGE = 2
EXIT_AWS_CREDENTIALS = 3
EXIT_ECR_SERVICE = 4
EXIT_WRITE = 5

PROG = "airflow-ecr"


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (cron mails it), still exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{PROG}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog=PROG, description="Amazon ECR credentials for Apache Airflow.")
    commands = parser.add_subparsers(dest="command", required=True)
    refresh = commands.add_parser(
        "refresh-connection",
        help="write a fresh ECR token into an Airflow docker connection",
        description="Write a fresh ECR token into an Airflow docker connection (upsert, never delete).",
        epilog="exit codes: 0 written, 1 unexpected error, 2 bad arguments, 3 AWS refused (credentials or "
        "ecr:GetAuthorizationToken), 4 ECR API unreachable or failing, 5 connection not written (database "
        "or REST API down or refusing)",
    )
    refresh.add_argument("--conn-id", required=True, help="the docker connection to create or update")
    which = refresh.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--registry", metavar="HOST", help="the ECR registry host, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    )
    which.add_argument("--registry-id", metavar="ID", help="the registry's 12-digit account id (with --region)")
    refresh.add_argument("--region", help="the registry's region (default with --registry-id: $AWS_REGION)")
    refresh.add_argument(
        "--aws-conn-id",
        default=None,
        help="an Airflow AWS connection to fetch the token with (default: boto3's credential chain)",
    )
    refresh.add_argument(
        "--verbose", action="store_true", help="show Airflow's and boto3's own output (quiet by default)"
    )
    refresh.add_argument(
        "--api-conn-id",
        default=None,
        help="write through the Airflow 3 REST API described by this Airflow connection "
        "(default: the metadata database, through the ORM)",
    )
    return parser


def _quiet_airflow() -> None:
    """Keep cron mail to the one line this command prints: Airflow's import-time chatter goes."""
    warnings.simplefilter("ignore")
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")
    logging.getLogger("airflow").setLevel(logging.ERROR)


def refresh_connection(args: argparse.Namespace) -> tuple[int, str]:
    """Run ``refresh-connection``; returns (exit code, the one-line message)."""
    from airflow_ecr.exceptions import (
        EcrConfigurationError,
        EcrCredentialsError,
        EcrServiceError,
    )
    from airflow_ecr.operators.credentials import (
        ConnectionWriteError,
        ConnectionWriter,
        OrmConnectionWriter,
        RestApiConnectionWriter,
        refresh_docker_connections,
    )
    from airflow_ecr.registry import registry_host, resolve_host, validate_account_id
    from airflow_ecr.tokens import AwsConnectionTokenSource

    try:
        if args.registry is not None:
            registry = resolve_host(args.registry, region_name=args.region)
        else:
            validate_account_id(args.registry_id.strip())
            region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            if not region:
                return EXIT_USAGE, "--registry-id needs --region (or AWS_REGION)"
            registry = resolve_host(registry_host(args.registry_id.strip(), region))
    except ValueError as err:
        return EXIT_USAGE, str(err)
    writer: ConnectionWriter = RestApiConnectionWriter(args.api_conn_id) if args.api_conn_id else OrmConnectionWriter()
    try:
        (login,) = refresh_docker_connections(
            [(args.conn_id, registry)], source=AwsConnectionTokenSource(args.aws_conn_id), writer=writer
        )
    except EcrConfigurationError as err:
        return EXIT_USAGE, str(err)
    except EcrCredentialsError as err:
        return EXIT_AWS_CREDENTIALS, str(err)
    except EcrServiceError as err:
        return EXIT_ECR_SERVICE, str(err)
    except ConnectionWriteError as err:
        return EXIT_WRITE, str(err)
    summary = login.summary()
    return EXIT_OK, (
        f"wrote docker connection {summary['conn_id']!r} for {summary['host']} "
        f"(token valid until {summary['expires_at']})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """The console script's entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    if not args.verbose:
        _quiet_airflow()
    # Airflow 3 logs through structlog to stdout whatever the level of stdlib loggers: the work's
    # own output is held back (shown with --verbose) so that cron sees exactly one line.
    # Airflow 2 also prints deprecation warnings to stderr at import, whatever the filters.
    chatter = io.StringIO()
    try:
        with contextlib.ExitStack() as quiet:
            if not args.verbose:
                quiet.enter_context(contextlib.redirect_stdout(chatter))
                quiet.enter_context(contextlib.redirect_stderr(chatter))
            code, message = refresh_connection(args)
    except Exception as err:
        # The type only: an unexpected error's text could carry anything, including a secret.
        if args.verbose:
            raise
        code, message = EXIT_UNEXPECTED, f"unexpected {type(err).__name__}; rerun with --verbose for the traceback"
    # One line, even if a message spans several: cron mails and log scrapers read lines.
    line = " ".join(message.split())
    if code == EXIT_OK:
        print(f"{PROG}: {line}")
    else:
        print(f"{PROG}: error: {line}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
