"""airflow_ecr._compat: the one home of where Airflow symbols live (run on every matrix cell)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from airflow_ecr import _compat

SRC = Path(_compat.__file__).resolve().parent
# Airflow modules that any supported Airflow has at the same place: the providers we build on.
# Providers keep their module paths across Airflow versions (OpenLineage: lineage.py, only where installed).
_STABLE_PREFIXES = (
    "airflow.providers.docker",
    "airflow.providers.amazon",
    "airflow.providers.openlineage",
    "airflow.providers.cncf.kubernetes",  # through airflow_ecr/kubernetes/_provider.py only
)


@pytest.mark.parametrize("name", sorted(_compat._HOMES))
def test_every_symbol_resolves_on_this_airflow(name: str) -> None:
    assert getattr(_compat, name) is not None


def test_optional_symbols_answer_none_or_the_symbol() -> None:
    for name, homes in _compat._OPTIONAL.items():
        found = _compat.optional(name)
        # A "module:attribute" home names the symbol by its attribute (TaskSdkConnection: Connection).
        assert found is None or found.__name__ in {name, *(home.partition(":")[2] for home in homes)}
    assert (_compat.optional("TaskSdkConnection") is not None) is _compat.is_airflow_3()


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        _compat.NoSuchSymbol  # noqa: B018


def test_older_airflow_is_refused_in_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_compat, "airflow_version", lambda: (2, 10))
    monkeypatch.setattr(_compat, "_resolved", {})
    with pytest.raises(_compat.UnsupportedAirflowError) as caught:
        _compat.BaseOperator  # noqa: B018
    message = str(caught.value)
    assert "Airflow 2.11 or any 3.x" in message
    assert "Airflow 2.10 is installed" in message
    assert "\n" not in message


def test_no_module_but_compat_imports_airflow_itself() -> None:
    """One home per rule: every other module asks _compat (example DAGs are user code, not ours)."""
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC)
        if relative.parts[0] in ("example_dags",) or relative.name == "_compat.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if (name == "airflow" or name.startswith("airflow.")) and not name.startswith(_STABLE_PREFIXES):
                    offenders.append(f"{relative}:{node.lineno} imports {name}")
    assert not offenders, "import these through airflow_ecr._compat:\n" + "\n".join(offenders)


def test_task_is_running_only_inside_airflows_own_task_context() -> None:
    """Where the task runner (3.x) or TaskInstance (2.11) marks a running task, and nowhere else."""
    try:
        from airflow.sdk.execution_time.context import set_current_context
    except ImportError:  # Airflow 2
        from airflow.models.taskinstance import set_current_context  # type: ignore[no-redef]

    assert not _compat.task_is_running()
    with set_current_context({"task_id": "t"}):  # type: ignore[arg-type]
        assert _compat.task_is_running()
    assert not _compat.task_is_running()


def _raised(function: object) -> BaseException:
    try:
        function()  # type: ignore[operator]
    except BaseException as err:
        return err
    raise AssertionError("nothing raised")


def test_fernet_breakage_is_told_from_any_other_attribute_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow's Fernet on a MultiFernet taking no attribute (first get_fernet, then every password
    set), and nothing else that looks like it."""
    from airflow_ecr._compat import ConnectionModel
    from helpers.fernet import break_fernet_like_cryptography_51

    assert not _compat.airflow_fernet_broken()
    break_fernet_like_cryptography_51(monkeypatch)
    crypto = __import__("airflow.models.crypto", fromlist=["get_fernet"])
    assert _compat.is_fernet_breakage(_raised(crypto.get_fernet))
    assert _compat.airflow_fernet_broken() and _compat.airflow_fernet_broken()  # 2.11: from its cache now
    for _ in (1, 2):  # Airflow 2.11 fails in get_fernet once, then where it reads the cached instance
        assert _compat.is_fernet_breakage(_raised(lambda: ConnectionModel(conn_id="c", password="p")))
    for real in (  # as cryptography 51.0.1 on Airflow 2.11.2 words them: setting, then reading
        "'cryptography.hazmat.bindings._rust.fernet.MultiFernet' object has no attribute 'is_encrypted'",
        "'cryptography.hazmat.bindings._rust.fernet.MultiFer' object has no attribute 'is_encrypted'",
    ):
        assert _compat.is_fernet_breakage(AttributeError(real))

    def another_object() -> None:
        raise AttributeError("'Connection' object has no attribute 'is_encrypted'")

    def another_attribute() -> None:
        raise AttributeError("'MultiFernet' object has no attribute 'rotate'")

    for other in (another_object, another_attribute, lambda: {}["is_encrypted"]):
        assert not _compat.is_fernet_breakage(_raised(other))
