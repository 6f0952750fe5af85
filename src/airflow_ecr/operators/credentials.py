"""
EcrCredentialRegisterOperator: write fresh ECR tokens into Airflow ``docker`` connections.

For DAGs that keep the stored-connection habit: a task before unmodified
``DockerOperator(docker_conn_id=...)`` tasks rewrites the docker connection with a live token.
Compared to the widely copied version (``airflow connections delete`` + ``airflow connections add
--conn-password <token>`` as subprocesses) the write here is an upsert that never deletes, runs in
the task's process, and never puts the token on a command line, in a log or in XCom.

Where the write goes:

- Airflow 2: the metadata database, through the ORM, in one transaction (the row is updated in
  place, so a concurrent reader sees either the old complete connection or the new one).
- Airflow 3: task processes have no database access, so the write goes through the REST API of the
  api-server: ``PATCH /api/v2/connections/{id}``, or ``POST /api/v2/connections`` when it does not
  exist yet. The API is found and authenticated through an Airflow connection (``api_conn_id``,
  default ``airflow_api``), typically of type ``http``:

  - ``host``: the api-server URL (``http://airflow-api:8080``; or a bare host name with ``schema``
    ``http``/``https`` and ``port``),
  - ``login`` / ``password``: a user allowed to edit connections; a JWT is obtained from
    ``POST /auth/token`` with them (the flow of the simple auth manager and of the FAB auth manager),
  - or, instead of login and password, ``extra: {"token": "<JWT>"}``: a pre-issued API token,
  - ``extra: {"verify": false | "/path/ca.pem"}``: TLS verification of the API (default on).

  For example ``AIRFLOW_CONN_AIRFLOW_API='{"conn_type": "http", "host": "http://127.0.0.1:8080",
  "login": "admin", "password": "..."}'``.

Naming rule for several registries: with one registry id the connection is ``conn_id_name``. With
several, ``conn_id_name`` may contain ``{registry_id}`` (and ``{region}``), e.g.
``"ecr_{registry_id}"``; without that placeholder each connection is
``f"{conn_id_name}_{registry_id}"`` (``docker_ecr_123456789012``, ...).
"""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from airflow_ecr._compat import BaseOperator
from airflow_ecr.exceptions import EcrConfigurationError, EcrError
from airflow_ecr.registry import EcrRegistry, registry_host, resolve_host, validate_account_id
from airflow_ecr.tokens import AwsConnectionTokenSource, EcrToken, TokenCache, TokenSource

if TYPE_CHECKING:
    from airflow_ecr._compat import Context

log = logging.getLogger(__name__)

DEFAULT_API_CONN_ID = "airflow_api"
DOCKER_CONN_TYPE = "docker"
# The API may be slow under load, but a cron job or a task must not hang on a dead server.
DEFAULT_API_TIMEOUT = 30.0


class ConnectionWriteError(EcrError):
    """The Airflow connection could not be written (database or REST API unreachable or refusing)."""


@dataclass(frozen=True)
class DockerLogin:
    """
    What is written into one docker connection.

    :param conn_id: the Airflow connection id.
    :param registry: the ECR registry (its host becomes the connection's host).
    :param token: the ECR token (its password becomes the connection's password).
    """

    conn_id: str
    registry: EcrRegistry
    token: EcrToken = field(repr=False)

    def summary(self) -> dict[str, str]:
        """Non-secret facts about the write, fit for XCom and logs."""
        return {
            "conn_id": self.conn_id,
            "host": self.registry.host,
            "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.token.expires_at)),
        }


class ConnectionWriter(Protocol):
    """Creates or replaces a docker connection, without ever deleting it first."""

    @property
    def description(self) -> str:
        """How messages name the destination, e.g. ``the metadata database``."""
        ...

    def upsert(self, conn_id: str, *, host: str, login: str, password: str) -> None:
        """
        Create ``conn_id`` as a docker connection, or replace its type, host, login and password.

        :raises ConnectionWriteError: naming the destination, never the password.
        """
        ...


