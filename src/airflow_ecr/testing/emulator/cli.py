"""The emulator's command line, as the lab runs it: ``python -m airflow_ecr.testing.emulator --config FILE``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from airflow_ecr.testing.emulator.model import EmulatedAccount
from airflow_ecr.testing.emulator.server import EcrEmulator

_DESCRIPTION = "An Amazon ECR API emulator for tests: real HTTP, real boto3, real registries."


def load_config(path: str | os.PathLike[str]) -> tuple[list[EmulatedAccount], dict[str, Any]]:
    """Read a CLI config file; returns the accounts and the keyword arguments of :class:`EcrEmulator`.

    :param path: the JSON config file.
    """
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read emulator config {path}: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("accounts"), list):
        raise ValueError(f"{path}: expected {{'accounts': [{{'account_id', 'region', 'htpasswd'}}], ...}}")
    accounts = []
    for item in raw["accounts"]:
        if not isinstance(item, dict) or "account_id" not in item or "region" not in item:
            raise ValueError(f"{path}: each account needs 'account_id' and 'region', got {item!r}")
        accounts.append(EmulatedAccount(str(item["account_id"]), str(item["region"]), item.get("htpasswd")))
    kwargs: dict[str, Any] = {}
    for key in ("default_account", "token_ttl", "rotate_fraction", "bucket_capacity", "bucket_refill", "host", "port"):
        if key in raw:
            kwargs[key] = raw[key]
    if "admin_token_file" in raw:  # a file, never the token itself in a config others might read
        try:
            kwargs["admin_token"] = Path(raw["admin_token_file"]).read_text().strip()
        except OSError as exc:
            raise ValueError(f"cannot read the emulator's admin token file: {exc}") from exc
    return accounts, kwargs


def _write_atomically(path: Path, text: str) -> None:
    # A new file under a random name, never through a symlink: the lab's directory is root's.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    """Run the emulator until SIGTERM or SIGINT.

    :param argv: command line arguments (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(prog="python -m airflow_ecr.testing.emulator", description=_DESCRIPTION)
    parser.add_argument("--config", required=True, help="JSON config file (accounts, default_account, token_ttl)")
    parser.add_argument("--port-file", help="write the listening port to this file once ready")
    parser.add_argument("--port", type=int, help="override the config's port (0: any free port)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(message)s")
    try:
        accounts, kwargs = load_config(args.config)
        if args.port is not None:
            kwargs["port"] = args.port
        emulator = EcrEmulator(accounts, **kwargs)
        emulator.start()
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"ecr emulator: error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    if args.port_file:
        _write_atomically(Path(args.port_file), f"{emulator.port}\n")
    while not stop.wait(3600):
        pass
    emulator.stop()
    return 0
