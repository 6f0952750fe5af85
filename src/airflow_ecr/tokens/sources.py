"""
Where tokens come from: :class:`EcrTokenSource`, the one class that calls ``GetAuthorizationToken``.

A source is one AWS identity. It is built from an Airflow AWS connection (operators, hooks, the
CLI, doctor) or from AWS settings given directly (the secrets backend, which cannot look up
connections since it is what resolves them). Either way the boto3 session comes from the amazon
provider's ``AwsConnectionWrapper`` + ``SessionFactory``, as in ``AwsBaseHook`` and the provider's
own secrets backends: role assumption, profiles, web identity, ``endpoint_url``, ``config_kwargs``
and ``verify`` behave exactly as in every AWS hook.

The token call retries as ``[ecr] token_retry_mode`` / ``token_max_attempts`` say, unless the
connection's ``config_kwargs`` has ``retries`` (:func:`with_token_retries`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

from airflow_ecr import _compat
from airflow_ecr.exceptions import AirflowFernetError, EcrCredentialsError
from airflow_ecr.registry import ECR_PUBLIC_REGION, EcrRegistry
from airflow_ecr.settings import DEFAULT_AWS_CONN_ID, TokenRetries, token_retries
from airflow_ecr.tokens.aws_errors import translate_aws_errors
from airflow_ecr.tokens.cache import fingerprint
from airflow_ecr.tokens.credential_facts import (
    default_chain_source,
    environment_facts,
    read_small_file,
    settings_facts,
)
from airflow_ecr.tokens.token import (
    ECR_PUBLIC_PROXY_ENDPOINT,
    EcrToken,
    token_from,
    token_response_unlogged,
    tokens_by_registry_id,
)

log = logging.getLogger(__name__)

_SECRET_WORDS = ("secret", "token", "password", "key")
# The identity of a conn id that names no connection starts with this: when the identity index
# hands it to a warm lookup (which reads no connection), the source still warns, or fails.
NO_CONNECTION = "no-connection:"
# The services whose clients make the token call (and so get its retry policy).
TOKEN_SERVICES = frozenset({"ecr", "ecr-public"})


def _is_secret_key(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS) and lowered not in ("aws_access_key_id",)


def public_settings(value: Any) -> Any:
    """``value`` with every secret-looking key removed, at any depth (for cache keys and messages)."""
    if isinstance(value, dict):
        return {str(k): public_settings(v) for k, v in sorted(value.items()) if not _is_secret_key(str(k))}
    if isinstance(value, (list, tuple)):
        return [public_settings(v) for v in value]
    return value


def with_fips_endpoint(config: Any) -> Any:
    """
    A botocore ``Config`` that also selects the ECR API's FIPS endpoint, for ``dkr.ecr-fips`` registries.

    An explicit ``endpoint_url`` (VPC endpoint, emulator) still wins, as in botocore.

    :param config: the botocore ``Config`` (or its kwargs) in effect, or None.
    """
    from botocore.config import Config

    fips = Config(use_fips_endpoint=True)
    if isinstance(config, dict):
        config = Config(**config)
    return config.merge(fips) if config is not None else fips


def with_token_retries(config: Any, retries: TokenRetries) -> Any:
    """
    A botocore ``Config`` that retries the token call as ``retries`` says, unless ``config``
    (the connection's ``config_kwargs``, the backend's settings, or the caller's) sets ``retries``:
    theirs wins whole, as in every AWS hook.

    Why botocore's own modes and no loop of ours: ``standard`` (and ``adaptive``, which adds a
    client-side rate limiter on top) already backs a throttled call off with full jitter, each wait
    drawn from ``[0, min(2 ** n, 20))`` seconds, so ``total_max_attempts`` alone bounds the whole
    wait (:func:`~airflow_ecr.settings.token_retry_wait_bound`: 51 s for the default 7 attempts, 25 s
    on average) and the jitter spreads a fleet's retries over ECR's refill (20 calls per second).
    A loop around the call would retry on top of botocore's own retries (attempts multiplied),
    and would need botocore's retries off, losing its handling of 5xx, timeouts and its retry
    quota. botocore's default of 3 attempts waits 3 s at most: too little for a cold fleet.

    :param config: the botocore ``Config`` (or its kwargs) in effect, or None.
    :param retries: the ``[ecr]`` retry policy.
    """
    from botocore.config import Config

    botocore_retries: Any = retries.botocore_retries  # botocore's stubs want their own TypedDict
    ours = Config(retries=botocore_retries)
    if isinstance(config, dict):
        config = Config(**config)
    # merge(): the options the other Config was given win, those it was not given stay ours.
    return ours.merge(config) if config is not None else ours


_NOT_LOOKED_UP: Any = object()


class EcrTokenSource:
    """
    Tokens for one AWS identity, from an Airflow AWS connection or from AWS settings given directly.

    Build it with :meth:`from_connection` or :meth:`from_settings`. The connection is looked up at
    most once, and only when the identity or a fetch needs it; clients are made once per (service,
    region, FIPS) over one session (one role assumption) per source.

    :param aws_conn_id: the Airflow AWS connection (None: no connection).
    :param aws_settings: AWS settings as in a connection's extra, used instead of a connection.
    :param verify: TLS verification of the ECR API (overrides the connection's).
    :param botocore_config: botocore ``Config`` kwargs (overrides the connection's ``config_kwargs``).
    :param name: how messages name the user of ``aws_settings``.
    :param configured_in: how messages name where the settings live.
    """

    def __init__(
        self,
        *,
        aws_conn_id: str | None = None,
        aws_settings: dict[str, Any] | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        name: str = "the boto3 session",
        configured_in: str = "the AWS connection",
    ) -> None:
        self.aws_conn_id = aws_conn_id
        self.aws_settings = None if aws_settings is None else dict(aws_settings)
        self.verify = verify
        self.botocore_config = botocore_config
        self.name = name
        self.configured_in = configured_in
        self._connection: Any = _NOT_LOOKED_UP
        self._connection_missing = False
        self._missing_reported = False
        self._identity: str | None = None
        self._locator: str | None = None
        self._environment: list[object] | None = None
        self._session: Any = None
        self._wrapper: Any = None
        self._clients: dict[tuple[str, str, bool], Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_connection(
        cls,
        aws_conn_id: str | None = DEFAULT_AWS_CONN_ID,
        *,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
    ) -> EcrTokenSource:
        """
        A source for an Airflow AWS connection, as ``AwsBaseHook(aws_conn_id=...)`` would use it.

        :param aws_conn_id: the connection; None (or a missing id) for the boto3 default chain.
        :param verify: TLS verification of the ECR API.
        :param botocore_config: botocore ``Config`` kwargs (retries, timeouts, ...).
        """
        return cls(aws_conn_id=aws_conn_id, verify=verify, botocore_config=botocore_config)

    @classmethod
    def from_settings(
        cls,
        aws_settings: dict[str, Any] | None = None,
        *,
        name: str = "the boto3 session",
        configured_in: str = "the AWS settings",
    ) -> EcrTokenSource:
        """
        A source for AWS settings given directly, not from an Airflow connection.

        The settings are those of an AWS connection's extra: ``profile_name``, ``region_name`` (of
        the session, e.g. for STS; tokens always come from the registry's region), ``role_arn`` with
        ``assume_role_method`` / ``assume_role_kwargs``, ``endpoint_url``, ``service_config``,
        ``verify``, ``config_kwargs``, and (discouraged) ``aws_access_key_id`` /
        ``aws_secret_access_key`` / ``aws_session_token``. Without any, the boto3 default chain
        (environment, profile, web identity, container or instance role) applies.

        :param aws_settings: the settings.
        :param name: how error messages name the user of these settings, e.g. a secrets backend.
        :param configured_in: how error messages name where the settings live.
        """
        return cls(aws_settings=aws_settings or {}, name=name, configured_in=configured_in)

    # -- identity ----------------------------------------------------------------------------
    def _environment_facts(self) -> list[object]:
        """The environment's credential facts, computed once per source (a few small file reads)."""
        if self._environment is None:
            self._environment = list(environment_facts(os.environ, read_small_file))
        return self._environment

    @property
    def locator(self) -> str | None:
        """
        Where the identity is configured (see :class:`TokenSource`); None for direct settings.

        It holds the environment's credential facts too, so that a process with other credentials
        (another pod's service account, another access key) never reads this one's identity record,
        and :meth:`_origin_facts`, so that another team, deployment or secrets backend, for which
        the same id is another connection, never does either.
        """
        if self.aws_settings is not None:
            return None  # the identity itself is as cheap
        if self._locator is None:
            self._locator = fingerprint(
                ["conn-locator", self.aws_conn_id, *self._origin_facts(), *self._environment_facts()]
            )
        return self._locator

    def _origin_facts(self) -> list[Any]:
        """
        What can make this conn id another connection without a change to it: the deployment, the
        team and the secrets backends (:func:`~airflow_ecr._compat.deployment_facts`), and the
        connection itself where it is kept in an environment variable (read for free: a change to
        it counts at once), the team's (``AIRFLOW_CONN__<TEAM>___<ID>``) as the plain one.
        """
        from airflow_ecr._compat import deployment_facts, task_team

        if not self.aws_conn_id:
            return deployment_facts()
        conn_id = self.aws_conn_id.upper()
        team = task_team()
        in_env = os.environ.get(f"AIRFLOW_CONN_{conn_id}")
        in_team_env = os.environ.get(f"AIRFLOW_CONN__{team.upper()}___{conn_id}") if team else None
        return [in_env, in_team_env, *deployment_facts()]

    @property
    def identity(self) -> str:
        if self._identity is None:
            if self.aws_settings is not None:
                # Non-secret settings and the environment select the identity; the secret key never enters.
                settings = self.aws_settings
                facts = [*self._environment_facts(), *settings_facts(settings, read_small_file)]
                self._identity = fingerprint(["boto", public_settings(settings), *facts])
            else:
                identity = fingerprint(["conn", self.aws_conn_id, *self._connection_identity()])
                self._identity = NO_CONNECTION + identity if self._connection_missing else identity
        return self._identity

    def identity_recalled(self, identity: str) -> None:
        """
        The token cache found this source's identity in its index, without reading the connection:
        a conn id recorded as naming no connection warns (or fails) as the lookup itself would.

        :param identity: the recorded identity.
        """
        if identity.startswith(NO_CONNECTION):
            self._report_missing_connection()

    @property
    def connection_missing(self) -> bool:
        """Whether ``aws_conn_id`` names no Airflow connection (looks it up; neither warns nor fails)."""
        self._look_up()
        return self._connection_missing

    @property
    def description(self) -> str:
        if self.aws_settings is not None:
            shown = [
                f"{key}={self.aws_settings[key]!r}"
                for key in ("profile_name", "role_arn", "endpoint_url")
                if self.aws_settings.get(key)
            ]
            return f"{self.name} ({', '.join(shown) or 'boto3 default credential chain'})"
        if self._connection is not _NOT_LOOKED_UP and self._connection_missing:
            # The amazon provider falls back to boto3's default chain for an unknown id: say so, as
            # a typo in aws_conn_id otherwise reads as a credentials problem.
            return f"aws_conn_id={self.aws_conn_id!r} (no such Airflow connection: boto3's default chain was used)"
        return f"aws_conn_id={self.aws_conn_id!r}"

    def connection(self) -> Any:
        """
        The AWS connection (looked up once), or None for no id or a missing one (which warns, or
        fails under ``[ecr] require_aws_connection``: :meth:`_report_missing_connection`).
        """
        self._look_up()
        if self._connection_missing:
            self._report_missing_connection()
        return self._connection

    def _look_up(self) -> None:
        if self._connection is _NOT_LOOKED_UP:
            self._connection = None
            if self.aws_conn_id:
                from airflow_ecr._compat import AirflowNotFoundException, BaseHook

                try:
                    conn = BaseHook.get_connection(self.aws_conn_id)
                    _ = conn.password  # an encrypted row (Airflow 2.11's metastore) is decrypted here
                    self._connection = conn
                except (AirflowNotFoundException, AttributeError, ImportError) as err:
                    # Airflow logs why it could not build a connection, then calls it missing. Outside a
                    # task, Airflow 3.1.0's task SDK cannot look one up at all (ImportError of
                    # SUPERVISOR_COMMS): AwsBaseHook then takes boto3's default chain, and so do we.
                    if _compat.airflow_fernet_broken():
                        raise EcrCredentialsError(
                            AirflowFernetError.sentence(f"Cannot read AWS connection {self.aws_conn_id!r}")
                        ) from None
                    if isinstance(err, AttributeError):
                        raise
                    # As AwsBaseHook does: a missing connection means boto3's default chain.
                    self._connection_missing = True

    def _report_missing_connection(self) -> None:
        """
        Say, once per source, that ``aws_conn_id`` names no connection and which credentials boto3's
        default chain takes instead (a mistyped id otherwise runs silently under the worker's own
        identity); fail instead under ``[ecr] require_aws_connection``.

        :raises EcrMissingConnectionError: when ``[ecr] require_aws_connection`` is True.
        """
        if self._missing_reported:
            return
        from airflow_ecr.settings import require_aws_connection

        used = default_chain_source(os.environ, read_small_file)
        if require_aws_connection():  # every time: a caller that goes on must not get the default chain
            from airflow_ecr.exceptions import EcrMissingConnectionError

            raise EcrMissingConnectionError(
                f"aws_conn_id={self.aws_conn_id!r} names no Airflow connection and [ecr] require_aws_connection "
                f"is True: create the AWS connection {self.aws_conn_id!r} or fix aws_conn_id "
                f"(boto3's default chain would have used {used})."
            )
        self._missing_reported = True
        log.warning(
            "No Airflow connection with id %r (aws_conn_id): using boto3's default credential chain instead, "
            "which takes %s. Create the connection or fix aws_conn_id; aws_conn_id=None uses these credentials "
            "on purpose, and [ecr] require_aws_connection = True makes this an error.",
            self.aws_conn_id,
            used,
        )

    def _connection_identity(self) -> list[object]:
        """Non-secret fields of the connection and the credential facts that select the identity."""
        parts: list[object] = list(self._environment_facts())
        if not self.aws_conn_id:
            return parts
        conn = self.connection()
        if conn is None:
            return [*parts, "no-connection"]
        extra = conn.extra_dejson or {}
        public = {k: v for k, v in extra.items() if not _is_secret_key(k)}
        parts += settings_facts(extra, read_small_file)
        return [*parts, conn.conn_type, conn.host, conn.login, conn.schema, public]

    # -- AWS calls ---------------------------------------------------------------------------
    def _connection_wrapper(self) -> Any:
        from airflow.providers.amazon.aws.utils.connection_wrapper import AwsConnectionWrapper

        if self.aws_settings is not None:
            # In memory only, as the amazon provider's SecretsManagerBackend does: no connection is looked up.
            return AwsConnectionWrapper.from_connection_metadata(
                conn_id=f"{type(self).__name__}__settings", extra=self.aws_settings
            )
        from botocore.config import Config

        config = Config(**self.botocore_config) if self.botocore_config is not None else None
        return AwsConnectionWrapper(conn=self.connection(), botocore_config=config, verify=self.verify)

    def client(self, service: str, region: str, fips: bool = False) -> Any:
        """
        A boto3 client per (service, region, FIPS), over one session per source; ECR's with the
        token call's retry policy (:func:`with_token_retries`).

        :param service: ``ecr``, ``ecr-public`` or ``sts``.
        :param region: the client's region (the registry's).
        :param fips: whether to select the service's FIPS endpoint.
        """
        with self._lock:
            client = self._clients.get((service, region, fips))
            if client is not None:
                return client
            if self._session is None:
                from airflow.providers.amazon.aws.hooks.base_aws import SessionFactory

                self._wrapper = self._connection_wrapper()
                self._session = SessionFactory(conn=self._wrapper).create_session()
            wrapper = self._wrapper
            config = wrapper.botocore_config
            if service in TOKEN_SERVICES:
                config = with_token_retries(config, token_retries())
            endpoint_url = wrapper.get_service_endpoint_url(service)
            if endpoint_url:
                # An explicit endpoint (a VPC endpoint, an emulator) is used as given: botocore would
                # otherwise put an operation's host prefix before it (Signer's ``data-``).
                from botocore.config import Config

                no_prefix = Config(inject_host_prefix=False)
                config = config.merge(no_prefix) if config is not None else no_prefix
            client = self._session.client(
                service_name=service,
                region_name=region,
                endpoint_url=endpoint_url,
                config=with_fips_endpoint(config) if fips else config,
                verify=wrapper.verify,
            )
            self._clients[(service, region, fips)] = client
            return client

    def fetch(self, registries: Sequence[EcrRegistry]) -> dict[str, EcrToken]:
        first = registries[0]
        with translate_aws_errors(self.description, registries, configured_in=self.configured_in) as call:
            if first.public:
                client = self.client("ecr-public", ECR_PUBLIC_REGION)
                call.endpoint_url = client.meta.endpoint_url
                with token_response_unlogged():  # botocore would log the token in the body at DEBUG
                    data = client.get_authorization_token()["authorizationData"]
                return {"": token_from(data, ECR_PUBLIC_PROXY_ENDPOINT)}
            ids = sorted({r.registry_id for r in registries})
            client = self.client("ecr", first.region, fips=any(r.fips for r in registries))
            call.endpoint_url = client.meta.endpoint_url
            with token_response_unlogged():  # botocore would log the token in the body at DEBUG
                response = client.get_authorization_token(registryIds=ids)
            return tokens_by_registry_id(response["authorizationData"], ids)
