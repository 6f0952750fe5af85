"""
``airflow-ecr doctor``: check, in order, everything a pull from ECR depends on, and say what to fix.

The checks, in the order they run. Every check runs when what it needs is there: a failure skips
only the checks that need its findings (:attr:`Check.needs`), and the exit code is the first
failure's:

1. ``aws_identity``: STS ``GetCallerIdentity`` through the amazon provider's ``StsHook`` (so the
   AWS connection's keys, role, profile and ``endpoint_url`` apply): account and ARN. Any failure
   is a warning (tasks never call STS; a private VPC often has ECR endpoints and none for STS):
   the identity is then shown from the connection's settings, never a secret.
2. ``ecr_permission``: ``GetAuthorizationToken`` for the image's registry, through
   :class:`~airflow_ecr.tokens.sources.EcrTokenSource`. The host cache is bypassed on purpose: a
   cached token would not prove that AWS grants one now. The token is kept in memory only, for
   the registry checks, and never printed.
3. ``host_cache``: the ``[ecr]`` token cache directory: exists (or can be created), belongs to
   this user, mode 0700, writable. Problems are warnings: tasks then work without the cache.
4. ``docker_daemon``: the Engine API answers; its version.
5. ``registry`` (needs 2 and 4): the daemon logs in to the registry with the token (Engine API
   ``POST /auth``, which makes the daemon call the registry's ``/v2/`` with the credentials).
6. ``image`` (needs 5): the image's manifest exists (Engine API ``GET /distribution/{name}/json``
   with the token in ``X-Registry-Auth``: the daemon fetches the manifest descriptor only, no
   layer). When it fails for a repository under a pull-through cache rule (:mod:`.pull_through`),
   the fix names what the first pull needs.
7. ``swarm`` (needs 4): whether swarm mode is active (information: only swarm services need it).
8. ``kubernetes_access`` (only with ``--namespace``): every verb of the documented Role, asked of the API
   server (:mod:`.kubernetes`);
9. ``kubernetes_secret`` (needs 2 and 8): a pull secret made from the token, read back and deleted;
   the registry accepts the credentials read back.
10. ``policy_scan`` and 11. ``policy_signature`` (need 2; only when ``[ecr] image_policy`` is set):
   the image policy on the digest the tag points to now, rule by rule (:mod:`.policy`).

Without an image, the checks that need one (2, 5, 6, 9) are skipped.

Why the registry is checked through the daemon, not from this process: the daemon is what pulls,
so its DNS, proxy settings (dockerd's own ``HTTPS_PROXY``), CA certificates (``/etc/docker/certs.d``)
and network (a VPC endpoint, a network namespace) are what decide whether a pull works. A request
from this process could succeed where the daemon fails, or the reverse. The credentials travel in
the request to the daemon only: nothing is written to ``~/.docker`` and no credential helper runs.

One function per check, ``check_*(state) -> CheckResult``; :func:`run_checks` runs them in order.
The checks decide nothing about failures themselves, they render what the failure's home says:

- :mod:`.results`: :class:`DoctorState`, :class:`CheckResult`, :class:`Check`, :func:`exit_code`;
- :mod:`.aws`: checks 1 and 2 (an :class:`~airflow_ecr.tokens.aws_errors.AwsFailure` rendered by
  ``sts_advice`` / ``token_fix`` of :mod:`airflow_ecr.tokens.aws_errors`);
- :mod:`.cache`: check 3 (:meth:`FileStore.inspect <airflow_ecr.tokens.store.FileStore.inspect>`);
- :mod:`.docker`: checks 4 to 7 (pull failures classified by
  :func:`~airflow_ecr.hooks.pull_errors.classify_pull_error`);
- :mod:`.pull_through`: whether a repository is under a pull-through cache rule;
- :mod:`.render`: :func:`render_table` and :func:`to_json`, which the command line
  (:mod:`airflow_ecr.cli`) prints;
- :mod:`.connection`: the same checks for the UI's Test button (``EcrDockerConnectionHook.test_connection``).

Exit codes are those of :mod:`airflow_ecr.exit_codes`, taken from the failure or the error where
there is one.
"""

