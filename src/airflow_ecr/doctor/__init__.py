"""
``airflow-ecr doctor``: check, in order, everything a pull from ECR depends on, and say what to fix.

The checks, in the order they run (the first hard failure stops the run; later checks are
reported as skipped):

1. ``aws_identity``: STS ``GetCallerIdentity`` through the amazon provider's ``StsHook`` (so the
   AWS connection's keys, role, profile and ``endpoint_url`` apply): account and ARN.
2. ``ecr_permission``: ``GetAuthorizationToken`` for the image's registry, through
   :class:`~airflow_ecr.tokens.AwsConnectionTokenSource`. The host cache is bypassed on purpose: a
   cached token would not prove that AWS grants one now. The token is kept in memory only, for
   the registry checks, and never printed.
3. ``host_cache``: the ``[ecr]`` token cache directory: exists (or can be created), belongs to
   this user, mode 0700, writable. Problems are warnings: tasks then work without the cache.
4. ``docker_daemon``: the Engine API answers; its version.
5. ``registry``: the daemon logs in to the registry with the token (Engine API ``POST /auth``,
   which makes the daemon call the registry's ``/v2/`` with the credentials).
6. ``image``: the image's manifest exists (Engine API ``GET /distribution/{name}/json`` with the
   token in ``X-Registry-Auth``: the daemon fetches the manifest descriptor only, no layer).
7. ``swarm``: whether swarm mode is active (information: only swarm services need it).

Without an image, the checks that need one (2, 5, 6) are skipped.

Why the registry is checked through the daemon, not from this process: the daemon is what pulls,
so its DNS, proxy settings (dockerd's own ``HTTPS_PROXY``), CA certificates (``/etc/docker/certs.d``)
and network (a VPC endpoint, a network namespace) are what decide whether a pull works. A request
from this process could succeed where the daemon fails, or the reverse. The credentials travel in
the request to the daemon only: nothing is written to ``~/.docker`` and no credential helper runs.

Each check is a function ``check_*(state) -> CheckResult``; :func:`run_checks` runs them in order.
The command line (:mod:`airflow_ecr.cli`) only formats the results (:func:`render_table`,
:func:`to_json`).
"""

from __future__ import annotations

import base64
import os
import pwd
import stat
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from airflow_ecr.cli import (
    EXIT_AWS_CREDENTIALS,
    EXIT_DOCKER,
    EXIT_ECR_SERVICE,
    EXIT_IMAGE,
    EXIT_OK,
    EXIT_REGISTRY,
    EXIT_UNEXPECTED,
    EXIT_USAGE,
)
from airflow_ecr.registry import EcrRegistry, ImageReference, parse_image, resolve_registry
from airflow_ecr.tokens import INVALID_CREDENTIAL_CODES, EcrToken

Status = Literal["ok", "warn", "fail", "info", "skip"]

DEFAULT_DOCKER_URL = "unix:///var/run/docker.sock"
# Seconds for each Engine API call; the registry calls go through the daemon, which has its own.
DOCKER_TIMEOUT = 60
_NETWORK_ADVICE = (
    "check the daemon host's network, DNS and dockerd's proxy settings (HTTPS_PROXY / NO_PROXY); "
    "in a VPC without internet access, the com.amazonaws.{region}.ecr.dkr VPC endpoint"
)


