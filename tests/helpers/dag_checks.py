"""
Checks on what real Airflow runs left (no ECR token in any text; a task's own output line), and the
example DAGs as a real ``DagBag`` of a virtualenv's Airflow sees them: shared by ``tests/e2e`` and
the compatibility matrix's ``tests/compat``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet


def assert_no_secret(texts: Mapping[str, str], secrets: Iterable[str]) -> None:
    """No secret in any text; the failure names where, without printing the secret."""
    found = []
    for secret in secrets:
        assert len(secret) >= 16, "the emulator handed out a suspiciously short password"
        for where, text in texts.items():
            for number, line in enumerate(text.splitlines(), 1):
                if secret in line:
                    found.append(f"{where}:{number}: {line.replace(secret, '<TOKEN>')[:300]}")
    assert not found, "an ECR token appears in:\n" + "\n".join(found)


def output_lines(text: str, message: str) -> list[str]:
    """Log lines whose message is ``message`` itself (not a command that would print it)."""
    pattern = re.compile(rf"(^|[\s\]]){re.escape(message)}(\s|$)")
    return [line for line in text.splitlines() if pattern.search(line) and "echo" not in line]


# Run in the venv of each Airflow version: the DAG ids, and per task its class and docker_conn_id.
DAGBAG_SCRIPT = """
import json, sys
try:
    from airflow.dag_processing.dagbag import DagBag  # Airflow 3
except ImportError:
    from airflow.models.dagbag import DagBag  # Airflow 2
bag = DagBag(dag_folder=sys.argv[1])
print("DAGBAG=" + json.dumps({
    "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
    "files": sorted({str(dag.fileloc).rsplit("/", 1)[-1] for dag in bag.dags.values()}),
    "dags": {
        dag.dag_id: [[t.task_id, type(t).__name__, getattr(t, "docker_conn_id", None)] for t in dag.tasks]
        for dag in bag.dags.values()
    },
}))
"""


def examples_folder(venv: Path) -> str:
    """The example DAGs folder of the airflow-ecr installed in ``venv`` (a wheel, or this checkout)."""
    code = "import airflow_ecr.example_dags as m, os; print(os.path.dirname(m.__file__))"
    done = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def parse_examples(venv: Path, tmp_path: Path) -> dict[str, Any]:
    """The example DAGs as a real ``DagBag`` of ``venv``'s Airflow sees them (see DAGBAG_SCRIPT)."""
    # Nothing from the lab or the test session: the examples must parse on a bare machine.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_", "DOCKER_", "PYTEST_"))}
    env.update(
        AIRFLOW_HOME=str(tmp_path / "home"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        # As a deployment parses them: a Fernet key, and not Airflow's unit_test_mode.
        AIRFLOW__CORE__FERNET_KEY=Fernet.generate_key().decode(),
        # Parsing must not reach out: any attempt at AWS or Docker would hit a dead end.
        AWS_ENDPOINT_URL="http://127.0.0.1:9",
        AWS_EC2_METADATA_DISABLED="true",
        DOCKER_HOST="unix:///nonexistent/docker.sock",
    )
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", DAGBAG_SCRIPT, examples_folder(venv)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    line = next((x for x in result.stdout.splitlines() if x.startswith("DAGBAG=")), None)
    assert result.returncode == 0 and line, f"rc={result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return json.loads(line.removeprefix("DAGBAG="))
