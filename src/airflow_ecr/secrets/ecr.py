"""
A secrets backend that gives unmodified Docker tasks a live Amazon ECR login.

``EcrDockerConnectionBackend`` lets an unmodified ``DockerOperator(docker_conn_id=...)``,
``@task.docker`` or ``DockerSwarmOperator`` pull from ECR with no change to the DAG. For a
connection id it recognises, it returns a ``docker`` connection: host = the registry host, login
``AWS``, password = a live ECR token from :mod:`airflow_ecr.tokens.cache`. The Docker provider's
``DockerHook`` logs in with that connection as with any other, and docker-py sends the login with
the pull or the swarm service creation.

Configuration
-------------
On Airflow 3, as the workers' backend only (the API server, scheduler and DAG processor then never
load it)::

    [workers]
    secrets_backend = airflow_ecr.secrets.ecr.EcrDockerConnectionBackend
    secrets_backend_kwargs = {"profile_name": "ecr", "allowed_registries": ["123456789012"]}

On Airflow 2.11, which has no worker option::

    [secrets]
    backend = airflow_ecr.secrets.ecr.EcrDockerConnectionBackend
    backend_kwargs = {"profile_name": "ecr", "allowed_registries": ["123456789012"]}

Airflow 3 task processes read ``[workers] secrets_backend`` / ``secrets_backend_kwargs`` first and
fall back to ``[secrets]``. The same options can be set through the environment variables
``AIRFLOW__WORKERS__SECRETS_BACKEND``, ``AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS``,
``AIRFLOW__SECRETS__BACKEND`` and ``AIRFLOW__SECRETS__BACKEND_KWARGS``.

Where it answers
----------------
Only in a process that is executing a task (:func:`airflow_ecr._compat.task_is_running`): a worker's
task process, and ``airflow dags test`` / ``airflow tasks test`` on a DAG author's machine. Anywhere
else (the API server, scheduler, DAG processor, triggerer, Airflow 2's webserver, ``airflow
connections get``) an owned id returns None with a warning and no AWS call, file read or parse.
The reason is the API server: with ``[secrets] backend`` set, Airflow 3's Execution API resolves
any task's ``GetConnection`` there, so without this rule any task could ask for
``ecr:<any registry>`` and get a token minted with the API server's AWS identity.

``allowed_registries`` limits which registries it answers for at all: a list of registry hosts
(``123456789012.dkr.ecr.eu-west-1.amazonaws.com``, ``public.ecr.aws``, an alias host) and 12-digit
account ids (every registry of that account, any region). It applies to ``ecr:`` ids and to mapped
ids alike; any other registry is refused before any AWS call, with an error naming the option.
Without it (the default, for compatibility) every ECR registry the AWS identity can reach is
answered, so a templated ``docker_conn_id`` or run conf can pick any of them: set it.

Connection ids
--------------
- ``ecr:<registry host>`` names a registry by its real host. Examples:
  ``ecr:123456789012.dkr.ecr.eu-west-1.amazonaws.com``,
  ``ecr:123456789012.dkr-ecr.us-east-1.on.aws``, ``ecr:public.ecr.aws``. Any partition, FIPS or
  dual-stack host that :mod:`airflow_ecr.registry` parses is accepted. Airflow 2.11 and 3.x both
  accept ``:`` and ``.`` in connection ids: both validate them with ``[\\w#!()\\-.:/\\\\]+``, at
  most 250 characters. The prefix can be changed with ``conn_id_prefix``, or set to ``null`` to
  accept mapped ids only. An id under the prefix that names no ECR registry is an error. It is
  never passed on to another backend: no other backend could answer it, and falling through would
  hide the typo behind "conn_id isn't defined".
- Friendly ids are listed in ``connections``, a mapping of conn id to one of: a registry host, an
  image name (its registry is used), or
  ``{"registry": "<host>", "registry_id": "<account>", "region_name": "<region>"}`` for an alias
  host (a DNS name or proxy in front of ECR).
- Any other id returns None at once, with no AWS call and no file read. Airflow then asks its next
  backend (environment variables, then the metastore or the API server), or the ``delegate``.

AWS credentials
---------------
Every other key of ``backend_kwargs`` is an AWS setting, as for the amazon provider's
``SecretsManagerBackend``: ``profile_name``, ``region_name``, ``role_arn`` with
``assume_role_method`` / ``assume_role_kwargs``, ``endpoint_url``, ``service_config``,
``verify``, ``config_kwargs``, and, discouraged, ``aws_access_key_id`` / ``aws_secret_access_key``.
They become a boto3 session the way the amazon provider builds one
(:meth:`airflow_ecr.tokens.sources.EcrTokenSource.from_settings`). Without any of them, the boto3 default
chain applies: environment, profile, web identity, container or instance role. No Airflow
connection is read: this backend is the thing that resolves connections. Tokens always come from
the registry's own region. ``region_name`` only sets the session's region, e.g. for role
assumption.

Tokens go through :class:`airflow_ecr.tokens.cache.TokenCache`, which first looks in memory, then in the
host's file cache, and only then asks ECR, with one caller per host fetching at a time. A lookup
served from the cache makes no AWS call; N task processes on one worker make one
``GetAuthorizationToken`` call per token refresh. The tokens are shared with ``EcrDockerOperator``
tasks using the same AWS identity on the same host.

Delegate
--------
Airflow has one custom backend slot. A team whose slot is already taken, e.g. by AWS Secrets
Manager, sets ``"delegate": {"backend": "<class path>", "backend_kwargs": {...}}``. The delegate
then answers every id this backend does not own, and every variable and config lookup, including
the async ``aget_*`` methods that Airflow 3 calls when they exist
(:class:`~airflow_ecr.secrets.delegate.DelegatingSecretsBackend`, this backend's base class).

Airflow's secrets cache
-----------------------
With ``[secrets] use_cache`` on, Airflow keeps each connection it resolves (its URI, password
included) for ``[secrets] cache_ttl_seconds`` (default 900 s). On both 2.11
(``airflow.secrets.cache.SecretCache``) and 3.x (``airflow.sdk.execution_time.cache.SecretCache``)
only the DAG processor turns this cache on, before it forks its parsing processes. So it serves
only the lookups that DAG files make at parse time. Task processes never use it, whatever the
executor, and ``airflow dags test`` and ``tasks run`` do not either: a task always reaches this
backend and gets a token that is valid now.

A cached URI can still be up to ``cache_ttl_seconds`` old when it is used, so while ``use_cache``
is on, this backend never hands out a token with less than ``cache_ttl_seconds`` +
``min_token_life`` (default 0) + the expiry margin (10 % of a token's life, at most 60 s) left to
live. A cached token with less life left is refreshed, at the cost of one ECR call. If even a
fresh token does not live that long, the lookup fails with a message that says to lower
``cache_ttl_seconds``. With ECR's 12-hour tokens, which are refreshed after ``[ecr]
refresh_ratio`` of their life (half by default), any ``cache_ttl_seconds`` under 6 hours (``1 -
refresh_ratio`` of 12 hours) costs nothing. Without the secrets cache, a token handed out has at
least ``1 - [ecr] refresh_ratio`` of its life left (6 hours for ECR by default), and
``min_token_life`` can require more. Every one of these numbers is the refresh policy's
(:class:`~airflow_ecr.tokens.policy.RefreshPolicy`: ``secrets_required_life``, ``usable_for``, the
expiry margin, ``too_short_advice``), the same policy the token cache refreshes by.

Errors
------
A malformed id under the prefix, a registry in an unknown region, missing credentials or an
``AccessDenied`` from ECR each raise :class:`EcrConnectionLookupError`. Its one sentence names the
conn id and what to fix, and never contains a secret. On Airflow 3 (task SDK 1.2.2+) it is an
``AirflowSecretsBackendAccessDenied``, which Airflow re-raises instead of trying the next backend,
so the task fails with that sentence. Airflow 2.11 logs it with the traceback and then raises
"conn_id isn't defined". Older Airflow 3 task SDKs only log a backend's errors at debug level, so
there the backend logs the sentence at error level itself. Any other failure of an owned id, foreseen
or not (e.g. Airflow 2.11's Fernet on cryptography 51), becomes such an error too
(:meth:`EcrDockerConnectionBackend.lookup_failure`), so that no owned id ever ends in a bare
"isn't defined". On Airflow 3 the connection handed to a task is the task SDK's ``Connection``,
which does not go through Airflow's Fernet.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow_ecr import _compat
from airflow_ecr.exceptions import (
    LOOKUP_ERRORS_ARE_AUTHORITATIVE,
    AirflowFernetError,
    EcrConnectionLookupError,
    EcrCredentialsError,
    EcrServiceError,
)
from airflow_ecr.registry import (
    EcrRegistry,
    ImageReference,
    alias_table,
    bare_host,
    declare_alias,
    parse_registry_host,
    resolve_host,
    resolve_registry,
)
from airflow_ecr.secrets.delegate import DelegatingSecretsBackend, json_setting
from airflow_ecr.tokens.cache import TokenCache
from airflow_ecr.tokens.sources import EcrTokenSource
from airflow_ecr.tokens.token import EcrToken

log = logging.getLogger(__name__)

DEFAULT_CONN_ID_PREFIX = "ecr:"
BACKEND_NAME = "the airflow-ecr secrets backend"
CONFIGURED_IN = "the backend's backend_kwargs"
_MAPPING_KEYS = frozenset({"registry", "image", "registry_id", "region_name"})
# Airflow 3 task SDKs before 1.2.2 swallow a backend's exception (3.1: at debug level): log it ourselves.
_LOG_ERRORS = not LOOKUP_ERRORS_ARE_AUTHORITATIVE and _compat.is_airflow_3()


def _lookup_error(message: str) -> EcrConnectionLookupError:
    if _LOG_ERRORS:
        log.error("%s", message)
    return EcrConnectionLookupError(message)


def airflow_secrets_cache_ttl() -> float | None:
    """``[secrets] cache_ttl_seconds`` when ``[secrets] use_cache`` is on, else None."""
    from airflow_ecr._compat import conf

    if not conf.getboolean("secrets", "use_cache", fallback=False):
        return None
    return float(conf.getint("secrets", "cache_ttl_seconds", fallback=15 * 60))


def _parse_connections(value: Any) -> dict[str, Any]:
    value = json_setting(BACKEND_NAME, "connections", value)
    if value in (None, ""):
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, (str, Mapping)) for k, v in value.items()
    ):
        raise ValueError(
            "The airflow-ecr secrets backend's 'connections' setting must map connection ids to a registry "
            "host, an image name or {'registry', 'registry_id', 'region_name'}."
        )
    return dict(value)


def _parse_allowed_registries(value: Any) -> frozenset[str] | None:
    """
    ``allowed_registries`` as lower-case hosts and account ids; None: every registry.

    :param value: a list, its JSON text, a comma-separated string, or None.
    :raises ValueError: for an entry that is neither a 12-digit account id nor a bare host.
    """
    value = json_setting(BACKEND_NAME, "allowed_registries", value)
    if value is None:
        return None
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, Iterable) or isinstance(value, Mapping):
        value = [value]
    entries = set()
    for entry in value:
        name = bare_host(entry).lower() if isinstance(entry, str) else ""
        if not name or "/" in name or any(c.isspace() for c in name) or not name.isascii():
            raise ValueError(
                "Each entry of the airflow-ecr secrets backend's 'allowed_registries' setting must be a "
                "12-digit account id or a registry host such as 123456789012.dkr.ecr.eu-west-1.amazonaws.com."
            )
        entries.add(name)
    return frozenset(entries)


def registry_allowed(registry: EcrRegistry, allowed: frozenset[str] | None) -> bool:
    """
    Whether ``registry`` is in ``allowed``: its host, or its account id, is listed (None: all are).

    :param registry: the registry an id names.
    :param allowed: ``allowed_registries`` as :func:`_parse_allowed_registries` gives it.
    """
    if allowed is None:
        return True
    return registry.host.lower() in allowed or (bool(registry.account_id) and registry.account_id in allowed)


def _declared_alias(host: str | None, overrides: Mapping[str, Any]) -> dict[str, EcrRegistry] | None:
    """
    A mapped entry's non-ECR host with ``registry_id`` and ``region_name`` as a declared alias: the
    backend's settings are the deployment's configuration, as ``[ecr] registry_aliases`` is.

    :param host: the entry's registry host (None: an image without one).
    :param overrides: the entry's ``registry_id`` and ``region_name``.
    """
    registry_id, region_name = overrides.get("registry_id"), overrides.get("region_name")
    if host is None or registry_id is None or region_name is None:
        return None
    try:
        return alias_table([declare_alias(host, str(registry_id), str(region_name))])
    except ValueError:
        # An ECR host stands for itself (declare_alias refuses it) and a malformed entry is
        # reported by resolve_host: neither declares an alias.
        return None


def _host_given(image: str) -> str | None:
    """The registry host ``image`` spells, or None (a Docker Hub name without one)."""
    ref = ImageReference.parse(image)
    return ref.host if ref.host_given else None


def _unknown_region(registry: EcrRegistry) -> str | None:
    """Why ``registry``'s region looks wrong, from botocore's endpoint data (no network), or None."""
    if registry.public:
        return None
    try:
        import botocore.session

        known = botocore.session.get_session().get_available_regions("ecr", partition_name=registry.partition)
    except Exception:
        return None
    if known and registry.region not in known:
        return f"is not a region where botocore knows ECR (partition {registry.partition!r})"
    return None


class EcrDockerConnectionBackend(DelegatingSecretsBackend):
    """
    Resolves ``ecr:<registry host>`` (and mapped) connection ids to docker connections holding a live
    ECR token; everything else goes to the delegate, if any, or to Airflow's next backend.

    :param connections: friendly conn id -> registry host, image name, or
        ``{"registry": ..., "registry_id": ..., "region_name": ...}`` (alias hosts).
    :param conn_id_prefix: the prefix of ids naming a registry by host; None accepts mapped ids only.
    :param delegate: ``{"backend": "<class path>", "backend_kwargs": {...}}``: a backend answering
        every id, variable and config key this one does not own.
    :param min_token_life: seconds a token handed out must still live, on top of Airflow's secrets
        cache TTL when that cache is on.
    :param allowed_registries: registry hosts and 12-digit account ids this backend answers for
        (``ecr:`` and mapped ids alike); None (the default): every registry.
    :param aws_settings: AWS settings as in an AWS connection's extra (``profile_name``,
        ``region_name``, ``role_arn``, ``endpoint_url``, ...); none: the boto3 default chain.
    """

    backend_name = BACKEND_NAME

    def __init__(
        self,
        connections: Mapping[str, Any] | str | None = None,
        conn_id_prefix: str | None = DEFAULT_CONN_ID_PREFIX,
        delegate: Mapping[str, Any] | str | None = None,
        min_token_life: float | str = 0.0,
        allowed_registries: Iterable[str] | str | None = None,
        **aws_settings: Any,
    ) -> None:
        # Construction stays cheap and offline: Airflow 3 builds a backend for some config lookups.
        self.connections = _parse_connections(connections)
        self.conn_id_prefix = conn_id_prefix or None
        try:
            self.min_token_life = float(min_token_life)
        except (TypeError, ValueError):
            self.min_token_life = -1.0
        if not self.min_token_life >= 0:
            raise ValueError("The airflow-ecr secrets backend's 'min_token_life' must be a number of seconds >= 0.")
        self.allowed_registries = _parse_allowed_registries(allowed_registries)
        self.aws_settings = aws_settings
        super().__init__(delegate=delegate)

    # -- what is ours ------------------------------------------------------------------------
    def owns(self, conn_id: str) -> bool:
        """Whether ``conn_id`` is resolved by this backend (no I/O)."""
        return conn_id in self.connections or (
            self.conn_id_prefix is not None and isinstance(conn_id, str) and conn_id.startswith(self.conn_id_prefix)
        )

    def registry(self, conn_id: str) -> EcrRegistry:
        """
        The ECR registry an owned ``conn_id`` stands for.

        :param conn_id: an id for which :meth:`owns` is true.
        :raises EcrConnectionLookupError: if the id names no ECR registry.
        """
        if conn_id in self.connections:
            return self._mapped_registry(conn_id, self.connections[conn_id])
        prefix = self.conn_id_prefix or ""
        name = conn_id[len(prefix) :]
        try:
            if "/" in bare_host(name):
                raise ValueError("a path is not part of a registry host")
            return parse_registry_host(name)
        except ValueError:
            raise _lookup_error(
                f"Connection id {conn_id!r} starts with {prefix!r}, the airflow-ecr secrets backend's prefix, "
                f"but {name!r} is not an Amazon ECR registry host: write it as "
                f"'{prefix}<12-digit account id>.dkr.ecr.<region>.amazonaws.com' (or '{prefix}public.ecr.aws'), "
                "or map a friendly id to the registry in the backend's 'connections' setting."
            ) from None

    @staticmethod
    def _mapped_registry(conn_id: str, target: Any) -> EcrRegistry:
        try:
            if isinstance(target, str):
                ref = bare_host(target)
                return resolve_registry(ref) if "/" in ref else resolve_host(ref)
            unknown = sorted(set(target) - _MAPPING_KEYS)
            image, host = target.get("image"), target.get("registry")
            if unknown or (image is None) == (host is None):
                raise ValueError(
                    "give exactly one of 'registry' or 'image', optionally with 'registry_id' and 'region_name'"
                    + (f" (unknown keys {unknown})" if unknown else "")
                )
            overrides = {"registry_id": target.get("registry_id"), "region_name": target.get("region_name")}
            aliases = _declared_alias(_host_given(str(image)) if image is not None else str(host), overrides)
            if image is not None:
                return resolve_registry(str(image), aliases=aliases, **overrides)
            return resolve_host(str(host), aliases=aliases, **overrides)
        except ValueError as err:
            raise _lookup_error(
                f"Connection {conn_id!r} is mapped in the airflow-ecr secrets backend's 'connections' setting to "
                f"something that names no ECR registry; fix that entry: {err}"
            ) from None

    def lookup_failure(self, conn_id: str, err: Exception) -> Exception:
        """
        Every failure of an owned id as an :class:`EcrConnectionLookupError` saying what to do (logged
        at error level where Airflow would swallow it), never a bare exception Airflow may hide.

        :param conn_id: the owned id being resolved.
        :param err: what resolving it raised.
        """
        if isinstance(err, EcrConnectionLookupError):
            return err
        if _compat.is_fernet_breakage(err):
            return _lookup_error(AirflowFernetError.sentence(f"Connection {conn_id!r} cannot be built"))
        # Only the type and the place: an unexpected exception's text may quote a secret.
        frame = traceback.extract_tb(err.__traceback__)[-1:]
        where = f" at {Path(frame[0].filename).name}:{frame[0].lineno}" if frame else ""
        return _lookup_error(
            f"Connection {conn_id!r} could not be resolved: the airflow-ecr secrets backend failed with "
            f"{type(err).__name__}{where}; run 'airflow-ecr doctor' on this worker to check its "
            "setup, and report this line to airflow-ecr if doctor passes."
        )

    # -- tokens ------------------------------------------------------------------------------
    @cached_property
    def token_source(self) -> EcrTokenSource:
        """Where tokens come from: a boto3 session from this backend's AWS settings."""
        return EcrTokenSource.from_settings(self.aws_settings, name=BACKEND_NAME, configured_in=CONFIGURED_IN)

    @cached_property
    def token_cache(self) -> TokenCache:
        """The memory + host file token cache (``[ecr]`` settings)."""
        return TokenCache.shared()

    @cached_property
    def required_life(self) -> float:
        """Seconds a handed-out token must still live, beyond the expiry margin (the refresh policy's rule)."""
        return self.token_cache.policy.secrets_required_life(self.min_token_life, airflow_secrets_cache_ttl())

    def token(self, conn_id: str, registry: EcrRegistry) -> EcrToken:
        """
        A token for ``registry`` that lives long enough (see the module's notes on Airflow's cache).

        :param conn_id: the connection id being resolved (for error messages).
        :param registry: its registry.
        :raises EcrConnectionLookupError: naming the conn id and what to fix.
        """
        cache, source, required = self.token_cache, self.token_source, self.required_life
        try:
            # Valid for a pull now is not enough: a cached copy of the connection may be used later.
            token = cache.get_one(source, registry, min_life=required, requester=f"connection {conn_id!r}")
        except (EcrCredentialsError, EcrServiceError) as err:
            why = _unknown_region(registry)
            if why:
                raise _lookup_error(
                    f"Connection {conn_id!r} names registry {registry.host} in region {registry.region!r}, "
                    f"which {why}: fix the region in the registry host ({err})"
                ) from None
            raise _lookup_error(f"Connection {conn_id!r} got no ECR token: {err}") from None
        if required and not cache.policy.usable_for(token, time.time(), required):
            raise _lookup_error(self._too_short(conn_id, registry, token))
        return token

    def _too_short(self, conn_id: str, registry: EcrRegistry, token: EcrToken) -> str:
        ttl = airflow_secrets_cache_ttl()
        reasons = [f"[secrets] cache_ttl_seconds={ttl:.0f} with use_cache on"] if ttl else []
        if self.min_token_life:
            reasons.append(f"min_token_life={self.min_token_life:.0f}")
        fix = self.token_cache.policy.too_short_advice(token, ttl, self.min_token_life)
        return (
            f"Connection {conn_id!r}: ECR hands out tokens for {registry.host} that live {token.lifetime:.0f} s, "
            f"too short for the {self.required_life:.0f} s they must stay valid after the lookup "
            f"({' and '.join(reasons)}): {fix}."
        )

    def connection_fields(self, conn_id: str) -> dict[str, Any] | None:
        """
        The docker connection for an owned ``conn_id``: host, login and a live password; None
        outside a running task (see "Where it answers").

        :param conn_id: an id for which :meth:`owns` is true.
        :raises EcrConnectionLookupError: for a registry outside ``allowed_registries``, and as
            :meth:`registry` and :meth:`token` do.
        """
        if not _compat.task_is_running():
            # Checked before anything else: a server process must not act for whichever task asks.
            log.warning(
                "Connection %r is not resolved here: the airflow-ecr secrets backend answers only in a process "
                "running a task, never for another process such as the API server, so that no task gets a token "
                "minted with this process's AWS identity; on Airflow 3 configure it as [workers] secrets_backend.",
                conn_id,
            )
            return None
        registry = self.registry(conn_id)
        if not registry_allowed(registry, self.allowed_registries):
            raise _lookup_error(
                f"Connection {conn_id!r} names registry {registry.host}, which is not in the airflow-ecr secrets "
                "backend's 'allowed_registries': add that host or its account id to 'allowed_registries' in "
                "the backend's backend_kwargs, or use a registry that is listed."
            )
        # Where the token came from is logged as in every mode (TokenCache.get: the provenance line).
        token = self.token(conn_id, registry)
        return {"conn_type": "docker", "host": registry.host, "login": token.username, "password": token.password}
