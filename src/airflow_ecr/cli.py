"""
The ``airflow-ecr`` command: ``refresh-connection``, ``doctor`` and ``docs`` (and ``--version``).

``airflow-ecr refresh-connection --conn-id ID (--registry HOST | --registry-id ID) [--region R]``
writes a fresh ECR token into an Airflow docker connection, for a cron job or systemd timer.
AWS credentials come from an Airflow AWS connection, ``--aws-conn-id`` (the operators' default,
``aws_default``, unless given), or the standard boto3 way (environment, profile, web identity,
instance role) when that connection does not exist. The connection is upserted through the
ORM (the metadata database of this host's Airflow configuration), or through the Airflow 3 REST
API with ``--api-conn-id``. It prints one line.

``airflow-ecr doctor [--image REF] [--aws-conn-id ID] [--docker-url URL] [--json]`` checks, in
order, the AWS identity, ECR permission, host token cache, Docker daemon, registry, image manifest
and swarm mode (see :mod:`airflow_ecr.doctor`), prints a table (or JSON); a failed check skips
only the checks that need what it would have found (STS is a warning: tasks never call it).

Both commands share the exit codes of :mod:`airflow_ecr.exit_codes` (the table is there). An
airflow-ecr error names its own (``EcrError.exit_code``): :func:`main` ends with it and the error's
one sentence; any other exception is exit code 1, shown by its type only.

``airflow-ecr configure-docker [REGISTRY ...] [--check]`` points Docker's ``credHelpers`` for the
registries at ``docker-credential-airflow-ecr`` (:mod:`airflow_ecr.credential_helper.docker_config`).

``airflow-ecr docs [PAGE]`` prints the documentation's address and the pages shipped in the
package, or one page's Markdown (exit code 2 for an unknown page). It and ``--version`` import
no Airflow.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import re
import shutil
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from airflow_ecr import __version__

# Pure constants (no Airflow for --version and docs); re-exported, as `cli.EXIT_*` names them too.
from airflow_ecr.exit_codes import EXIT_AWS_CREDENTIALS as EXIT_AWS_CREDENTIALS
from airflow_ecr.exit_codes import EXIT_DOCKER as EXIT_DOCKER
from airflow_ecr.exit_codes import EXIT_ECR_SERVICE as EXIT_ECR_SERVICE
from airflow_ecr.exit_codes import EXIT_IMAGE as EXIT_IMAGE
from airflow_ecr.exit_codes import EXIT_OK as EXIT_OK
from airflow_ecr.exit_codes import EXIT_REGISTRY as EXIT_REGISTRY
from airflow_ecr.exit_codes import EXIT_UNEXPECTED as EXIT_UNEXPECTED
from airflow_ecr.exit_codes import EXIT_USAGE as EXIT_USAGE
from airflow_ecr.exit_codes import EXIT_WRITE as EXIT_WRITE
from airflow_ecr.exit_codes import ecr_error_of as _ecr_error
from airflow_ecr.exit_codes import error_result as error_result
from airflow_ecr.settings import DEFAULT_AWS_CONN_ID

PROG = "airflow-ecr"
# Also [project.urls] Documentation in pyproject.toml (a unit test keeps the two equal): GitHub
# renders the Markdown of docs/, which is also what `airflow-ecr docs` prints.
DOCS_URL = "https://github.com/airflow-ecr/airflow-ecr/tree/main/docs"
# A section the MkDocs hook (docs/hooks.py) generates from the code when the site is built.
_GENERATED = re.compile(r"^<!-- gen:(?P<name>[\w-]+)(?: (?P<arg>\S+))? -->$", re.MULTILINE)


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (cron mails it), still exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{PROG}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog=PROG, description="Amazon ECR credentials for Apache Airflow.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
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
        metavar="ID",
        default=DEFAULT_AWS_CONN_ID,
        help="the Airflow AWS connection to fetch the token with, as the operators' aws_conn_id (default: "
        "%(default)s; boto3's credential chain when it does not exist, or with an empty ID)",
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
    refresh.add_argument(
        "--overwrite-other-types",
        action="store_true",
        help="replace the connection even if it is not of type docker or ecr_docker (default: leave it, exit 5)",
    )
    doctor = commands.add_parser(
        "doctor",
        help="check AWS identity, ECR permission, token cache, Docker daemon, registry and image",
        description="Check, in order, everything a pull from ECR depends on, and say what to fix; a failed check "
        "skips only the checks that need what it would have found (a failed STS call is a warning: tasks never call "
        "STS). Nothing is written (no ~/.docker, no connection); the token is never shown.",
        epilog="exit codes: 0 no check failed, 1 unexpected error, 2 bad image or [ecr] configuration, "
        "3 AWS refused (credentials, ecr:GetAuthorizationToken, ecr:BatchGetImage), 4 AWS API unreachable or "
        "failing, 6 Docker daemon unreachable, 7 registry unreachable from the daemon, 8 image not found, "
        "9 Kubernetes refused (Role) or failed",
    )
    doctor.add_argument(
        "--image",
        metavar="REF",
        help="an ECR image, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1 (without it, the registry "
        "and image checks are skipped)",
    )
    doctor.add_argument(
        "--aws-conn-id",
        metavar="ID",
        default=DEFAULT_AWS_CONN_ID,
        help="the Airflow AWS connection, as the operators' aws_conn_id (default: %(default)s; "
        "boto3's credential chain when it does not exist)",
    )
    doctor.add_argument(
        "--docker-url", metavar="URL", help="the Docker daemon (default: $DOCKER_HOST or the local socket)"
    )
    doctor.add_argument(
        "--namespace",
        metavar="NS",
        help="also check Kubernetes pods' pull secrets in this namespace: the Role's verbs and a Secret's round trip",
    )
    doctor.add_argument(
        "--kubernetes-conn-id",
        metavar="ID",
        default="kubernetes_default",
        help="with --namespace: the cncf.kubernetes connection, as KubernetesPodOperator's kubernetes_conn_id "
        "(default: kubernetes_default)",
    )
    doctor.add_argument("--json", action="store_true", help="print the results as JSON (for machines)")
    doctor.add_argument("--verbose", action="store_true", help="show Airflow's and boto3's own output, and tracebacks")
    configure = commands.add_parser(
        "configure-docker",
        help="send Docker's logins for ECR registries to docker-credential-airflow-ecr (credHelpers)",
        description="Merge credHelpers entries into Docker's config.json ($DOCKER_CONFIG/config.json, else "
        "~/.docker/config.json), keeping every other key; written atomically, mode 0600. Without REGISTRY: "
        "every alias declared in [ecr] registry_aliases and the ECR registry it stands for.",
        epilog="exit codes: 0 configured (--check: all configured), 2 unknown registry, unreadable or "
        "unparsable config.json (left untouched), or (--check) not configured",
    )
    configure.add_argument("registries", nargs="*", metavar="REGISTRY", help="an ECR registry host or declared alias")
    configure.add_argument("--check", action="store_true", help="report the state; write nothing")
    docs = commands.add_parser(
        "docs",
        help="show the documentation's address and pages, or print one page",
        description=f"Without PAGE: the documentation's address ({DOCS_URL}) and the pages shipped in this "
        "package. With PAGE (e.g. quickstart, recipes/testing): that page's Markdown.",
        epilog="exit codes: 0 shown, 2 unknown page",
    )
    docs.add_argument("page", nargs="?", metavar="PAGE", help="a page from the list, e.g. quickstart")
    return parser


def docs_dir() -> Path | None:
    """Where the documentation's Markdown pages are: in the wheel, or in the checkout; None if nowhere."""
    package = Path(__file__).resolve().parent
    shipped = package / "docs"  # put there by hatch_build.py
    if shipped.is_dir():
        return shipped
    checkout = package.parents[1]  # an editable install or a source tree: src/airflow_ecr
    if (checkout / "mkdocs.yml").is_file() and (checkout / "docs").is_dir():
        return checkout / "docs"
    return None