@dataclass(frozen=True)
class CheckResult:
    """
    The outcome of one check.

    :param name: the check's stable id, e.g. ``aws_identity`` (for ``--json``).
    :param title: how the table names the check.
    :param status: ``ok``, ``warn`` (works, but should be fixed), ``fail`` (a hard failure: the
        run stops), ``info`` or ``skip``.
    :param summary: what was found, in one sentence.
    :param fix: what to do about a failure or warning.
    :param exit_code: the command's exit code when this check failed.
    :param details: facts for machines (account, ARN, versions, digest, ...); never a secret.
    """

    name: str
    title: str
    status: Status
    summary: str
    fix: str | None = None
    exit_code: int = EXIT_OK
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class DoctorState:
    """
    What the checks are about, and what earlier checks hand on to later ones.

    :param image: the image to check, or None.
    :param aws_conn_id: the Airflow AWS connection (None: boto3's default chain).
    :param docker_url: the Docker daemon URL (None: ``$DOCKER_HOST`` or the local socket).
    """

    image: str | None = None
    aws_conn_id: str | None = "aws_default"
    docker_url: str | None = None
    registry: EcrRegistry | None = None
    reference: ImageReference | None = None
    arn: str | None = None
    token: EcrToken | None = field(default=None, repr=False)
    client: Any = field(default=None, repr=False)
    daemon_platform: str | None = None

    def __post_init__(self) -> None:
        if self.image is not None and self.registry is None:
            # Raises ValueError with one sentence saying what is wrong with the reference.
            self.registry = resolve_registry(self.image)
            self.reference = parse_image(self.image)

    @property
    def who(self) -> str:
        """How messages name the AWS identity: its ARN once known, else the connection."""
        return self.arn or f"the identity of aws_conn_id={self.aws_conn_id!r}"

    def scrub(self, text: str) -> str:
        """``text`` without the registry password (plain or base64), should a daemon echo it."""
        if self.token is None:
            return text
        secret = self.token.password
        encoded = base64.b64encode(f"{self.token.username}:{secret}".encode()).decode()
        return text.replace(encoded, "<token>").replace(secret, "<token>")


@dataclass(frozen=True)
class Check:
    """
    One check: its id, title, function, and whether it needs ``--image``.

    :param name: the stable id.
    :param title: how the table names it.
    :param run: the function; it may store what later checks need in the state.
    :param needs_image: skipped without an image.
    """

    name: str
    title: str
    run: Callable[[DoctorState], CheckResult]
    needs_image: bool = False


def _result(check: tuple[str, str], status: Status, summary: str, **kwargs: Any) -> CheckResult:
    name, title = check
    return CheckResult(name=name, title=title, status=status, summary=summary, **kwargs)


# -- 1. AWS identity --------------------------------------------------------------------------
IDENTITY = ("aws_identity", "AWS identity")


def check_aws_identity(state: DoctorState) -> CheckResult:
    """STS ``GetCallerIdentity`` with the AWS connection: who tokens would be fetched as."""
    from airflow.providers.amazon.aws.hooks.sts import StsHook

    region = state.registry.region if state.registry is not None and not state.registry.public else None
    hook = StsHook(aws_conn_id=state.aws_conn_id, region_name=region)
    config = hook.conn_config
    source = (
        f"connection {state.aws_conn_id!r}"
        if state.aws_conn_id and config
        else "boto3's default credential chain"
        + (f" (no connection {state.aws_conn_id!r})" if state.aws_conn_id else "")
    )
    endpoint = config.get_service_endpoint_url("sts")
    details: dict[str, Any] = {"aws_conn_id": state.aws_conn_id, "credentials_from": source, "sts_endpoint": endpoint}
    try:
        client: Any = hook.conn
        identity = client.get_caller_identity()
    except Exception as err:
        return _sts_failure(IDENTITY, err, f"aws_conn_id={state.aws_conn_id!r} ({source})", endpoint, details)
    state.arn = str(identity["Arn"])
    details.update(account=str(identity["Account"]), arn=state.arn, user_id=str(identity.get("UserId", "")))
    return _result(IDENTITY, "ok", f"account {identity['Account']}, {state.arn} (from {source})", details=details)


