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

  - ``host``: the api-server URL (``http://airflow-api:8080``; or a bare host name with ``schema``
    ``http``/``https`` and ``port``),
  - ``login`` / ``password``: a user allowed to edit connections; a JWT is obtained from
    ``POST /auth/token`` with them (the flow of the simple auth manager and of the FAB auth manager),
  - or, instead of login and password, ``extra: {"token": "<JWT>"}``: a pre-issued API token,
  - ``extra: {"verify": false | "/path/ca.pem"}``: TLS verification of the API (default on).

  For example ``AIRFLOW_CONN_AIRFLOW_API='{"conn_type": "http", "host": "http://127.0.0.1:8080",
  "login": "admin", "password": "..."}'``.

:func:`default_writer` picks the one a task process can use on the installed Airflow.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any, Protocol

from airflow_ecr import _compat
from airflow_ecr.exceptions import ConnectionWriteError, EcrConfigurationError

DEFAULT_API_CONN_ID = "airflow_api"
DOCKER_CONN_TYPE = "docker"
# The API may be slow under load, but a cron job or a task must not hang on a dead server.
DEFAULT_API_TIMEOUT = 30.0


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