def docs_pages(directory: Path) -> dict[str, str]:
    """Every page under ``directory``: name (path without ``.md``) -> title (its first heading).

    :param directory: the folder of Markdown pages (:func:`docs_dir`).
    """
    pages = {}
    for path in sorted(directory.rglob("*.md"), key=lambda p: (p.name != "index.md", p.relative_to(directory))):
        title = next((line[2:].strip() for line in path.read_text().splitlines() if line.startswith("# ")), "")
        pages[path.relative_to(directory).with_suffix("").as_posix()] = title
    return pages


def _where_generated(match: re.Match[str]) -> str:
    """What stands in for a generated section outside the site: the command that shows the same facts."""
    name, arg = match["name"], match["arg"]
    if arg:
        command = f"python -m pydoc {arg}"
    else:
        command = {
            "cli": f"{PROG} --help",
            "config": "airflow config list --section ecr",
            "exceptions": "python -m pydoc airflow_ecr.exceptions",
            "benchmarks": "benchmarks/results/latest.md in the source repository",
            "emulator-faults": "python -m pydoc airflow_ecr.testing.emulator.state.EmulatorState.set_faults",
        }.get(name, "python -m pydoc airflow_ecr.provider_info")
    return f"> *Generated from the code when the site is built; here: `{command}`.*"