def _sts_failure(
    check: tuple[str, str], err: Exception, source: str, endpoint: str | None, details: dict[str, Any]
) -> CheckResult:
    """A failed STS call as a result that says what to fix."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )

    if isinstance(err, NoCredentialsError):
        return _result(
            check,
            "fail",
            f"no AWS credentials found for {source}",
            fix="put an access key or role_arn in the AWS connection, or give this host an instance role, "
            "AWS_PROFILE or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY",
            exit_code=EXIT_AWS_CREDENTIALS,
            details=details,
        )
    if isinstance(err, PartialCredentialsError):
        return _result(
            check,
            "fail",
            f"incomplete AWS credentials for {source}: {err}",
            fix="give both the access key id and the secret access key",
            exit_code=EXIT_AWS_CREDENTIALS,
            details=details,
        )
    if isinstance(err, NoRegionError):
        return _result(
            check,
            "fail",
            f"no AWS region for {source}",
            fix="set region_name in the AWS connection's extra, or AWS_DEFAULT_REGION",
            exit_code=EXIT_AWS_CREDENTIALS,
            details=details,
        )
    if isinstance(err, EndpointConnectionError):
        return _result(
            check,
            "fail",
            f"cannot reach the STS API at {err.kwargs.get('endpoint_url', endpoint or '?')}",
            fix="check the network and proxy settings, and the connection's endpoint_url (or "
            "service_config.sts.endpoint_url); in a VPC without internet access, an STS VPC endpoint",
            exit_code=EXIT_ECR_SERVICE,
            details=details,
        )
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        code, message = error.get("Code", "Unknown"), error.get("Message", "")
        details["error_code"] = code
        if code in INVALID_CREDENTIAL_CODES:
            return _result(
                check,
                "fail",
                f"AWS rejected the credentials of {source} ({code}: {message})",
                fix="they are invalid or have expired: renew them, or fix the AWS connection's login/password or role",
                exit_code=EXIT_AWS_CREDENTIALS,
                details=details,
            )
        if code in ("AccessDenied", "AccessDeniedException"):
            return _result(
                check,
                "fail",
                f"AWS refused {source}: {message}",
                fix="check the connection's role_arn and the role's trust policy",
                exit_code=EXIT_AWS_CREDENTIALS,
                details=details,
            )
        return _result(
            check,
            "fail",
            f"the STS API failed for {source}: {code}: {message}",
            fix="retry; if it persists, check the AWS service health and the connection's endpoint_url",
            exit_code=EXIT_ECR_SERVICE,
            details=details,
        )
    if isinstance(err, BotoCoreError):
        return _result(
            check,
            "fail",
            f"the STS call for {source} failed: {err}",
            fix="check the AWS connection's settings and the network",
            exit_code=EXIT_ECR_SERVICE,
            details=details,
        )
    # Anything else (e.g. a malformed connection): the type only, its text could hold a secret.
    return _result(
        check,
        "fail",
        f"unexpected {type(err).__name__} while asking STS who {source} is",
        fix="rerun with --verbose for the traceback; check the AWS connection's extra",
        exit_code=EXIT_UNEXPECTED,
        details=details,
    )


# -- 2. ECR permission ------------------------------------------------------------------------
PERMISSION = ("ecr_permission", "ECR permission")


def check_ecr_permission(state: DoctorState) -> CheckResult:
    """``GetAuthorizationToken`` for the image's registry, fetched now (not from the cache)."""
    from airflow_ecr.exceptions import EcrCredentialsError, EcrServiceError
    from airflow_ecr.tokens import AwsConnectionTokenSource

    registry = _registry(state)
    action = "ecr-public:GetAuthorizationToken" if registry.public else "ecr:GetAuthorizationToken"
    details: dict[str, Any] = {"registry": registry.host, "region": registry.region, "action": action}
    source = AwsConnectionTokenSource(state.aws_conn_id)
    try:
        token = source.fetch([registry])[registry.registry_id]
    except EcrCredentialsError as err:
        denied = "not allowed" in str(err)
        fix = (
            f"grant {action} to {state.who} (an IAM policy on the identity; the action takes resource '*')"
            if denied
            else "fix the AWS credentials (see above)"
        )
        return _result(PERMISSION, "fail", str(err), fix=fix, exit_code=EXIT_AWS_CREDENTIALS, details=details)
    except EcrServiceError as err:
        return _result(
            PERMISSION,
            "fail",
            str(err),
            fix=f"check the network path to the ECR API of {registry.region} (an ecr.api VPC endpoint, "
            "proxy settings) or the connection's endpoint_url",
            exit_code=EXIT_ECR_SERVICE,
            details=details,
        )
    state.token = token
    details["expires_at"] = token.expires_at
    valid = max(0.0, token.expires_at - token.issued_at)
    return _result(
        PERMISSION,
        "ok",
        f"{action} granted (token valid for {_duration(valid)})",
        details=details,
    )


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


# -- 3. host cache ----------------------------------------------------------------------------
CACHE = ("host_cache", "Host token cache")