def _first_line(err: BaseException) -> str:
    """A database error's own message (SQLAlchemy's text lists the statement's parameters)."""
    original = getattr(err, "orig", None) or err
    return (str(original).strip().splitlines() or [type(original).__name__])[0]


class OrmConnectionWriter:
    """
    Writes through Airflow's ORM in one transaction (Airflow 2; and Airflow 3 outside tasks).

    The row is locked (``SELECT ... FOR UPDATE``) and updated in place: readers keep seeing the
    previous complete row until the commit, then the new one; the row never disappears.
    """

    description = "the Airflow metadata database"

    def upsert(self, conn_id: str, *, host: str, login: str, password: str) -> None:
        from sqlalchemy import select
        from sqlalchemy.exc import IntegrityError, SQLAlchemyError

        from airflow_ecr._compat import ConnectionModel as Connection
        from airflow_ecr._compat import create_session

        for attempt in (1, 2):
            try:
                with create_session() as session:
                    query = select(Connection).where(Connection.conn_id == conn_id).with_for_update()
                    conn = session.scalar(query)
                    if conn is None:
                        conn = Connection(conn_id=conn_id, conn_type=DOCKER_CONN_TYPE)
                        session.add(conn)
                    conn.conn_type = DOCKER_CONN_TYPE
                    conn.host = host
                    conn.login = login
                    conn.password = password
                return
            except IntegrityError as err:
                # Two writers creating the same new connection: the loser updates the winner's row.
                if attempt == 2:
                    raise ConnectionWriteError(
                        f"Cannot write connection {conn_id!r} to {self.description}: {_first_line(err)}"
                    ) from None
            except SQLAlchemyError as err:
                raise ConnectionWriteError(
                    f"Cannot write connection {conn_id!r} to {self.description} "
                    f"(check [database] sql_alchemy_conn): {_first_line(err)}"
                ) from None


