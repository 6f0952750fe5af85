"""
Writers of Airflow ``docker`` connections: an upsert that never deletes, never logs the password.

Where a write goes:

- :class:`OrmConnectionWriter`: the metadata database, through the ORM, in one transaction (the
  row is updated in place, so a concurrent reader sees either the old complete connection or the
  new one). Airflow 2 tasks, and any process with database access (the CLI, on either version).
- :class:`RestApiConnectionWriter`: the REST API of the Airflow 3 api-server (task processes have
  no database access): ``PATCH /api/v2/connections/{id}``, or ``POST /api/v2/connections`` when it
  does not exist yet. The API is found and authenticated through an Airflow connection
  (``api_conn_id``, default ``airflow_api``), typically of type ``http``:

  - ``host``: the api-server URL, ``https://airflow-api:8443`` (``http://`` only for a loopback
    address such as ``http://127.0.0.1:8080``); or a bare host name with ``schema`` ``https`` (or
    ``http``) and ``port``. A bare host without ``schema`` is refused rather than taken as ``http``,
    and a redirect is an error, never followed: the API password and the ECR token go only to the
    URL the connection names, and only over TLS off loopback,
  - ``login`` / ``password``: a user allowed to edit connections; a JWT is obtained from
    ``POST /auth/token`` with them (the flow of the simple auth manager and of the FAB auth manager),
  - or, instead of login and password, ``extra: {"token": "<JWT>"}``: a pre-issued API token,
  - ``extra: {"verify": false | "/path/ca.pem"}``: TLS verification of the API (default on),
  - ``extra: {"insecure_http": true}``: the deployment accepts plain ``http`` to a non-loopback
    api-server (e.g. inside a private cluster network); the secrets then cross the network unencrypted.

  For example ``AIRFLOW_CONN_AIRFLOW_API='{"conn_type": "http", "host": "http://127.0.0.1:8080",
  "login": "admin", "password": "..."}'``.

:func:`default_writer` picks the one a task process can use on the installed Airflow.
"""

from __future__ import annotations

import ipaddress
import json
import urllib.parse
from typing import Any, Protocol

from airflow_ecr import _compat
from airflow_ecr.exceptions import AirflowFernetError, ConnectionWriteError, EcrConfigurationError

DEFAULT_API_CONN_ID = "airflow_api"
DOCKER_CONN_TYPE = "docker"
# The types a docker login is written into without asking: the docker provider's and our hook's.
# Any other type (aws, http, ...) is someone else's connection: a typo in conn_id_name must not
# replace aws_default or airflow_api with a registry login.
LOGIN_CONN_TYPES = (DOCKER_CONN_TYPE, "ecr_docker")
# The API may be slow under load, but a cron job or a task must not hang on a dead server.
DEFAULT_API_TIMEOUT = 30.0


class ConnectionWriter(Protocol):
    """Creates or replaces a docker connection, without ever deleting it first."""

    @property
    def description(self) -> str:
        """How messages name the destination, e.g. ``the metadata database``."""
        ...

    def upsert(
        self, conn_id: str, *, host: str, login: str, password: str, overwrite_other_types: bool = False
    ) -> None:
        """
        Create ``conn_id`` as a docker connection, or replace the host, login and password of it.

        A connection of another type than ``docker`` / ``ecr_docker`` is left alone
        (:func:`check_overwrite`) unless ``overwrite_other_types``; it then becomes a docker one.

        :raises ConnectionWriteError: naming the destination, never the password.
        """
        ...


def _first_line(err: BaseException) -> str:
    """A database error's own message (SQLAlchemy's text lists the statement's parameters)."""
    original = getattr(err, "orig", None) or err
    return (str(original).strip().splitlines() or [type(original).__name__])[0]


