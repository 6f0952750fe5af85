"""The lab's ECR API emulator: its config file and its process (``python -m airflow_ecr.testing.emulator``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import airflow_ecr
from airflow_ecr.testing.emulator_admin import EmulatorClient
from airflow_ecr_lab.paths import LabPaths, emulator_token, new_emulator_token, read_text, write_json
from airflow_ecr_lab.processes import spawn, wait_until
from airflow_ecr_lab.spec import LAB_ACCOUNTS, LAB_REGISTRIES


def start_emulator(paths: LabPaths) -> tuple[int, str]:
    """Start the emulator for the lab's accounts (one htpasswd file each); returns (pid, URL).

    :param paths: the lab's layout.
    """
    paths.emulator.mkdir(parents=True, exist_ok=True)
    accounts = []
    for account in LAB_REGISTRIES:
        directory = paths.registry(account.name)
        directory.mkdir(parents=True, exist_ok=True)
        accounts.append(
            {
                "account_id": account.account_id,
                "region": account.region,
                "htpasswd": str(directory / "htpasswd"),
            }
        )
    config = {
        "accounts": accounts,
        "default_account": LAB_ACCOUNTS[0].account_id,
        "token_ttl": 43200,
        "rotate_fraction": 0.5,
        "port": 0,
        "admin_token_file": str(paths.emulator_token),
    }
    new_emulator_token(paths)  # made before the emulator starts, which reads it
    config_file = paths.emulator / "config.json"
    write_json(config_file, config)
    port_file = paths.emulator / "port"
    port_file.unlink(missing_ok=True)
    # Run this very package even when it is not installed (python -m from a source tree).
    package_root = str(Path(airflow_ecr.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    log = paths.emulator / "emulator.log"
    argv = [sys.executable, "-m", "airflow_ecr.testing.emulator", "--config", str(config_file)]
    pid = spawn(paths, "emulator", [*argv, "--port-file", str(port_file)], log, env)
    wait_until("the ECR emulator", port_file.exists, pid, str(paths.root), log, 20)
    return pid, f"http://127.0.0.1:{int(read_text(port_file))}"


def emulator_client(lab: Mapping[str, Any], timeout: float = 10) -> EmulatorClient:
    """
    The lab's emulator: its URL from ``lab.json``, its token from the lab directory (0600, so
    only the lab's owner, and the tasks that user runs, can drive it).

    :param lab: the contents of ``lab.json`` (``dir`` and ``emulator_url``).
    :param timeout: seconds to wait for each answer.
    """
    return EmulatorClient(str(lab["emulator_url"]), timeout, token=emulator_token(LabPaths(Path(lab["dir"]))))