class RestApiConnectionWriter:
    """
    Writes through the Airflow 3 REST API, authenticated with the Airflow connection ``api_conn_id``.

    :param api_conn_id: the connection holding the API URL and credentials (see the module doc).
    :param timeout: seconds per HTTP request.
    """

    def __init__(self, api_conn_id: str = DEFAULT_API_CONN_ID, *, timeout: float = DEFAULT_API_TIMEOUT) -> None:
        self.api_conn_id = api_conn_id
        self.timeout = timeout
        self._base_url: str | None = None
        self._verify: bool | str = True
        self._credentials: tuple[str, str] | None = None
        self._jwt: str | None = None
        self._session: Any = None

    @property
    def description(self) -> str:
        return f"the Airflow REST API at {self._base_url or '?'} (api_conn_id={self.api_conn_id!r})"

    def _configure(self) -> None:
        if self._base_url is not None:
            return
        from airflow_ecr._compat import BaseHook, mask_secret

        try:
            conn = BaseHook.get_connection(self.api_conn_id)
        except Exception as err:
            raise ConnectionWriteError(
                f"Airflow connection {self.api_conn_id!r}, which should hold the URL and credentials of "
                f"the Airflow REST API, cannot be read ({type(err).__name__}): create it, e.g. an http "
                "connection with host 'http://<api-server>:8080', login and password."
            ) from None
        host = (conn.host or "").strip().rstrip("/")
        if not host:
            raise ConnectionWriteError(
                f"Airflow connection {self.api_conn_id!r} has no host: set it to the api-server URL, "
                "e.g. 'http://airflow-api:8080'."
            )
        if "://" not in host:
            scheme = conn.schema if conn.schema in ("http", "https") else "http"
            host = f"{scheme}://{host}"
            if conn.port:
                host = f"{host}:{conn.port}"
        self._base_url = host
        extra = conn.extra_dejson or {}
        self._verify = extra.get("verify", True)
        if extra.get("token"):
            self._jwt = str(extra["token"])
            mask_secret(self._jwt)
        elif conn.login and conn.password:
            self._credentials = (conn.login, conn.password)
        else:
            raise ConnectionWriteError(
                f"Airflow connection {self.api_conn_id!r} has neither login and password nor an "
                f"extra 'token' to authenticate to the Airflow REST API at {host}."
            )

    def _request(self, method: str, path: str, body: Any, *, auth: bool = True) -> Any:
        import requests

        if self._session is None:
            self._session = requests.Session()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self._token()}"
        url = f"{self._base_url}{path}"
        try:
            return self._session.request(
                method, url, data=json.dumps(body), headers=headers, timeout=self.timeout, verify=self._verify
            )
        except requests.RequestException as err:
            reason = type(err).__name__
            raise ConnectionWriteError(
                f"Cannot reach the Airflow REST API at {self._base_url} (from connection "
                f"{self.api_conn_id!r}): {reason}. Check that the api-server runs and that the "
                "connection's host is its URL."
            ) from None

    def _token(self) -> str:
        if self._jwt is not None:
            return self._jwt
        from airflow_ecr._compat import mask_secret

        assert self._credentials is not None  # _configure() guarantees one way to authenticate
        username, password = self._credentials
        response = self._request("POST", "/auth/token", {"username": username, "password": password}, auth=False)
        if response.status_code not in (200, 201):
            raise ConnectionWriteError(
                f"The Airflow REST API at {self._base_url} refused the credentials of connection "
                f"{self.api_conn_id!r} (POST /auth/token: HTTP {response.status_code}): check its login "
                "and password."
            )
        try:
            self._jwt = str(response.json()["access_token"])
        except (ValueError, KeyError, TypeError):
            raise ConnectionWriteError(
                f"{self._base_url}/auth/token (connection {self.api_conn_id!r}) did not return an "
                "access_token: is the connection's host the Airflow 3 api-server?"
            ) from None
        mask_secret(self._jwt)
        return self._jwt

    def _refused(self, conn_id: str, what: str, response: Any, password: str) -> ConnectionWriteError:
        detail = ""
        try:
            payload = response.json()
            if isinstance(payload, dict) and isinstance(payload.get("detail"), str):
                detail = payload["detail"]
        except ValueError:
            pass
        # Validation errors may echo the request body: never let the password through.
        detail = detail.replace(password, "***")[:300] if password else detail[:300]
        hint = {
            401: f"the API token was refused; check connection {self.api_conn_id!r}",
            403: f"the user of connection {self.api_conn_id!r} may not edit connections",
        }.get(response.status_code, "")
        return ConnectionWriteError(
            f"The Airflow REST API at {self._base_url} refused to {what} connection {conn_id!r} "
            f"(HTTP {response.status_code}{': ' + hint if hint else ''}){': ' + detail if detail else ''}"
        )

    def upsert(self, conn_id: str, *, host: str, login: str, password: str) -> None:
        self._configure()
        fields = {"conn_type": DOCKER_CONN_TYPE, "host": host, "login": login, "password": password}
        body = {"connection_id": conn_id, **fields}
        quoted = urllib.parse.quote(conn_id, safe="")
        # update_mask: only these fields change; the connection's extra (e.g. reauth) is kept.
        mask = "&".join(f"update_mask={name}" for name in fields)
        for attempt in (1, 2, 3):
            response = self._request("PATCH", f"/api/v2/connections/{quoted}?{mask}", body)
            if response.status_code == 401 and attempt == 1 and self._credentials is not None:
                self._jwt = None  # an expired JWT: log in again once
                continue
            if response.status_code == 404:
                response = self._request("POST", "/api/v2/connections", body)
                if response.status_code == 409:
                    continue  # created meanwhile by another writer: patch that one
                if response.status_code not in (200, 201):
                    raise self._refused(conn_id, "create", response, password)
                return
            if response.status_code != 200:
                raise self._refused(conn_id, "update", response, password)
            return
        raise ConnectionWriteError(f"Connection {conn_id!r} kept changing under {self.description}; try again.")


