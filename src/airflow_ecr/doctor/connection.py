"""
The UI's **Test** button for an ``ecr_docker`` connection: doctor's checks, answered in one line.

The ``ecr_docker`` connection type's hook class is :class:`EcrDockerConnectionHook`: the
:class:`~airflow_ecr.hooks.docker.EcrDockerHook` (its form, its settings) plus ``test_connection``,
which Airflow calls (when ``[core] test_connection`` is ``Enabled``) in the API server or webserver
process, with the connection the form holds. It lives here, above the hook, so that the hook never
imports doctor; it delegates to :func:`check_connection`. It runs doctor's ECR-permission check (a fresh
``GetAuthorizationToken`` with the connection's ``aws_conn_id``), then, when this host has a
Docker daemon, the registry login through it. STS is not asked: tasks never need it.

The form may be unsaved, so what it holds is the UI user's input, not the deployment's
configuration, and the check runs with the API server's rights. So it mints a token only with an
``aws_conn_id`` the form names and that exists (never with the API server's own default
credentials), and the daemon logs in only to the registry's real ECR host: an alias host the
form declares is named in the answer but sent no token.

The answer is ``(ok, one line)``: what failed and how to fix it, or what was proven. The token
never appears in it: the checks keep it in memory and scrub the daemon's messages.
"""

from __future__ import annotations

from typing import Any

from airflow_ecr.doctor.aws import check_ecr_permission
from airflow_ecr.doctor.docker import check_docker_daemon, check_registry
from airflow_ecr.doctor.results import CheckResult, DoctorState
from airflow_ecr.hooks.docker import EcrDockerHook


class EcrDockerConnectionHook(EcrDockerHook):
    """
    The hook Airflow builds for an ``ecr_docker`` connection (``provider_info``'s connection type):
    :class:`~airflow_ecr.hooks.docker.EcrDockerHook` with the form's **Test** button.
    """

    # Airflow 2 builds a connection type's form from its hook class's own attributes only
    # (``"get_connection_form_widgets" in hook_class.__dict__``): inherited, the form has no ECR fields.
    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The extra fields of an ``ecr_docker`` connection (Airflow 2 UI): the hook's."""
        return EcrDockerHook.get_connection_form_widgets()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """What an ``ecr_docker`` connection's form hides and relabels: the hook's."""
        return EcrDockerHook.get_ui_field_behaviour()

    def test_connection(self) -> tuple[bool, str]:
        """The UI's Test button: doctor's token and registry-login checks, in one line (never the token)."""
        return check_connection(self)


def _line(*parts: str | None) -> str:
    """One line, whatever the parts hold (error texts may wrap)."""
    return " ".join(" ".join(p for p in parts if p).split())


def _failed(result: CheckResult) -> str:
    return _line(f"{result.title} failed: {result.summary.rstrip('.')}.", f"Fix: {result.fix}." if result.fix else "")


def _registry_of(hook: Any) -> tuple[Any, Any]:
    """
    (the registry, the hook that authenticates it) for the hook's ``ecr_docker`` connection.

    A hook built by Airflow for the Test button has only ``docker_conn_id``: the connection's host
    (an ECR host or a declared alias), else its ``registry_id`` and ``region_name``, names the registry.
    """
    from airflow_ecr.exceptions import EcrConfigurationError
    from airflow_ecr.registry import registry_host

    try:
        return hook.registries[0], hook
    except EcrConfigurationError:
        if not hook.docker_conn_id:
            raise
    connection = hook.get_connection(hook.docker_conn_id)
    extra = connection.extra_dejson or {}
    host = connection.host
    if not host and extra.get("registry_id") and extra.get("region_name"):
        host = registry_host(str(extra["registry_id"]), str(extra["region_name"]))
    if not host:
        raise EcrConfigurationError(
            "The connection names no registry: give it the registry's registry_id and region_name "
            "(and a host only for an alias of that registry)."
        )
    # The connection's own rules (its aws_conn_id, alias declaration, extra fields) apply as for a task.
    # The hook's own class (an EcrDockerConnectionHook for the Test button).
    probe = type(hook)(registry=host, docker_conn_id=connection.conn_id)
    return probe.registries[0], probe


