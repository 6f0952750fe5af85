"""The lab's registries: one ``docker-registry serve`` per account (ECR-style basic auth) and one anonymous.

Each runs inside the daemon's network namespace on ``<its own address>:443`` with the lab's server
certificate; an account's registry reads the htpasswd file that the emulator rewrites (user ``AWS``).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from airflow_ecr_lab.messages import LabError
from airflow_ecr_lab.netns import probe
from airflow_ecr_lab.paths import LabPaths, write_private
from airflow_ecr_lab.processes import spawn, wait_until


def spawn_registry(paths: LabPaths, netns_pid: int, name: str, host: str, address: str, auth: bool) -> int:
    """Start the registry ``name`` in ``netns_pid``'s network namespace; returns its pid once it answers.

    :param paths: the lab's layout.
    :param netns_pid: a process in the lab's network namespace (dockerd).
    :param name: an account id, or ``anonymous``.
    :param host: its host name.
    :param address: its address (port 443).
    :param auth: basic auth from its htpasswd file (the account registries) or none (anonymous).
    """
    directory = paths.registry(name)
    (directory / "storage").mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "version": 0.1,
        # The access log counts registry requests (tests, benchmarks): one line per request.
        "log": {"level": "info", "accesslog": {"disabled": False}},
        "storage": {"filesystem": {"rootdirectory": str(directory / "storage")}, "delete": {"enabled": True}},
        "http": {
            "addr": f"{address}:443",
            # The upload-state HMAC secret: lives in the config file, never in argv.
            "secret": secrets.token_hex(16),
            "tls": {"certificate": str(paths.tls / "server.crt"), "key": str(paths.tls / "server.key")},
        },
    }
    if auth:
        config["auth"] = {"htpasswd": {"realm": "basic-realm", "path": str(directory / "htpasswd")}}
    # YAML is a superset of JSON: no YAML writer needed.
    config_file = directory / "config.yml"
    write_private(config_file, json.dumps(config, indent=2).encode())
    log = directory / "registry.log"
    argv = ["nsenter", f"--net=/proc/{netns_pid}/ns/net", "--", "docker-registry", "serve", str(config_file)]
    pid = spawn(paths, f"registry-{name}", argv, log)
    expected = "401" if auth else "200"
    ca = paths.tls / "ca.crt"

    def ready() -> bool:
        return probe(pid, address, host, ca) == expected

    wait_until(f"registry {host}", ready, pid, str(paths.root), log, 20)
    return pid


def registry_spec(info: dict[str, Any], name: str) -> tuple[str, str, bool]:
    """(host, address, auth) of the registry ``name``: an account id or ``anonymous``.

    :param info: the lab description (``lab.json``).
    :param name: an account id of the lab, a replica's name (``<account>-<region>``) or ``anonymous``.
    """
    if name == "anonymous":
        anonymous = info["anonymous_registry"]
        return anonymous["host"], anonymous["address"], False
    for account in info.get("accounts", []):
        if account["account_id"] == name:
            return account["host"], account["address"], True
    for replica in info.get("replicas", []):
        if replica["name"] == name:
            return replica["host"], replica["address"], True
    raise LabError(f"no registry {name!r} in this lab: use an account id, a replica's name or 'anonymous'")