def airflow_major_version() -> int:
    from airflow_ecr._compat import airflow_version

    return airflow_version()[0]


def default_writer(api_conn_id: str | None = DEFAULT_API_CONN_ID) -> ConnectionWriter:
    """
    The writer a task uses: the REST API on Airflow 3 (tasks have no database), the ORM on 2.

    :param api_conn_id: the connection of the REST API (Airflow 3).
    """
    if airflow_major_version() >= 3:
        if not api_conn_id:
            raise EcrConfigurationError(
                "On Airflow 3 tasks cannot write to the metadata database: set api_conn_id to an "
                "Airflow connection holding the api-server URL and credentials."
            )
        return RestApiConnectionWriter(api_conn_id)
    return OrmConnectionWriter()


def connection_ids(conn_id_name: str, registry_ids: Sequence[str], region: str) -> list[str]:
    """
    The connection id of each registry id (the module doc's naming rule).

    :param conn_id_name: the connection id, or a template with ``{registry_id}`` / ``{region}``.
    :param registry_ids: the registry ids, in order.
    :param region: the registries' region.
    """
    if not isinstance(conn_id_name, str) or not conn_id_name.strip():
        raise EcrConfigurationError(f"conn_id_name must be a non-empty connection id, got {conn_id_name!r}.")
    if "{" in conn_id_name:
        try:
            names = [conn_id_name.format(registry_id=i, region=region) for i in registry_ids]
        except (KeyError, IndexError, ValueError):
            raise EcrConfigurationError(
                f"conn_id_name {conn_id_name!r} may use only the placeholders {{registry_id}} and {{region}}."
            ) from None
    elif len(registry_ids) == 1:
        names = [conn_id_name]
    else:
        names = [f"{conn_id_name}_{i}" for i in registry_ids]
    if len(set(names)) != len(names):
        raise EcrConfigurationError(
            f"conn_id_name {conn_id_name!r} gives the same connection id to several registries: "
            "use {registry_id} in it."
        )
    return names


def _is_account_id(value: object) -> bool:
    try:
        validate_account_id(value)
    except ValueError:
        return False
    return True


def normalize_registry_ids(register_ids: Any, registry_ids: Any) -> list[str]:
    """
    The registry ids from ``register_ids`` (the community spelling) or ``registry_ids``.

    :raises EcrConfigurationError: if both differ, none is given, or an id is not 12 digits.
    """
    if register_ids is not None and registry_ids is not None and list(register_ids) != list(registry_ids):
        raise EcrConfigurationError("Give register_ids or registry_ids (the same thing), not both.")
    ids = register_ids if register_ids is not None else registry_ids
    if isinstance(ids, str):
        ids = [i.strip() for i in ids.split(",")]  # "111111111111,222222222222", as from a template
    if not ids or not isinstance(ids, (list, tuple)):
        raise EcrConfigurationError(
            f"register_ids must be a non-empty list of 12-digit registry (account) ids, got {ids!r}."
        )
    bad = [i for i in ids if not _is_account_id(i)]
    if bad:
        raise EcrConfigurationError(
            f"register_ids has malformed registry ids {bad!r}: each must be a 12-digit AWS account id "
            "string, e.g. '123456789012' (quoted, leading zeros kept)."
        )
    return list(dict.fromkeys(ids))


# Half of ECR's 12 hours: a stored token lasts until the next run of a refresh every 6 hours (the
# factory's default schedule) even when a cached token is reused.
STORED_TOKEN_MIN_LIFE = 6 * 3600.0