def _existing_aws_conn_id(hook: Any, probe: Any) -> str:
    """
    The AWS connection the form names, checked to exist, for the token the Test button mints.

    An empty ``aws_conn_id`` would mint with boto3's default chain, i.e. the API server's own
    identity, and the hook's default (``aws_default``) would fall back to that chain when it does
    not exist: neither is something the form's author chose.

    :param hook: the hook Airflow built for the form (``docker_conn_id`` only).
    :param probe: the hook that authenticates the form's registry (:func:`_registry_of`).
    :raises EcrConfigurationError: no explicit ``aws_conn_id``, or one that does not exist.
    """
    from airflow_ecr._compat import AirflowNotFoundException
    from airflow_ecr.exceptions import EcrConfigurationError

    aws_conn_id = probe.aws_conn_id
    named = hook.get_connection(hook.docker_conn_id).extra_dejson.get("aws_conn_id") if hook.docker_conn_id else None
    fix = "set the connection's aws_conn_id to an existing AWS connection"
    if not aws_conn_id or (aws_conn_id == type(hook).default_aws_conn_id and not named):
        raise EcrConfigurationError(
            f"The connection names no aws_conn_id, and the Test button mints no token with the API server's "
            f"own AWS identity: {fix}."
        )
    try:
        hook.get_connection(aws_conn_id)
    except (AirflowNotFoundException, ImportError):  # Airflow 3.1.0 outside a task: ImportError past the last backend
        raise EcrConfigurationError(f"The connection's aws_conn_id={aws_conn_id!r} does not exist: {fix}.") from None
    return str(aws_conn_id)


def _real_ecr_registry(registry: Any) -> Any:
    """``registry`` as its ECR host names it: an alias (whatever the form declares) gets no token."""
    from airflow_ecr.registry import parse_registry_host, registry_host

    try:
        parse_registry_host(registry.host)
        return registry
    except ValueError:
        return parse_registry_host(registry_host(registry.account_id, registry.region))


def check_connection(hook: Any) -> tuple[bool, str]:
    """
    Check an ``ecr_docker`` connection as doctor would: a token from ECR, then the registry login.

    :param hook: the :class:`~airflow_ecr.hooks.docker.EcrDockerHook` of the connection.
    :return: (whether the connection works, one line saying what was proven or what to fix).
    """
    from airflow_ecr.exceptions import EcrError

    try:
        declared, probe = _registry_of(hook)
        aws_conn_id = _existing_aws_conn_id(hook, probe)
    except EcrError as err:
        return False, _line(str(err))
    registry = _real_ecr_registry(declared)
    alias_note = (
        f"{declared.host} is an alias: the Test button sends it no token (a task's pull does)"
        if registry is not declared
        else None
    )
    base_url = hook.base_url if isinstance(hook.base_url, str) else hook.base_url[0]
    # Airflow tests a transient copy under a random conn id: the form's fields are what to name.
    named_in = "the connection's registry_id and region_name (or its host)"
    state = DoctorState(aws_conn_id=aws_conn_id, docker_url=base_url, registry=registry, named_in=named_in)
    permission = check_ecr_permission(state)
    if permission.status == "fail":
        return False, _failed(permission)
    granted = f"ECR granted a token for {registry.host} to aws_conn_id={aws_conn_id!r}"
    daemon = check_docker_daemon(state)
    if daemon.status == "fail":
        # The Test button runs in the API server, which may have no Docker daemon: the token is what
        # this host can prove; the login is the workers' to prove (airflow-ecr doctor there).
        return True, _line(
            f"{granted}; the registry login was not checked: {daemon.summary} "
            "(run airflow-ecr doctor on a worker for the rest)" + (f"; {alias_note}." if alias_note else ".")
        )
    login = check_registry(state)
    if login.status == "fail":
        return False, _failed(login)
    return True, _line(
        f"{granted}, and the Docker daemon at {base_url} logged in to it" + (f"; {alias_note}." if alias_note else ".")
    )