def check_overwrite(conn_id: str, conn_type: str | None, *, overwrite_other_types: bool, where: str) -> str:
    """
    The type a docker login is written with into an existing connection of type ``conn_type``.

    :param conn_id: the connection.
    :param conn_type: its current type.
    :param overwrite_other_types: whether a connection of another type may be replaced.
    :param where: how the message names the destination.
    :raises ConnectionWriteError: if ``conn_type`` is not a docker type and overwriting was not asked for.
    """
    if conn_type in LOGIN_CONN_TYPES:
        return conn_type  # an ecr_docker connection stays one: its extras keep their meaning
    if not overwrite_other_types:
        raise ConnectionWriteError(
            f"Connection {conn_id!r} in {where} is of type {conn_type!r}, not docker, so it was left "
            "unchanged: check the connection id (conn_id_name), or pass overwrite_other_types=True "
            "(--overwrite-other-types on the command line) to replace it with a docker login."
        )
    return DOCKER_CONN_TYPE


def _is_loopback(hostname: str) -> bool:
    """Whether ``hostname`` names this machine, where plain http crosses no network."""
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def api_base_url(host: str, *, schema: str | None, port: int | None, conn_id: str, insecure_http: bool) -> str:
    """
    The api-server URL from an Airflow connection's fields: https, or http to loopback only.

    :param host: the connection's host: a URL, or a bare host name.
    :param schema: the connection's schema, the scheme of a bare host (``https`` or ``http``).
    :param port: the connection's port, for a bare host.
    :param conn_id: the connection, for messages.
    :param insecure_http: the deployment accepts plain http to a non-loopback host.
    :raises ConnectionWriteError: for a bare host without scheme, or plain http off loopback.
    """
    url = host.strip().rstrip("/")
    if not url:
        raise ConnectionWriteError(
            f"Airflow connection {conn_id!r} has no host: set it to the api-server URL, e.g. "
            "'https://airflow-api:8443'."
        )
    if "://" not in url:
        if schema not in ("http", "https"):
            # Never a silent http: the API password and the ECR token would cross the network in clear.
            raise ConnectionWriteError(
                f"Airflow connection {conn_id!r} has the host {url!r} without a scheme: write it as a "
                f"URL, 'https://{url}' (or 'http://' for a loopback address), or set its schema to 'https'."
            )
        url = f"{schema}://{url}" + (f":{port}" if port else "")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and (insecure_http or _is_loopback(parts.hostname or ""))):
        return url
    raise ConnectionWriteError(
        f"Airflow connection {conn_id!r} points at {url}, but the API password and the ECR token are sent "
        "only over https (plain http only to a loopback address): use the api-server's https URL, or set "
        "extra 'insecure_http': true to accept plain http on this network."
    )


