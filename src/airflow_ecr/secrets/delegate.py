"""
:class:`DelegatingSecretsBackend`: a secrets backend that answers the connection ids it owns and
hands every other lookup to a wrapped backend, the delegate.

Airflow has one custom secrets backend slot. A backend built on this class shares it: a team
whose slot is already taken, e.g. by AWS Secrets Manager, sets ``"delegate": {"backend": "<class
path>", "backend_kwargs": {...}}`` (or just the class path). The delegate then answers every id
the backend does not own, and every variable and config lookup, including the async ``aget_*``
methods that Airflow 3 calls when they exist. Airflow 3.2+'s ``team_name`` is passed on only to
delegates whose methods take it, and the Connection class Airflow sets on the backend is set on the
delegate too.

A subclass says which ids it owns (:meth:`~DelegatingSecretsBackend.owns`) and what their
connection holds (:meth:`~DelegatingSecretsBackend.connection_fields`); this class does the rest
of the ``BaseSecretsBackend`` interface, on Airflow 2.11 and 3.x.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from airflow_ecr import _compat
from airflow_ecr._compat import BaseSecretsBackend


def _accepts_team_name(method: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return True
    return "team_name" in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def call_delegate(method: Callable[..., Any], team_name: str | None, **kwargs: Any) -> Any:
    """Call a delegate's lookup, passing ``team_name`` only if given and accepted (as Airflow 3.2+ does)."""
    if team_name is not None and _accepts_team_name(method):
        return method(team_name=team_name, **kwargs)
    return method(**kwargs)


def json_setting(backend_name: str, name: str, value: Any) -> Any:
    """
    A setting that may arrive as JSON text (Airflow 3's ``..._KWARG__<NAME>`` variables are raw strings).

    :param backend_name: how messages name the backend, e.g. ``the airflow-ecr secrets backend``.
    :param name: the setting's name.
    :param value: its value, as given.
    :raises ValueError: for text that looks like JSON and is not (the text is not echoed).
    """
    if isinstance(value, str) and value.strip().startswith(("{", "[")):
        try:
            return json.loads(value)
        except ValueError:
            raise ValueError(f"{_capitalized(backend_name)}'s {name!r} setting is not valid JSON.") from None
    return value


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


def load_delegate(spec: Any, backend_name: str) -> Any:
    """
    Instantiate the wrapped backend from ``{"backend": "<class path>", "backend_kwargs": {...}}``.

    :param spec: that mapping, its JSON text, a bare class path, or None / ``""`` for no delegate.
    :param backend_name: how messages name the delegating backend.
    :raises ValueError: for a malformed spec (not echoed: its kwargs may hold secrets) or a class
        that cannot be imported.
    """
    spec = json_setting(backend_name, "delegate", spec)
    if spec in (None, ""):
        return None
    if isinstance(spec, str):
        spec = {"backend": spec}
    kwargs = spec.get("backend_kwargs") if isinstance(spec, Mapping) else None
    if (
        not isinstance(spec, Mapping)
        or not isinstance(spec.get("backend"), str)
        or set(spec) - {"backend", "backend_kwargs"}
        or not isinstance(kwargs or {}, Mapping)
    ):
        # The spec is not echoed: its backend_kwargs may hold the other backend's secrets.
        raise ValueError(
            f"{_capitalized(backend_name)}'s 'delegate' setting must be "
            '{"backend": "<class path>", "backend_kwargs": {...}}.'
        )
    path = spec["backend"]
    module_name, _, class_name = path.rpartition(".")
    try:
        backend_class = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(
            f"{_capitalized(backend_name)} cannot import its delegate {path!r} "
            f"({type(err).__name__}): check the class path and that its package is installed."
        ) from None
    return backend_class(**dict(kwargs or {}))