def show_docs(page: str | None) -> int:
    """Run ``docs``: print the address and the page list, or one page; returns the exit code.

    :param page: a page name (``quickstart``, ``recipes/testing``, with or without ``.md``), or None.
    """
    directory = docs_dir()
    pages = docs_pages(directory) if directory else {}
    if page is None:
        print(f"Documentation: {DOCS_URL}")
        if not pages:
            print("(no pages are shipped in this installation)")
            return EXIT_OK
        print(f"Pages shipped in this package ({PROG} docs PAGE prints one):")
        width = max(map(len, pages))
        for name, title in pages.items():
            print(f"  {name:<{width}}  {title}")
        return EXIT_OK
    name = page.removesuffix(".md").strip("/")
    if directory is None or name not in pages:
        print(f"{PROG}: error: no page {page!r} (see {PROG} docs for the list, or {DOCS_URL})", file=sys.stderr)
        return EXIT_USAGE
    text = (directory / f"{name}.md").read_text()
    print(_GENERATED.sub(_where_generated, text), end="" if text.endswith("\n") else "\n")
    return EXIT_OK


def configure_docker(args: argparse.Namespace) -> int:
    """
    Run ``configure-docker``: one line per registry (what changed, or with ``--check`` its state),
    and whether ``docker-credential-airflow-ecr`` is on this PATH (Docker runs it by that name).
    """
    from airflow_ecr.credential_helper import docker_config

    _quiet_airflow()
    path = docker_config.config_file()
    try:
        changes = docker_config.configure(docker_config.registry_hosts(args.registries), path, check=args.check)
    except Exception as err:
        code, message = error_result(err)
        print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
        return code
    on_path = shutil.which(docker_config.HELPER_PROGRAM) is not None
    for change in changes:
        if args.check:
            state = "configured" if change.configured else f"not configured (credHelpers: {change.before!r})"
            print(f"{PROG}: {change.host}: {state} in {path}")
        else:
            print(f"{PROG}: {change.describe()} in {path}")
    if not on_path:
        print(f"{PROG}: warning: {docker_config.HELPER_PROGRAM} is not on PATH: Docker will not find it.")
    if args.check and not (on_path and all(c.configured for c in changes)):
        return EXIT_USAGE
    return EXIT_OK


def _quiet_airflow() -> None:
    """Keep cron mail to the one line this command prints: Airflow's import-time chatter goes."""
    warnings.simplefilter("ignore")
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")
    logging.getLogger("airflow").setLevel(logging.ERROR)