def check_host_cache(state: DoctorState) -> CheckResult:
    """The ``[ecr]`` cache settings and the cache directory's state."""
    from airflow_ecr.exceptions import EcrConfigurationError
    from airflow_ecr.tokens import CacheSettings

    try:
        settings = CacheSettings.from_airflow_config()
    except EcrConfigurationError as err:
        return _result(CACHE, "fail", str(err), fix="fix the [ecr] section of airflow.cfg", exit_code=EXIT_USAGE)
    if settings.directory is None:
        return _result(
            CACHE,
            "info",
            "disabled ([ecr] cache_enabled = False): each task process fetches its own token",
            details={"enabled": False},
        )
    return inspect_cache_dir(settings.directory)


def inspect_cache_dir(directory: Path) -> CheckResult:
    """
    Whether the token cache can work in ``directory``, with the rules ``FileCache`` applies.

    A cache that cannot work is a warning, not a failure: tasks then fetch tokens without it.

    :param directory: the configured cache directory.
    """
    details: dict[str, Any] = {"enabled": True, "directory": str(directory)}
    setting = "[ecr] cache_dir (AIRFLOW__ECR__CACHE_DIR)"
    try:
        info = directory.stat()
    except FileNotFoundError:
        parent = next((p for p in directory.parents if p.exists()), Path("/"))
        details["exists"] = False
        if os.access(parent, os.W_OK | os.X_OK):
            return _result(
                CACHE, "ok", f"{directory} does not exist yet; it is created (mode 0700) on first use", details=details
            )
        return _result(
            CACHE,
            "warn",
            f"{directory} does not exist and cannot be created: {parent} is not writable by this user",
            fix=f"create it (mkdir -m 700 {directory}) or set {setting}; until then every task fetches its own token",
            details=details,
        )
    except OSError as err:
        return _result(
            CACHE,
            "warn",
            f"cannot inspect {directory}: {err.strerror}",
            fix=f"fix it or set {setting}",
            details=details,
        )
    mode = stat.S_IMODE(info.st_mode)
    details.update(exists=True, owner=_user(info.st_uid), mode=f"{mode:04o}")
    if not stat.S_ISDIR(info.st_mode):
        return _result(
            CACHE, "warn", f"{directory} is not a directory", fix=f"remove it or set {setting}", details=details
        )
    if info.st_uid != os.geteuid():
        return _result(
            CACHE,
            "warn",
            f"{directory} belongs to {_user(info.st_uid)}, not to this user ({_user(os.geteuid())}): the cache is off",
            fix=f"run tasks as its owner, chown it, or set {setting} to a directory of this user",
            details=details,
        )
    if mode & 0o077:
        return _result(
            CACHE,
            "warn",
            f"{directory} has mode {mode:04o}, open to other users: the cache is off (tokens are secrets)",
            fix=f"chmod 700 {directory}",
            details=details,
        )
    if not os.access(directory, os.W_OK | os.X_OK):
        return _result(
            CACHE,
            "warn",
            f"{directory} is not writable: the cache is off",
            fix=f"chmod 700 {directory}",
            details=details,
        )
    entries = list(directory.glob("*.json"))
    exposed = [p.name for p in entries if _mode_or_zero(p) & 0o077]
    details["entries"] = len(entries)
    if exposed:
        return _result(
            CACHE,
            "warn",
            f"{len(exposed)} cache file(s) in {directory} are readable by others and ignored",
            fix=f"chmod 600 {directory}/*.json (or delete them)",
            details=details,
        )
    return _result(
        CACHE,
        "ok",
        f"{directory} (mode {mode:04o}, owner {_user(info.st_uid)}, {len(entries)} token(s))",
        details=details,
    )


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


# -- 4. Docker daemon -------------------------------------------------------------------------
DAEMON = ("docker_daemon", "Docker daemon")


def docker_url(state: DoctorState) -> str:
    """The daemon URL: ``--docker-url``, else ``$DOCKER_HOST``, else the local socket."""
    return state.docker_url or os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_URL


