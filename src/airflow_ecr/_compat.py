"""
Where Airflow's symbols live, per supported Airflow version: the only module that knows.

Supported: Airflow 2.11 and every 3.x minor (see docs/compatibility.md, proven by the matrix in
scripts/compat.py). Each symbol is looked up at its newest home first and then at the older ones,
so that a newer Airflow never pays a deprecation warning and an older one still finds it.

This module deliberately does not go through ``airflow.providers.common.compat.sdk``: that module
appeared in common-compat 1.8 and its table of homes changes from release to release (1.20.0
sends ``mask_secret`` to a module that Airflow 3.1 does not have), so a deployment's common-compat
version would decide whether airflow-ecr imports at all. Here the table is ours and the matrix
tests it against each Airflow line as users install it.

Everything is resolved lazily (module ``__getattr__``): importing this module imports nothing of
Airflow, so provider discovery and ``import airflow_ecr`` stay cheap.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import os
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

MINIMUM_AIRFLOW = (2, 11)
SUPPORTED_AIRFLOW = "Airflow 2.11 or any 3.x release"

# name -> where it lives, newest Airflow first ("module" or "module:attribute"). Airflow 3's task
# SDK is ``airflow.sdk``: ``airflow.sdk.BaseHook`` arrived in 3.1, ``airflow.sdk.configuration`` and
# ``AirflowNotFoundException`` in ``airflow.sdk.exceptions`` in 3.2; the old homes warn from 3.1 on.
_HOMES: dict[str, tuple[str, ...]] = {
    "BaseOperator": ("airflow.sdk", "airflow.models.baseoperator"),
    "BaseHook": ("airflow.sdk", "airflow.hooks.base"),
    "Context": ("airflow.sdk", "airflow.utils.context"),
    "DAG": ("airflow.sdk", "airflow.models.dag"),
    "mask_secret": ("airflow.sdk.log", "airflow.utils.log.secrets_masker"),
    "conf": ("airflow.sdk.configuration", "airflow.configuration"),
    "AirflowException": ("airflow.sdk.exceptions", "airflow.exceptions"),
    "AirflowNotFoundException": ("airflow.sdk.exceptions", "airflow.exceptions"),
    "task_decorator_factory": ("airflow.sdk.bases.decorator", "airflow.decorators.base"),
    "TaskDecorator": ("airflow.sdk.bases.decorator", "airflow.decorators.base"),
    # Core's class, not the task SDK's (a different class on 3.3): backends are loaded by core
    # processes too (scheduler, API server), and core's loader is what checks the base class.
    "BaseSecretsBackend": ("airflow.secrets.base_secrets",),
    # The ORM (Airflow 2 tasks; Airflow 3 only outside tasks).
    "ConnectionModel": ("airflow.models.connection:Connection",),
    "create_session": ("airflow.utils.session",),
    # The running task's context: set only while a process executes a task (``task_is_running``).
    "get_current_context": ("airflow.sdk", "airflow.operators.python"),
    # What the task runner (3.x) and TaskInstance (2.11) wrap a task's execution in.
    "set_current_context": ("airflow.sdk.execution_time.context", "airflow.models.taskinstance"),
}
# Symbols some supported versions lack; ``optional(name)`` answers None there.
_OPTIONAL: dict[str, tuple[str, ...]] = {
    # Task SDK 1.2.2+: a backend's error that stops the lookup instead of falling through.
    "AirflowSecretsBackendAccessDenied": ("airflow.sdk.exceptions",),
    # The masker mask_secret feeds, where 3.1 and 3.2 import it inside mask_secret (add_mask_patterns).
    "_secrets_masker": ("airflow.sdk._shared.secrets_masker", "airflow.sdk.execution_time.secrets_masker"),
    # Airflow 3's task-side Connection: plain fields, no Fernet (every 3.x; Airflow 2 has none).
    "TaskSdkConnection": ("airflow.sdk.definitions.connection:Connection",),
}

if TYPE_CHECKING:
    # For type checkers, the two functions' signatures; every class resolves through __getattr__ (Any).

    def mask_secret(secret: str | dict[str, Any], name: str | None = None) -> None: ...

    conf: Any

__all__ = [
    *_HOMES,
    "add_mask_patterns",
    "airflow_fernet_broken",
    "airflow_version",
    "check_airflow_version",
    "deployment_facts",
    "is_airflow_3",
    "is_fernet_breakage",
    "optional",
    "push_xcom",
    "secrets_backend_connection_class",
    "task_is_running",
    "task_team",
]

_resolved: dict[str, Any] = {}


class UnsupportedAirflowError(ImportError):
    """The installed Airflow is older than airflow-ecr supports (or has none of a symbol's homes)."""


@functools.cache
def airflow_version() -> tuple[int, int]:
    """The installed Airflow's (major, minor).

    From ``airflow.__version__``: every caller is about to import Airflow anyway, and reading the
    package metadata instead costs milliseconds in each new task process.
    """
    import airflow

    major, minor = (int("".join(c for c in part if c.isdigit()) or 0) for part in airflow.__version__.split(".")[:2])
    return major, minor


def check_airflow_version() -> None:
    """Refuse an Airflow older than the supported minimum with one sentence (not an ImportError deep inside).

    :raises UnsupportedAirflowError: naming the installed and the supported versions.
    """
    installed = airflow_version()
    if installed < MINIMUM_AIRFLOW:
        raise UnsupportedAirflowError(
            f"airflow-ecr needs {SUPPORTED_AIRFLOW}, but Airflow {installed[0]}.{installed[1]} is installed: "
            "upgrade Airflow (and its docker and amazon providers) or use another release of airflow-ecr."
        )


def is_airflow_3() -> bool:
    """Whether this is Airflow 3 (tasks have no metadata database; connections go through the API)."""
    return airflow_version()[0] >= 3


def push_xcom(context: Any, key: str, value: Any) -> None:
    """``BaseOperator.xcom_push`` for task SDKs without it (Airflow 3.0).

    Airflow 3.0's ``DecoratedOperator.execute`` reads ``self.xcom_push``, which only core's
    ``BaseOperator`` had there, while the docker provider builds on the task SDK's: unmodified
    ``@task.docker`` fails on 3.0 with ``AttributeError: ... no attribute 'xcom_push'``.
    """
    context["ti"].xcom_push(key=key, value=value)


def task_is_running() -> bool:
    """Whether this process is executing a task now: the one process role that may act for a task.

    Airflow loads ``[secrets] backend`` in every process, and no process tells its role the same way
    on every version:

    - Airflow 2.11: scheduler, webserver, triggerer, DAG processor and ``tasks run --raw`` alike.
    - Airflow 3.x: the API server (whose Execution API resolves any task's ``GetConnection`` with
      its own backends), scheduler and DAG processor manager set ``_AIRFLOW_PROCESS_CONTEXT=server``,
      but LocalExecutor task processes inherit it from the scheduler. ``task_runner.SUPERVISOR_COMMS``
      is set in task processes, and also in the DAG processor's parsing child and the triggerer's
      runner. ``[workers] secrets_backend`` (falling back to ``[secrets] backend``) is loaded by
      those three and the supervisor.

    What every version shares is the running task's context: the task runner (3.x: ``run()``, in
    ``dags test``/``tasks test`` too) and ``TaskInstance._run_raw_task`` (2.11: ``tasks run --raw``,
    ``dags test``, ``tasks test``) set it around template rendering and ``execute``, and no server
    process, parser or trigger ever does. It is a process-wide stack, so threads of a task (e.g.
    ``asyncio.to_thread``) see it too.
    """
    try:
        __getattr__("get_current_context")()
    except Exception:  # 3.x: RuntimeError, 2.11: AirflowException ("no context was found")
        return False
    return True


def add_mask_patterns(patterns: list[str], secrets: Callable[[], list[str]]) -> None:
    """Mask secrets wherever Airflow masks: in this process with ``patterns`` (regexes matching them
    all), and in an Airflow 3 task's supervisor (which masks the task's logs) with the secrets.

    Why not ``mask_secret(secrets())`` alone: its masker compiles one regex of all its patterns per
    secret added, and a regex costs compile time per character. An ECR password's forms are about
    20,000 characters: 10-80 ms in every new task process. ``patterns`` are a few dozen characters
    each; they go, compiled once with the masker's own engine (re2 on 2.11), into the masker's
    pattern set (private, and the same on 2.11 and every 3.x: ``patterns``, the set ``replacer`` is
    compiled from). A supervisor is another process and gets the secrets themselves, through
    ``mask_secret`` as Airflow sends them; their exact patterns, added to the set first, make its
    local half a no-op.

    :param patterns: regexes matching every one of the secrets (and nothing that should stay readable).
    :param secrets: the exact strings (computed only for a supervisor, or an unknown masker).
    """
    mask_secret = __getattr__("mask_secret")
    # Beside mask_secret (2.11, 3.0, 3.3), or imported inside it (3.1, 3.2: from the task SDK's _shared).
    accessor = getattr(mask_secret, "__globals__", {}).get("_secrets_masker") or optional("_secrets_masker")
    masker: Any = accessor() if callable(accessor) else None
    known = getattr(masker, "patterns", None)
    if not isinstance(known, set) or not hasattr(masker, "replacer"):
        mask_secret(secrets())  # an unknown masker: its own way, slow but complete
        return
    engine = getattr(sys.modules.get(type(masker).__module__), "re2", re)
    new = [pattern for pattern in patterns if pattern not in known]
    if new:
        known.update(new)
        masker.replacer = engine.compile("|".join(known))
    # Where Airflow 3's mask_secret looks for the supervisor; no task runner, no supervisor (2.11 too).
    task_runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    if getattr(task_runner, "SUPERVISOR_COMMS", None) is not None:
        exact = secrets()
        known.update(engine.escape(secret) for secret in exact)
        mask_secret(exact)


# The options that decide which connection a conn id resolves to in a process, beside the process's
# own AIRFLOW_CONN_* variables: the Execution API server of Airflow 3 tasks, and the secrets backends
# asked first. (The metadata database of Airflow 2 tasks and of server processes counts as Airflow
# resolved it, whatever form configured it: airflow.settings.SQL_ALCHEMY_CONN.)
_DEPLOYMENT_OPTIONS = (
    ("core", "execution_api_server_url"),
    ("api", "base_url"),
    ("secrets", "backend"),
    ("secrets", "backend_kwargs"),
    ("workers", "secrets_backend"),
    ("workers", "secrets_backend_kwargs"),
)
# Each option with its environment variable, spelled once here (not per call: new task processes pay for each step).
_DEPLOYMENT_OPTION_VARIABLES = tuple(
    (section, option, f"AIRFLOW__{section.upper()}__{option.upper()}") for section, option in _DEPLOYMENT_OPTIONS
)
# Where the configuration comes from, which chain of backends the process asks (3.x: server or
# client), and the team of the running task.
_DEPLOYMENT_VARIABLES = ("AIRFLOW_HOME", "AIRFLOW_CONFIG", "_AIRFLOW_PROCESS_CONTEXT", "AIRFLOW_CTX_TEAM_NAME")


def _hashed(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def _without_password(url: str) -> str:
    """A database URL without its password (and query), as a deployment fact."""
    scheme, separator, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    userinfo, at, host = netloc.rpartition("@")
    if not separator:
        return _hashed(url)  # not a URL: nothing to tell a password from
    user = userinfo.partition(":")[0] + at
    return f"{scheme}://{user}{host}{slash}{path.partition('?')[0]}"


def task_team() -> str | None:
    """The team of the running task on Airflow versions with teams (3.3+ multi-team), else None.

    The task runner exports it as ``AIRFLOW_CTX_TEAM_NAME`` before ``execute``, as every context
    variable; an environment lookup, where the context itself would cost an import.
    """
    return os.environ.get("AIRFLOW_CTX_TEAM_NAME") or None


def deployment_facts() -> list[tuple[str, ...]]:
    """What tells this process's Airflow deployment, team and connection origins from another's.

    Two deployments run by one OS user on one host, or two teams of one deployment, can resolve the
    same conn id to different connections: the facts are the Execution API server, the metadata
    database (``airflow.settings.SQL_ALCHEMY_CONN``, as Airflow resolved it from any of its forms),
    the secrets backends and their arguments, the team, and where the configuration lives. Never a
    secret: the database URL loses its password, backend arguments enter as hashes.

    Cheap on purpose (a warm token lookup computes them in every new task process): a few
    environment lookups and the configuration file's values as Airflow parsed them, without
    ``conf.get``, which costs tens of microseconds per option (its environment, command, secret and
    default chain); the options' environment forms are read here.
    """
    get = os.environ.get
    facts: list[tuple[str, ...]] = [("env", name, value) for name in _DEPLOYMENT_VARIABLES if (value := get(name))]
    # The configuration file's values as the parser holds them (configparser's own attribute): the
    # public getter would run the whole lookup chain again for each option.
    config = __getattr__("conf")
    parsed = getattr(config, "_sections", None)
    for section, option, variable in _DEPLOYMENT_OPTION_VARIABLES:
        in_file = (
            parsed.get(section, {}).get(option)
            if isinstance(parsed, dict)
            else config.get(section, option, fallback=None)
        )
        for where, value in (("env", get(variable)), ("file", in_file)):
            if value:
                facts.append((section, option, where, _hashed(value) if option.endswith("kwargs") else value))
    settings = sys.modules.get("airflow.settings")
    database = getattr(settings, "__dict__", {}).get("SQL_ALCHEMY_CONN")
    if database:
        facts.append(("database", _without_password(database)))
    return facts


def secrets_backend_connection_class(backend: Any) -> type:
    """The Connection class a secrets backend builds the connections it returns with.

    In an Airflow 3 task process: the task SDK's ``Connection``. It is what the task SDK builds
    connections as itself (3.3 sets it on every backend it loads for a task; 3.0 and 3.1 read only
    the answer's fields and ``get_uri()``), and it holds its password as plain text, where core's
    ORM model, which 3.0 and 3.1 leave on a backend, encrypts it with Airflow's Fernet, which
    cryptography 51 breaks there (:func:`is_fernet_breakage`).

    Elsewhere: the class Airflow set on the backend (Airflow 3: core's ``Connection`` in the
    scheduler and API server, answered by the private ``BaseSecretsBackend._get_connection_class``),
    or the ORM model (Airflow 2, which has neither).

    :param backend: a ``BaseSecretsBackend`` instance.
    """
    task_side = optional("TaskSdkConnection") if is_airflow_3() and task_is_running() else None
    if task_side is not None:
        return task_side
    getter = getattr(backend, "_get_connection_class", None)
    if getter is not None:
        return getter()
    return __getattr__("ConnectionModel")


def is_fernet_breakage(err: BaseException) -> bool:
    """Whether ``err`` is Airflow's own ``get_fernet()`` failing on a cryptography it does not support.

    Airflow 2.11 to 3.1 build a ``MultiFernet`` and set ``is_encrypted`` on it; cryptography 51
    made ``MultiFernet`` a Rust class that takes no new attributes, so with a Fernet key configured
    every connection password Airflow encrypts fails with ``AttributeError: '...MultiFernet' object
    has no attribute 'is_encrypted'`` (Airflow 3.3 wraps it and is fine): raised in ``get_fernet`` the
    first time, and where the password setter reads ``is_encrypted`` of the cached ``MultiFernet``
    every time after, where Python cuts the class name to 50 characters (``'...fernet.MultiFer'
    object``); Python 3.13 adds ``and no __dict__ for setting new attributes`` to the first. Told
    by the class and the attribute it names, so that no other AttributeError is taken for it.

    :param err: an exception raised while Airflow handled a connection.
    """
    return isinstance(err, AttributeError) and _FERNET_BREAKAGE.fullmatch(str(err)) is not None


def airflow_fernet_broken() -> bool:
    """Whether Airflow's own Fernet fails in this process as :func:`is_fernet_breakage` describes.

    Airflow's secrets backends log that failure and go on, so a connection they cannot build reads
    as one that does not exist: a caller told "not found" asks this before believing it.
    """
    try:
        # Airflow 2.11 caches the MultiFernet before the failure: a second call returns it, and
        # reading is_encrypted fails as every password access then does.
        from airflow.models.crypto import get_fernet  # core's, on every version: the one that breaks

        _ = get_fernet().is_encrypted
    except AttributeError as err:
        return is_fernet_breakage(err)
    except Exception:  # e.g. a malformed key: Airflow's own message reaches the user elsewhere
        return False
    return False


# The class as Python names it in the message: in full, or cut to 50 characters.
# Python 3.13 adds " and no __dict__ for setting new attributes" when the failure is a set.
_FERNET_BREAKAGE = re.compile(
    r"'(?:[\w.]*\.)?MultiFer\w*' object has no attribute 'is_encrypted'(?: and no __dict__ for setting new attributes)?"
)


def _find(name: str, homes: tuple[str, ...]) -> Any:
    check_airflow_version()
    for home in homes:
        module_name, _, attribute = home.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if hasattr(module, attribute or name):
            return getattr(module, attribute or name)
    return None


def optional(name: str) -> Any:
    """A symbol that some supported Airflow versions lack, or None where it is missing.

    :param name: a key of ``_OPTIONAL``.
    """
    if name not in _resolved:
        _resolved[name] = _find(name, _OPTIONAL[name])
    return _resolved[name]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in _resolved:
        found = _find(name, _HOMES[name])
        if found is None:
            version = ".".join(map(str, airflow_version()))
            raise UnsupportedAirflowError(
                f"airflow-ecr cannot find {name} in Airflow {version} (looked in {', '.join(_HOMES[name])}): "
                f"it supports {SUPPORTED_AIRFLOW}."
            )
        _resolved[name] = found
    return _resolved[name]