from __future__ import annotations

from collections.abc import Sequence

from airflow_ecr import exit_codes
from airflow_ecr.doctor import aws, cache, docker, kubernetes, policy
from airflow_ecr.doctor.aws import check_aws_identity, check_ecr_permission
from airflow_ecr.doctor.cache import check_host_cache, inspect_cache_dir
from airflow_ecr.doctor.docker import (
    DEFAULT_DOCKER_URL,
    DOCKER_TIMEOUT,
    check_docker_daemon,
    check_manifest,
    check_registry,
    check_swarm,
    daemon_failure,
    docker_url,
)
from airflow_ecr.doctor.render import render_table, to_json
from airflow_ecr.doctor.results import Check, CheckResult, DoctorState, Status, exit_code

__all__ = [
    "CHECKS",
    "DEFAULT_DOCKER_URL",
    "DOCKER_TIMEOUT",
    "Check",
    "CheckResult",
    "DoctorState",
    "Status",
    "check_aws_identity",
    "check_docker_daemon",
    "check_ecr_permission",
    "check_host_cache",
    "check_manifest",
    "check_registry",
    "check_swarm",
    "checks_for",
    "daemon_failure",
    "docker_url",
    "exit_code",
    "inspect_cache_dir",
    "render_table",
    "run_checks",
    "to_json",
]

# Every module's CHECKS (each in its own order), the AWS side first, then this host, then the
# Docker side: each side's answers explain the next one's failures.
CHECKS: tuple[Check, ...] = (*aws.CHECKS, *cache.CHECKS, *docker.CHECKS)


def checks_for(state: DoctorState) -> tuple[Check, ...]:
    """
    The checks to run: :data:`CHECKS`, the Kubernetes ones when a namespace is given, and the image
    policy's when ``[ecr] image_policy`` names a policy file.
    """
    from airflow_ecr.settings import ecr_settings

    found = (*CHECKS, *kubernetes.CHECKS) if state.namespace else CHECKS
    return (*found, *policy.CHECKS) if ecr_settings().image_policy else found


def run_checks(state: DoctorState, checks: Sequence[Check] = CHECKS, reraise: bool = False) -> list[CheckResult]:
    """
    Run ``checks`` in order; a check whose :attr:`~Check.needs` did not pass is reported as skipped.

    Every check runs when what it needs is there: a failed STS call (a warning) stops nothing, a
    failed token skips only the registry and manifest checks, a daemon that does not answer the
    three that talk to it.

    :param state: what to check; checks store what later ones need in it.
    :param checks: the checks (default: all, in the documented order).
    :param reraise: let an unexpected exception propagate (``--verbose``) instead of reporting it.
    """
    results: list[CheckResult] = []
    # Per check that did not pass: the title of the failed check behind it (itself, or what it needed).
    blocked: dict[str, str] = {}
    for check in checks:
        blocker = next((blocked[name] for name in check.needs if name in blocked), None)
        if check.needs_image and state.image is None:
            result = CheckResult(check.name, check.title, "skip", "not checked: no --image given")
        elif blocker is not None:
            result = CheckResult(check.name, check.title, "skip", f"not checked: fix {blocker} first")
        else:
            result = _run(check, state, reraise)
        results.append(result)
        if result.status == "fail":
            blocked[check.name] = check.title
        elif result.status == "skip":
            blocked[check.name] = blocker or check.title
    return results


def _run(check: Check, state: DoctorState, reraise: bool) -> CheckResult:
    try:
        return check.run(state)
    except Exception as err:
        if reraise:
            raise
        # The type only: an unexpected error's text could carry anything, including a secret.
        return CheckResult(
            check.name,
            check.title,
            "fail",
            f"unexpected {type(err).__name__}",
            fix="rerun with --verbose for the traceback",
            exit_code=exit_codes.EXIT_UNEXPECTED,
        )