def check_docker_daemon(state: DoctorState) -> CheckResult:
    """The Engine API answers ``/version``; keeps the client for the next checks."""
    import docker

    url = docker_url(state)
    details: dict[str, Any] = {"url": url}
    # DOCKER_TLS_VERIFY / DOCKER_CERT_PATH apply when the URL comes from the environment.
    kwargs = {} if state.docker_url else docker.utils.kwargs_from_env()
    kwargs["base_url"] = url
    try:
        client = docker.APIClient(version="auto", timeout=DOCKER_TIMEOUT, **kwargs)
        version = client.version()
    except Exception as err:
        return _result(
            DAEMON,
            "fail",
            daemon_failure(url, str(err)),
            fix="start the Docker daemon (e.g. systemctl start docker), or pass --docker-url / set DOCKER_HOST",
            exit_code=EXIT_DOCKER,
            details=details,
        )
    state.client = client
    state.daemon_platform = f"{version.get('Os', 'linux')}/{version.get('Arch', '?')}"
    details.update(
        version=version.get("Version"), api_version=version.get("ApiVersion"), platform=state.daemon_platform
    )
    return _result(
        DAEMON,
        "ok",
        f"Docker {version.get('Version')} (API {version.get('ApiVersion')}, {state.daemon_platform}) at {url}",
        details=details,
    )


def daemon_failure(url: str, error: str) -> str:
    """Why the daemon at ``url`` did not answer, from docker-py's error text."""
    path = url.removeprefix("unix://") if url.startswith("unix://") else None
    if "No such file or directory" in error or "FileNotFoundError" in error:
        return f"cannot reach the Docker daemon at {url}: no socket at {path or url}"
    if "Permission denied" in error or "PermissionError" in error:
        return (
            f"cannot reach the Docker daemon at {url}: this user may not open {path or 'it'} "
            "(add the user to the docker group)"
        )
    if "Connection refused" in error:
        return f"cannot reach the Docker daemon at {url}: nothing listens there (connection refused)"
    if "timed out" in error.lower():
        return f"the Docker daemon at {url} did not answer within {DOCKER_TIMEOUT} s"
    return f"cannot reach the Docker daemon at {url}: {error}"


# -- 5. registry ------------------------------------------------------------------------------
REGISTRY = ("registry", "Registry")


def check_registry(state: DoctorState) -> CheckResult:
    """The daemon logs in to the registry with the token (``POST /auth``: a ``/v2/`` ping)."""
    from docker.errors import APIError

    from airflow_ecr.hooks.docker import classify_pull_error

    registry, token, client = _registry(state), state.token, state.client
    if token is None or client is None:
        return _result(REGISTRY, "skip", "not checked: no token or no daemon")
    details: dict[str, Any] = {"registry": registry.host}
    try:
        # docker-py's login() would first consult ~/.docker/config.json and credential helpers;
        # the raw Engine API call sends exactly these credentials and stores nothing.
        client._result(client._post_json(client._url("/auth"), data=token.docker_auth(registry.host)), json=True)
    except APIError as err:
        message = state.scrub(str(err.explanation or err))
        details["daemon_said"] = message
        if classify_pull_error(message, registry.host) == "auth":
            return _result(
                REGISTRY,
                "fail",
                f"registry {registry.host} rejected the token ECR just issued: {message}",
                fix=f"check that {registry.host} is the registry of account {registry.account_id} in "
                f"{registry.region} (a proxy or alias in front of it must pass basic auth through)",
                exit_code=EXIT_AWS_CREDENTIALS,
                details=details,
            )
        return _result(
            REGISTRY,
            "fail",
            f"cannot reach registry {registry.host} from the Docker daemon: {message}",
            fix=_NETWORK_ADVICE.format(region=registry.region),
            exit_code=EXIT_REGISTRY,
            details=details,
        )
    except Exception as err:
        return _daemon_lost(REGISTRY, state, err)
    return _result(REGISTRY, "ok", f"the daemon logged in to {registry.host}", details=details)


def _daemon_lost(check: tuple[str, str], state: DoctorState, err: Exception) -> CheckResult:
    return _result(
        check,
        "fail",
        daemon_failure(docker_url(state), state.scrub(str(err))),
        fix="check that the Docker daemon keeps running (its logs)",
        exit_code=EXIT_DOCKER,
    )


# -- 6. image manifest ------------------------------------------------------------------------
IMAGE = ("image", "Image manifest")