def refresh_connection(args: argparse.Namespace) -> tuple[int, str]:
    """
    Run ``refresh-connection``; returns (exit code, the one-line message).

    :raises EcrError: what went wrong; :func:`main` ends with its ``exit_code`` and prints its message.
    """
    from airflow_ecr.connections import (
        ConnectionWriter,
        OrmConnectionWriter,
        RestApiConnectionWriter,
        refresh_docker_connections,
    )
    from airflow_ecr.exceptions import EcrConfigurationError
    from airflow_ecr.registry import registry_host, resolve_host, validate_account_id
    from airflow_ecr.tokens.sources import EcrTokenSource

    try:
        if args.registry is not None:
            registry = resolve_host(args.registry, region_name=args.region)
        else:
            validate_account_id(args.registry_id.strip())
            region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            if not region:
                raise EcrConfigurationError("--registry-id needs --region (or AWS_REGION)")
            registry = resolve_host(registry_host(args.registry_id.strip(), region))
    except EcrConfigurationError:
        raise
    except ValueError as err:
        raise EcrConfigurationError(str(err)) from None
    writer: ConnectionWriter = RestApiConnectionWriter(args.api_conn_id) if args.api_conn_id else OrmConnectionWriter()
    # An EcrError (configuration, AWS, connection write) goes to main(): the one error -> exit code mapping.
    (login,) = refresh_docker_connections(
        [(args.conn_id, registry)],
        source=EcrTokenSource.from_connection(args.aws_conn_id or None),
        writer=writer,
        overwrite_other_types=args.overwrite_other_types,
    )
    summary = login.summary()
    return EXIT_OK, (
        f"wrote docker connection {summary['conn_id']!r} for {summary['host']} "
        f"(token valid until {summary['expires_at']})"
    )


def doctor(args: argparse.Namespace) -> int:
    """Run ``doctor``: the checks, then the table (or JSON) on stdout; returns the exit code."""
    chatter = io.StringIO()
    with contextlib.ExitStack() as quiet:
        if not args.verbose:
            # Airflow's and boto3's import-time and hook output would break the table and the JSON.
            quiet.enter_context(contextlib.redirect_stdout(chatter))
            quiet.enter_context(contextlib.redirect_stderr(chatter))
        from airflow_ecr import doctor as checks

        try:
            # A bad image is told in doctor's words (the host to fix), before any AWS call.
            state = checks.DoctorState(
                image=args.image,
                aws_conn_id=args.aws_conn_id or None,
                docker_url=args.docker_url,
                namespace=args.namespace,
                kubernetes_conn_id=args.kubernetes_conn_id,
            )
        except ValueError as err:
            state, problem = None, " ".join(str(err).split())
        if state is not None:
            results = checks.run_checks(state, checks.checks_for(state), reraise=args.verbose)
    if state is None:
        if args.json:
            print(
                json.dumps({"ok": False, "exit_code": EXIT_USAGE, "image": args.image, "error": problem, "checks": []})
            )
        else:
            print(f"{PROG}: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(checks.to_json(results, args.image), indent=2))
    else:
        width = shutil.get_terminal_size((120, 24)).columns
        print(checks.render_table(results, args.image, width=max(width, 80), color=sys.stdout.isatty()), end="")
    return checks.exit_code(results)


def main(argv: Sequence[str] | None = None) -> int:
    """The console script's entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "docs":
        return show_docs(args.page)
    if args.command == "configure-docker":
        return configure_docker(args)
    if not args.verbose:
        _quiet_airflow()
    if args.command == "doctor":
        try:
            return doctor(args)
        except Exception as err:
            if args.verbose:
                raise
            code, message = error_result(err)
            print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
            return code
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
        # An airflow-ecr error is expected (its message says what to fix); --verbose shows the
        # traceback of anything else.
        if args.verbose and _ecr_error(err) is None:
            raise
        code, message = error_result(err)
    # One line, even if a message spans several: cron mails and log scrapers read lines.
    line = " ".join(message.split())
    if code == EXIT_OK:
        print(f"{PROG}: {line}")
    else:
        print(f"{PROG}: error: {line}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
