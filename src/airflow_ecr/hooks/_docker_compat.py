"""
Every private of docker-py and of the Docker provider that airflow-ecr relies on, in one place.

Each says why no public API does the job. Nothing else in the package touches an underscored
docker-py attribute or imports a private name of ``airflow.providers.docker``.

Nothing is imported from the provider's decorator module until ``DockerDecoratedOperator`` is
asked for: the hook (and doctor) stay as cheap to import as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from docker import auth

if TYPE_CHECKING:
    from airflow.providers.docker.decorators.docker import _DockerDecoratedOperator as DockerDecoratedOperator
    from airflow.providers.docker.hooks.docker import DockerHook
    from docker import APIClient

__all__ = [
    "DockerDecoratedOperator",
    "ExplicitFirstAuthConfig",
    "KeepsLastServiceTask",
    "daemon_login",
    "explicit_first",
    "log_in_with_docker_connection",
    "set_service_auth",
]


def __getattr__(name: str) -> Any:
    if name == "DockerDecoratedOperator":
        # The provider's @task.docker operator has no public name; @task.ecr_docker must subclass it.
        from airflow.providers.docker.decorators.docker import _DockerDecoratedOperator

        return _DockerDecoratedOperator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class KeepsLastServiceTask:
    """
    Keeps the service task that ``DockerSwarmOperator``'s status check read, in ``last_service_task``.

    ``DockerSwarmOperator._service_status`` (a private of the docker provider, the same in 4.3.1-4.6.1)
    is the only place that reads the service's task, and the provider's "Service did not complete"
    never says why a task failed. The task is kept so that a task its node never started (it could
    not pull) can be reported with the node's own words, even after ``auto_remove="force"`` removed
    the service. The answer is the provider's: the first task's state.
    """

    service: Any
    cli: Any
    last_service_task: dict[str, Any] | None = None

    def _service_status(self) -> str | None:
        if not self.service:
            raise RuntimeError("The 'service' should be initialized before!")
        self.last_service_task = task = self.cli.tasks(filters={"service": self.service["ID"]})[0]
        return str(task["Status"]["State"])


def daemon_login(client: APIClient, auth_config: dict[str, Any]) -> dict[str, Any]:
    """
    ``POST /auth`` with exactly ``auth_config``: the daemon's answer; nothing is stored in ``client``.

    Not ``APIClient.login``: that first reads ``~/.docker/config.json`` and credential helpers, may
    answer from them without asking the daemon, and keeps the credentials in the client for later
    requests.

    :param client: a connected client.
    :param auth_config: ``username``, ``password``, ``serveraddress`` (as ``EcrToken.docker_auth``).
    :raises docker.errors.APIError: the daemon or the registry refused.
    """
    # APIClient has no public call for a bare Engine API request: _url, _post_json and _result are
    # what its own login() uses (unchanged since docker-py 2).
    response = client._post_json(client._url("/auth"), data=auth_config)
    result: dict[str, Any] = client._result(response, json=True)
    return result


class ExplicitFirstAuthConfig(auth.AuthConfig):
    """
    docker-py's auth config, in which a login given in code wins over the Docker config's stores.

    docker-py's :meth:`~docker.auth.AuthConfig.resolve_authconfig` asks ``credHelpers[host]``,
    then ``credsStore``, and reads the ``auths`` entries (where ``login()`` and we put ours) only
    when the store has nothing for the host. So a worker whose ``~/.docker/config.json`` names a
    store (``desktop``, ``pass``, ``ecr-login``...) would send that store's credentials, not ours.
    Here every entry added with :meth:`add_auth` (``APIClient.login``, :func:`set_service_auth`)
    is answered first, for pulls, services and builds; other registries resolve as before.

    :param loaded: the config docker-py loaded from the Docker config file (kept as it is).
    :param credstore_env: the client's ``credstore_env`` (environment of the helper processes).
    """

    def __init__(self, loaded: Any, credstore_env: dict[str, str] | None = None) -> None:
        super().__init__({**loaded, "auths": dict(loaded.get("auths") or {})}, credstore_env)
        self.explicit: dict[str, dict[str, Any]] = {}

    @staticmethod
    def _host(registry: str | None) -> str:
        # The same normalisation resolve_authconfig applies to the registry it is asked for.
        return str(auth.resolve_index_name(registry)) if registry else str(auth.INDEX_NAME)

    @property
    def is_empty(self) -> bool:
        # Already loaded: docker-py reloads an "empty" config from disk, which would drop our logins.
        return False

    def add_auth(self, reg: str, data: dict[str, Any]) -> None:
        super().add_auth(reg, data)
        self.explicit[self._host(reg)] = data

    def get_credential_store(self, registry: str | None) -> Any:
        return None if self._host(registry) in self.explicit else super().get_credential_store(registry)

    def resolve_authconfig(self, registry: str | None = None) -> Any:
        found = self.explicit.get(self._host(registry))
        return found if found is not None else super().resolve_authconfig(registry)

    def get_all_credentials(self) -> dict[str, Any]:
        credentials: dict[str, Any] = super().get_all_credentials()
        return {**credentials, **self.explicit}  # build's X-Registry-Config: ours win there too


def explicit_first(client: APIClient) -> ExplicitFirstAuthConfig:
    """
    The client's auth config, made an :class:`ExplicitFirstAuthConfig` (once) if it is not one.

    Every docker-py call that builds an ``X-Registry-Auth`` header from the client (``pull``
    without ``auth_config``, ``create_service``, ``update_service``, ``login``, ``build``) reads it.
    """
    # docker-py keeps the config in the private APIClient._auth_configs, with no public setter;
    # its type (docker.auth.AuthConfig) and resolve_authconfig/add_auth are public.
    configs = client._auth_configs
    if isinstance(configs, ExplicitFirstAuthConfig):
        return configs
    if not configs or configs.is_empty:
        client.reload_config()  # public: docker-py's own "not loaded yet" rule (login, pull)
        configs = client._auth_configs
    pinned = ExplicitFirstAuthConfig(configs, client.credstore_env)
    client._auth_configs = pinned
    return pinned


def set_service_auth(client: APIClient, host: str, auth_config: dict[str, Any]) -> None:
    """
    Make ``client.create_service`` send ``auth_config`` as the service's registry login for ``host``.

    ``create_service`` takes no credentials argument: docker-py builds the service's
    ``X-Registry-Auth`` from the client's in-memory auth config, so the entry goes there, ahead of
    the Docker config's ``credsStore`` and ``credHelpers`` (which would otherwise win over it).
    """
    explicit_first(client).add_auth(host, auth_config)


def log_in_with_docker_connection(hook: DockerHook, client: APIClient, connection: Any) -> None:
    """
    Log ``client`` in to the registry of a ``docker`` connection, exactly as ``DockerHook`` does.

    Unlike with ``DockerHook``, the pulls and services that follow use that login for the
    connection's registry even if the Docker config names a ``credsStore`` or ``credHelpers``.

    :raises docker.errors.APIError: the registry refused the login.
    """
    # The login it stores must win over the Docker config's credsStore/credHelpers for the pulls
    # that follow (docker-py asks those first): the connection is what the DAG author chose.
    explicit_first(client)
    # DockerHook's login (host:port, email, the reauth extra as the UI stores it) is name-mangled
    # private; reusing it keeps a docker connection behaving as with the provider's own hook.
    hook._DockerHook__login(client, connection)  # type: ignore[attr-defined]