def check_manifest(state: DoctorState) -> CheckResult:
    """The manifest exists (``GET /distribution/{name}/json``: the descriptor, no layer)."""
    from docker.errors import APIError

    from airflow_ecr.hooks.docker import classify_pull_error

    registry, token, client, ref = _registry(state), state.token, state.client, state.reference
    if token is None or client is None or ref is None:
        return _result(IMAGE, "skip", "not checked: no token or no daemon")
    version = f"@{ref.digest}" if ref.digest else f":{ref.tag or 'latest'}"
    what = f"digest {ref.digest}" if ref.digest else f"tag {ref.tag or 'latest'}" + ("" if ref.tag else " (default)")
    name = f"{registry.host}/{ref.repository}{version}"
    owner = "ECR Public" if registry.public else f"{registry.account_id} ({registry.region})"
    details: dict[str, Any] = {"image": name, "repository": ref.repository}
    try:
        data = client.inspect_distribution(name, auth_config=token.docker_auth(registry.host))
    except APIError as err:
        message = state.scrub(str(err.explanation or err))
        details["daemon_said"] = message
        kind = classify_pull_error(message, name)
        if kind == "not_found":
            if "name unknown" in message.lower() or "repository" in message.lower():
                summary = f"repository {ref.repository} does not exist in registry {owner}"
                fix = "create the repository and push the image, or fix the repository name"
            else:
                summary = f"{what} not found in repository {ref.repository} of {owner}"
                fix = "push it, or fix the tag" if not ref.digest else "push it, or fix the digest"
            return _result(IMAGE, "fail", summary, fix=fix, exit_code=EXIT_IMAGE, details=details)
        if kind == "auth":
            return _result(
                IMAGE,
                "fail",
                f"registry {registry.host} refused {state.who} access to repository {ref.repository}: {message}",
                fix=f"grant ecr:BatchGetImage and ecr:GetDownloadUrlForLayer on repository {ref.repository} to "
                f"{state.who} (and allow it in the repository policy for a cross-account pull)",
                exit_code=EXIT_AWS_CREDENTIALS,
                details=details,
            )
        return _result(
            IMAGE,
            "fail",
            f"cannot read the manifest of {name} through the Docker daemon: {message}",
            fix=_NETWORK_ADVICE.format(region=registry.region),
            exit_code=EXIT_REGISTRY,
            details=details,
        )
    except Exception as err:
        return _daemon_lost(IMAGE, state, err)
    descriptor = data.get("Descriptor", {})
    platforms = [
        f"{p.get('os')}/{p.get('architecture')}" + (f"/{p['variant']}" if p.get("variant") else "")
        for p in data.get("Platforms") or []
    ]
    details.update(digest=descriptor.get("digest"), media_type=descriptor.get("mediaType"), platforms=platforms)
    summary = f"{what} is {descriptor.get('digest')} ({', '.join(platforms) or 'platform unknown'})"
    daemon = state.daemon_platform
    if daemon and platforms and not any(p == daemon or p.startswith(daemon + "/") for p in platforms):
        return _result(
            IMAGE,
            "warn",
            summary + f": no {daemon} variant",
            fix=f"build and push the image for {daemon}, or the container fails with 'exec format error'",
            details=details,
        )
    return _result(IMAGE, "ok", summary, details=details)


# -- 7. swarm ---------------------------------------------------------------------------------
SWARM = ("swarm", "Swarm mode")


def check_swarm(state: DoctorState) -> CheckResult:
    """Whether the daemon is in swarm mode (needed by swarm services only)."""
    if state.client is None:
        return _result(SWARM, "skip", "not checked: no daemon")
    try:
        swarm = state.client.info().get("Swarm") or {}
    except Exception as err:
        return _daemon_lost(SWARM, state, err)
    node_state = swarm.get("LocalNodeState") or "unknown"
    details = {"state": node_state, "manager": bool(swarm.get("ControlAvailable"))}
    if node_state == "active":
        role = "manager" if swarm.get("ControlAvailable") else "worker (services are created on a manager)"
        return _result(SWARM, "ok", f"active, this node is a {role}", details=details)
    if node_state == "inactive":
        return _result(
            SWARM,
            "info",
            "inactive: fine for DockerOperator tasks; swarm services (EcrDockerSwarmOperator) need 'docker swarm init'",
            details=details,
        )
    return _result(
        SWARM,
        "warn",
        f"{node_state}: {swarm.get('Error') or 'the swarm is not usable'}",
        fix="see 'docker info'; swarm services will fail until the node is active",
        details=details,
    )