def refresh_docker_connections(
    targets: Sequence[tuple[str, EcrRegistry]],
    *,
    source: TokenSource,
    writer: ConnectionWriter,
    cache: TokenCache | None = None,
) -> list[DockerLogin]:
    """
    Fetch tokens for the registries, then upsert one docker connection per registry.

    Every token is fetched before anything is written: an AWS error leaves every connection as it
    was.

    :param targets: (connection id, registry) pairs.
    :param source: the AWS identity tokens are fetched with.
    :param writer: where connections are written.
    :param cache: the token cache (default: configured from ``[ecr]``).
    """
    cache = cache or TokenCache()
    # A stored token must outlive the next refresh, not just the next pull: no half-used tokens.
    tokens = cache.get(source, [registry for _, registry in targets], min_life=STORED_TOKEN_MIN_LIFE)
    logins = [DockerLogin(conn_id, registry, tokens[registry.host]) for conn_id, registry in targets]
    for login in logins:
        writer.upsert(
            login.conn_id, host=login.registry.host, login=login.token.username, password=login.token.password
        )
        log.info(
            "Wrote docker connection %r for registry %s to %s (token valid until %s).",
            login.conn_id,
            login.registry.host,
            writer.description,
            login.summary()["expires_at"],
        )
    return logins


class EcrCredentialRegisterOperator(BaseOperator):
    """
    Writes a fresh ECR token into docker connection(s), for ``DockerOperator(docker_conn_id=...)``.

    Takes the arguments of the widely copied community operator, so existing DAGs only change the
    import. The connection is upserted (never deleted), on Airflow 2 through the ORM and on Airflow
    3 through the REST API (see the module doc for ``api_conn_id``). Returns, as XCom, only
    non-secret facts: connection ids, hosts and expiry times.

    :param conn_id_name: the docker connection to (re)write; with several registry ids, see the
        naming rule in the module doc.
    :param region_name: the registries' region (default: the AWS connection's region).
    :param register_ids: the registry (account) ids, a list of 12-digit strings (community spelling).
    :param registry_ids: the same, correctly spelled; give one of the two.
    :param aws_conn_id: the Airflow AWS connection tokens are fetched with (None: boto3's chain).
    :param api_conn_id: Airflow 3: the connection holding the REST API's URL and credentials.
    """

    template_fields: Sequence[str] = ("conn_id_name", "region_name", "register_ids", "registry_ids", "aws_conn_id")
    ui_color = "#f5a847"

    def __init__(
        self,
        *,
        conn_id_name: str,
        region_name: str | None = None,
        register_ids: Sequence[str] | None = None,
        registry_ids: Sequence[str] | None = None,
        aws_conn_id: str | None = "aws_default",
        api_conn_id: str | None = DEFAULT_API_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id_name = conn_id_name
        self.region_name = region_name
        self.register_ids = register_ids
        self.registry_ids = registry_ids
        self.aws_conn_id = aws_conn_id
        self.api_conn_id = api_conn_id

    def _region(self) -> str:
        if self.region_name:
            return self.region_name
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
        from botocore.exceptions import NoRegionError

        try:
            region = AwsBaseHook(aws_conn_id=self.aws_conn_id, client_type="ecr").conn_region_name
        except NoRegionError:
            region = None
        if not region:
            raise EcrConfigurationError(
                f"No region: set region_name, or region_name in the extra of aws_conn_id={self.aws_conn_id!r}."
            )
        return str(region)

    def targets(self) -> list[tuple[str, EcrRegistry]]:
        """(connection id, registry) pairs, validated; raises EcrConfigurationError."""
        ids = normalize_registry_ids(self.register_ids, self.registry_ids)
        region = self._region()
        try:
            registries = [resolve_host(registry_host(i, region)) for i in ids]
        except ValueError as err:
            raise EcrConfigurationError(str(err)) from None
        return list(zip(connection_ids(self.conn_id_name, ids, region), registries, strict=True))

    def execute(self, context: Context) -> list[dict[str, str]]:
        logins = refresh_docker_connections(
            self.targets(),
            source=AwsConnectionTokenSource(self.aws_conn_id),
            writer=default_writer(self.api_conn_id),
        )
        return [login.summary() for login in logins]