class DelegatingSecretsBackend(BaseSecretsBackend):
    """
    Answers the connection ids it owns; everything else goes to the delegate, if any, or (None) to
    Airflow's next backend.

    :param delegate: ``{"backend": "<class path>", "backend_kwargs": {...}}``: a backend answering
        every id, variable and config key this one does not own.
    """

    #: How messages name the backend (subclasses set their own).
    backend_name: ClassVar[str] = "the secrets backend"

    def __init__(self, delegate: Mapping[str, Any] | str | None = None) -> None:
        super().__init__()
        self.delegate = load_delegate(delegate, self.backend_name)

    # -- what subclasses say -------------------------------------------------------------------
    def owns(self, conn_id: str) -> bool:
        """Whether ``conn_id`` is resolved by this backend (cheap: asked for every lookup)."""
        return False

    def connection_fields(self, conn_id: str) -> dict[str, Any] | None:
        """
        The fields (``conn_type``, ``host``, ``login``, ``password``, ...) of an owned ``conn_id``.

        :param conn_id: an id for which :meth:`owns` is true.
        :returns: None where this process must not answer it (the lookup then returns None; an owned
            id is never passed on to the delegate).
        """
        raise NotImplementedError

    def lookup_failure(self, conn_id: str, err: Exception) -> Exception:
        """
        What the lookup of an owned ``conn_id`` raises when answering it failed with ``err``.

        Airflow swallows a backend's exception on some versions and then says only that the id
        "isn't defined": a subclass turns every failure into its own error that says what to do.

        :param conn_id: an id for which :meth:`owns` is true.
        :param err: what :meth:`connection_fields` or building the connection raised.
        :returns: ``err`` itself (re-raised as it is), or the exception to raise instead.
        """
        return err

    def _answer_owned(self, conn_id: str, build: Callable[[dict[str, Any]], Any]) -> Any:
        """``build(fields)`` for an owned id, None where it is not answered; failures as :meth:`lookup_failure` says."""
        try:
            fields = self.connection_fields(conn_id)
            return None if fields is None else build(fields)
        except Exception as err:
            failure = self.lookup_failure(conn_id, err)
            if failure is err:
                raise
            raise failure from None

    # -- the BaseSecretsBackend interface (Airflow 2.11 and 3.x) ------------------------------
    def connection_class(self) -> type:
        """The Connection class owned ids are built as (in a task: the task SDK's on Airflow 3; see
        :func:`airflow_ecr._compat.secrets_backend_connection_class`)."""
        return _compat.secrets_backend_connection_class(self)

    def _set_connection_class(self, conn_class: type) -> None:
        """Airflow 3 sets the Connection class of its context; the delegate gets it too."""
        setter = getattr(super(), "_set_connection_class", None)
        if setter is not None:
            setter(conn_class)
        else:
            self._connection_class = conn_class
        delegate_setter = getattr(self.delegate, "_set_connection_class", None)
        if delegate_setter is not None:
            delegate_setter(conn_class)

    def get_conn_value(self, conn_id: str, team_name: str | None = None) -> str | None:
        """
        The connection as JSON (owned ids), the delegate's answer, or None.

        :param conn_id: the connection id.
        :param team_name: the task's team (Airflow 3.2+ multi-team); passed on to the delegate.
        """
        if self.owns(conn_id):
            return self._answer_owned(conn_id, json.dumps)
        if self.delegate is None:
            return None
        try:
            return call_delegate(self.delegate.get_conn_value, team_name, conn_id=conn_id)
        except NotImplementedError:
            # Some backends (LocalFilesystemBackend) only implement get_connection.
            conn = call_delegate(self.delegate.get_connection, team_name, conn_id=conn_id)
            return None if conn is None else conn.get_uri()

    def get_connection(self, conn_id: str, team_name: str | None = None) -> Any:
        """
        The connection (owned ids), the delegate's connection, or None.

        :param conn_id: the connection id.
        :param team_name: the task's team (Airflow 3.2+ multi-team); passed on to the delegate.
        """
        if self.owns(conn_id):
            return self._answer_owned(conn_id, lambda fields: self.connection_class()(conn_id=conn_id, **fields))
        if self.delegate is None:
            return None
        return call_delegate(self.delegate.get_connection, team_name, conn_id=conn_id)

    def deserialize_connection(self, conn_id: str, value: str) -> Any:
        """
        Turn a value from :meth:`get_conn_value` into a connection, the delegate's way for its ids.

        :param conn_id: the connection id.
        :param value: the serialized connection.
        """
        if self.delegate is not None and not self.owns(conn_id):
            return self.delegate.deserialize_connection(conn_id=conn_id, value=value)
        return super().deserialize_connection(conn_id=conn_id, value=value)

    def get_variable(self, key: str, team_name: str | None = None) -> str | None:
        """
        The delegate's variable, or None (this backend holds no variables).

        :param key: the variable key.
        :param team_name: the task's team (Airflow 3.2+ multi-team); passed on to the delegate.
        """
        if self.delegate is None:
            return None
        return call_delegate(self.delegate.get_variable, team_name, key=key)

    def get_config(self, key: str) -> str | None:
        """
        The delegate's config value, or None (this backend holds no configuration).

        :param key: the config key.
        """
        if self.delegate is None:
            return None
        return self.delegate.get_config(key)

    async def aget_connection(self, conn_id: str, team_name: str | None = None) -> Any:
        """
        :meth:`get_connection` for Airflow 3's async callers (triggers, ``BaseHook.aget_connection``).

        :param conn_id: the connection id.
        :param team_name: the task's team; passed on to the delegate.
        """
        if not self.owns(conn_id) and self.delegate is not None:
            method = getattr(self.delegate, "aget_connection", None)
            if method is not None:
                result = method(conn_id)
                return await result if inspect.isawaitable(result) else result
        # An owned id may need file and network I/O: keep it off the event loop.
        return await asyncio.to_thread(self.get_connection, conn_id, team_name)

    async def aget_variable(self, key: str, team_name: str | None = None) -> str | None:
        """
        :meth:`get_variable` for Airflow 3's async callers.

        :param key: the variable key.
        :param team_name: the task's team; passed on to the delegate.
        """
        if self.delegate is None:
            return None
        method = getattr(self.delegate, "aget_variable", None)
        if method is not None:
            result = method(key)
            return await result if inspect.isawaitable(result) else result
        return await asyncio.to_thread(self.get_variable, key, team_name)
