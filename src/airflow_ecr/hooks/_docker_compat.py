"""
Every private of docker-py and of the Docker provider that airflow-ecr relies on, in one place.

Each says why no public API does the job. Nothing else in the package touches an underscored
docker-py attribute or imports a private name of ``airflow.providers.docker``.

Nothing is imported from the provider's decorator module until ``DockerDecoratedOperator`` is
asked for: the hook (and doctor) stay as cheap to import as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.providers.docker.decorators.docker import _DockerDecoratedOperator as DockerDecoratedOperator
    from airflow.providers.docker.hooks.docker import DockerHook
    from docker import APIClient

__all__ = ["DockerDecoratedOperator", "daemon_login", "log_in_with_docker_connection", "set_service_auth"]


def __getattr__(name: str) -> Any:
    if name == "DockerDecoratedOperator":
        # The provider's @task.docker operator has no public name; @task.ecr_docker must subclass it.
        from airflow.providers.docker.decorators.docker import _DockerDecoratedOperator

        return _DockerDecoratedOperator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


def set_service_auth(client: APIClient, host: str, auth_config: dict[str, Any]) -> None:
    """
    Make ``client.create_service`` send ``auth_config`` as the service's registry login for ``host``.

    ``create_service`` takes no credentials argument: docker-py builds the service's
    ``X-Registry-Auth`` from the client's in-memory auth config, so the entry goes there, in place
    of any credential helper for ``host`` (which would otherwise win over it).
    """
    # The client keeps that config in the private _auth_configs (a public docker.auth.AuthConfig).
    if not client._auth_configs or client._auth_configs.is_empty:
        client.reload_config()  # public: loads ~/.docker/config.json, as create_service would
    client._auth_configs.cred_helpers.pop(host, None)
    client._auth_configs.add_auth(host, auth_config)


def log_in_with_docker_connection(hook: DockerHook, client: APIClient, connection: Any) -> None:
    """
    Log ``client`` in to the registry of a ``docker`` connection, exactly as ``DockerHook`` does.

    :raises docker.errors.APIError: the registry refused the login.
    """
    # DockerHook's login (host:port, email, the reauth extra as the UI stores it) is name-mangled
    # private; reusing it keeps a docker connection behaving as with the provider's own hook.
    hook._DockerHook__login(client, connection)  # type: ignore[attr-defined]
