"""The Role on the Kubernetes page is the one the tests bind Airflow's ServiceAccount to."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from airflow_ecr.kubernetes.pull_secrets import ROLE_RULES

PAGE = Path(__file__).resolve().parents[2] / "docs" / "kubernetes.md"


def test_the_documented_role_is_the_tested_one() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", PAGE.read_text(), re.S)
    documents = [d for block in blocks for d in yaml.safe_load_all(block)]
    roles = [d for d in documents if d and d.get("kind") == "Role"]
    assert len(roles) == 1
    assert roles[0]["rules"] == ROLE_RULES
    assert not [d for d in documents if d and d.get("kind", "").startswith("Cluster")], "nothing cluster-wide"