class OrmConnectionWriter:
    """
    Writes through Airflow's ORM in one transaction (Airflow 2; and Airflow 3 outside tasks).

    The row is locked (``SELECT ... FOR UPDATE``) and updated in place: readers keep seeing the
    previous complete row until the commit, then the new one; the row never disappears.
    """

    description = "the Airflow metadata database"

    def upsert(
        self, conn_id: str, *, host: str, login: str, password: str, overwrite_other_types: bool = False
    ) -> None:
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
                    # Raised inside the transaction: the row is rolled back untouched.
                    conn.conn_type = check_overwrite(
                        conn_id, conn.conn_type, overwrite_other_types=overwrite_other_types, where=self.description
                    )
                    conn.host = host
                    conn.login = login
                    conn.password = password  # Airflow encrypts it with its Fernet key, if one is set
                return
            except AttributeError as err:
                if _compat.is_fernet_breakage(err):
                    raise AirflowFernetError(
                        AirflowFernetError.sentence(f"Cannot write connection {conn_id!r} to {self.description}")
                    ) from None
                raise
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
                "connection with host 'https://<api-server>', login and password."
            ) from None
        extra = conn.extra_dejson or {}
        host = api_base_url(
            conn.host or "",
            schema=conn.schema,
            port=conn.port,
            conn_id=self.api_conn_id,
            insecure_http=extra.get("insecure_http") is True,
        )
        self._base_url = host
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
            # requests re-sends the body (the API password, the ECR token) and the headers on a 307/308,
            # to wherever Location says: the secrets go only to the URL the connection names.
            response = self._session.request(
                method,
                url,
                data=None if body is None else json.dumps(body),
                headers=headers,
                timeout=self.timeout,
                verify=self._verify,
                allow_redirects=False,
            )
        except requests.RequestException as err:
            reason = type(err).__name__
            raise ConnectionWriteError(
                f"Cannot reach the Airflow REST API at {self._base_url} (from connection "
                f"{self.api_conn_id!r}): {reason}. Check that the api-server runs and that the "
                "connection's host is its URL."
            ) from None
        if response.is_redirect or 300 <= response.status_code < 400:
            location = str(response.headers.get("Location", "?"))[:200]
            raise ConnectionWriteError(
                f"The Airflow REST API at {url.split('?')[0]} answered HTTP {response.status_code} with a "
                f"redirect to {location}, which is not followed with credentials: set the host of connection "
                f"{self.api_conn_id!r} to the api-server's final URL."
            )
        return response

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

    def _current_type(self, conn_id: str, quoted: str) -> tuple[bool, str | None]:
        """(whether ``conn_id`` exists, its type), from ``GET /api/v2/connections/{id}``."""
        for attempt in (1, 2):
            response = self._request("GET", f"/api/v2/connections/{quoted}", None)
            if response.status_code == 401 and attempt == 1 and self._credentials is not None:
                self._jwt = None  # an expired JWT: log in again once
                continue
            break
        if response.status_code == 404:
            return False, None
        if response.status_code != 200:
            raise self._refused(conn_id, "read", response, "")
        try:
            return True, response.json().get("conn_type")
        except (ValueError, AttributeError):
            raise ConnectionWriteError(
                f"{self._base_url}/api/v2/connections/{quoted} (connection {self.api_conn_id!r}) did not "
                "return a connection: is the connection's host the Airflow 3 api-server?"
            ) from None

    def upsert(
        self, conn_id: str, *, host: str, login: str, password: str, overwrite_other_types: bool = False
    ) -> None:
        self._configure()
        quoted = urllib.parse.quote(conn_id, safe="")
        for _ in (1, 2, 3):
            exists, conn_type = self._current_type(conn_id, quoted)
            if not exists:
                body = {"connection_id": conn_id, "conn_type": DOCKER_CONN_TYPE, "host": host, "login": login}
                response = self._request("POST", "/api/v2/connections", {**body, "password": password})
                if response.status_code == 409:
                    continue  # created meanwhile by another writer: check and patch that one
                if response.status_code not in (200, 201):
                    raise self._refused(conn_id, "create", response, password)
                return
            # A connection changing type between this read and the PATCH below takes a concurrent
            # writer with API rights to edit connections: the check guards against mistakes, not them.
            fields = {
                "conn_type": check_overwrite(
                    conn_id, conn_type, overwrite_other_types=overwrite_other_types, where=self.description
                ),
                "host": host,
                "login": login,
                "password": password,
            }
            # update_mask: only these fields change; the connection's extra (e.g. reauth) is kept.
            mask = "&".join(f"update_mask={name}" for name in fields)
            response = self._request(
                "PATCH", f"/api/v2/connections/{quoted}?{mask}", {"connection_id": conn_id, **fields}
            )
            if response.status_code == 404:
                continue  # deleted meanwhile: create it
            if response.status_code != 200:
                raise self._refused(conn_id, "update", response, password)
            return
        raise ConnectionWriteError(f"Connection {conn_id!r} kept changing under {self.description}; try again.")


def default_writer(api_conn_id: str | None = DEFAULT_API_CONN_ID) -> ConnectionWriter:
    """
    The writer a task uses: the REST API on Airflow 3 (tasks have no database), the ORM on 2.

    :param api_conn_id: the connection of the REST API (Airflow 3).
    """
    if _compat.is_airflow_3():
        if not api_conn_id:
            raise EcrConfigurationError(
                "On Airflow 3 tasks cannot write to the metadata database: set api_conn_id to an "
                "Airflow connection holding the api-server URL and credentials."
            )
        return RestApiConnectionWriter(api_conn_id)
    return OrmConnectionWriter()