# -- running and formatting -------------------------------------------------------------------
def _registry(state: DoctorState) -> EcrRegistry:
    if state.registry is None:
        raise ValueError("this check needs an image")
    return state.registry


CHECKS: tuple[Check, ...] = (
    Check(*IDENTITY, check_aws_identity),
    Check(*PERMISSION, check_ecr_permission, needs_image=True),
    Check(*CACHE, check_host_cache),
    Check(*DAEMON, check_docker_daemon),
    Check(*REGISTRY, check_registry, needs_image=True),
    Check(*IMAGE, check_manifest, needs_image=True),
    Check(*SWARM, check_swarm),
)


def run_checks(state: DoctorState, checks: Sequence[Check] = CHECKS, reraise: bool = False) -> list[CheckResult]:
    """
    Run ``checks`` in order; after the first failure the others are reported as skipped.

    :param state: what to check; checks store what later ones need in it.
    :param checks: the checks (default: all, in the documented order).
    :param reraise: let an unexpected exception propagate (``--verbose``) instead of reporting it.
    """
    results: list[CheckResult] = []
    failed: CheckResult | None = None
    for check in checks:
        if failed is not None:
            result = CheckResult(check.name, check.title, "skip", f"not checked: fix {failed.title} first")
        elif check.needs_image and state.image is None:
            result = CheckResult(check.name, check.title, "skip", "not checked: no --image given")
        else:
            try:
                result = check.run(state)
            except Exception as err:
                if reraise:
                    raise
                # The type only: an unexpected error's text could carry anything, including a secret.
                result = CheckResult(
                    check.name,
                    check.title,
                    "fail",
                    f"unexpected {type(err).__name__}",
                    fix="rerun with --verbose for the traceback",
                    exit_code=EXIT_UNEXPECTED,
                )
        results.append(result)
        if result.status == "fail":
            failed = result
    return results


def exit_code(results: Sequence[CheckResult]) -> int:
    """The exit code of the first failure, 0 when nothing failed (warnings included)."""
    return next((r.exit_code for r in results if r.status == "fail"), EXIT_OK)


def to_json(results: Sequence[CheckResult], image: str | None = None) -> dict[str, Any]:
    """What ``--json`` prints: ``{"ok", "exit_code", "image", "checks": [...]}``."""
    code = exit_code(results)
    return {"ok": code == EXIT_OK, "exit_code": code, "image": image, "checks": [asdict(r) for r in results]}


_STYLES = {
    "ok": ("ok", "green"),
    "warn": ("warn", "yellow"),
    "fail": ("FAIL", "bold red"),
    "info": ("info", "cyan"),
    "skip": ("skipped", "dim"),
}


def render_table(
    results: Sequence[CheckResult], image: str | None = None, width: int = 120, color: bool = False
) -> str:
    """
    The results as a table (rich), then one line with the verdict and exit code.

    :param results: the results, in order.
    :param image: the image checked, for the title.
    :param width: the table's width in characters.
    :param color: whether to emit ANSI colors.
    """
    import io

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table()
    table.add_column("Check", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("Result")
    for result in results:
        label, style = _STYLES[result.status]
        text = Text(result.summary)
        if result.fix:
            text.append(f"\nfix: {result.fix}", style="bold" if result.status == "fail" else "")
        table.add_row(result.title, Text(label, style=style), text)
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system="standard" if color else None, highlight=False)
    console.print(f"airflow-ecr doctor{f': {image}' if image else ''}", markup=False, soft_wrap=True)
    console.print(table)
    code = exit_code(results)
    failed = next((r for r in results if r.status == "fail"), None)
    warnings = sum(r.status == "warn" for r in results)
    skipped = sum(r.status == "skip" for r in results)
    if failed is not None:
        console.print(f"{failed.title} failed: exit code {code}")
    else:
        notes = [f"{n} {what}" for n, what in ((warnings, "warning(s)"), (skipped, "skipped")) if n]
        console.print("no check failed" + (f" ({', '.join(notes)})" if notes else ""))
    # rich pads the title and lines to the full width: no trailing blanks in logs and mails.
    return "".join(line.rstrip() + "\n" for line in buffer.getvalue().splitlines())
