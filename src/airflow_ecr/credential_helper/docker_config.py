"""
``airflow-ecr configure-docker``: the ``credHelpers`` entries of Docker's ``config.json`` that send
a registry's logins to ``docker-credential-airflow-ecr``, as ``gcloud auth configure-docker`` does
for its registries.

The file is merged, never rewritten from scratch: every other key stays as it was. A file that is
not a JSON object is left alone (one sentence says what to do); a new one is written atomically
(temp file + ``os.replace``) with mode 0600, since the same file may hold ``auths`` with passwords.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_ecr.credential_helper.index import server_host
from airflow_ecr.exceptions import DockerConfigError
from airflow_ecr.registry import parse_registry_host, registry_host, resolve_host
from airflow_ecr.settings import ecr_settings

HELPER_NAME = "airflow-ecr"  # Docker runs docker-credential-<name>
HELPER_PROGRAM = f"docker-credential-{HELPER_NAME}"


def config_file(environ: Mapping[str, str] = os.environ) -> Path:
    """
    Docker's client configuration: ``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``.

    :param environ: the environment (``os.environ``).
    """
    directory = environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return Path(directory) / "config.json"


@dataclass(frozen=True)
class Change:
    """
    What ``configure-docker`` does (or, with ``--check``, would do) for one host.

    :param host: the registry host.
    :param before: the helper configured for it before (None: none).
    """

    host: str
    before: str | None

    @property
    def configured(self) -> bool:
        """Whether the host already sends its logins to this helper."""
        return self.before == HELPER_NAME

    def describe(self) -> str:
        """What was done for the host, as the command prints it."""
        if self.configured:
            return f"{self.host}: already uses {HELPER_PROGRAM}"
        if self.before is None:
            return f"{self.host}: credHelpers entry added ({HELPER_PROGRAM})"
        return f"{self.host}: credHelpers entry changed from {self.before!r} to {HELPER_NAME!r}"


def read_config(path: Path) -> dict[str, Any]:
    """
    The configuration in ``path`` ({} when there is none).

    :param path: Docker's ``config.json``.
    :raises DockerConfigError: when it cannot be read or is not a JSON object (left untouched).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as err:
        raise DockerConfigError(
            f"Cannot read Docker's configuration {path} ({type(err).__name__}): fix its permissions or "
            "point DOCKER_CONFIG at another directory; nothing was changed."
        ) from None
    try:
        config = json.loads(text) if text.strip() else {}
    except ValueError as err:
        raise DockerConfigError(
            f"Docker's configuration {path} is not valid JSON (line {getattr(err, 'lineno', '?')}): fix or move "
            "it, then run airflow-ecr configure-docker again; nothing was changed."
        ) from None
    helpers = config.get("credHelpers", {}) if isinstance(config, dict) else None
    if not isinstance(config, dict) or not isinstance(helpers, dict):
        raise DockerConfigError(
            f"Docker's configuration {path} is not a JSON object with a 'credHelpers' object: fix or move "
            "it, then run airflow-ecr configure-docker again; nothing was changed."
        )
    return config


def plan(config: Mapping[str, Any], hosts: Sequence[str]) -> list[Change]:
    """
    What configuring ``hosts`` changes in ``config``.

    :param config: the configuration as read.
    :param hosts: the registry hosts to point at the helper.
    """
    helpers = config.get("credHelpers", {})
    return [Change(host, helpers.get(host)) for host in dict.fromkeys(hosts)]


def merged(config: Mapping[str, Any], changes: Sequence[Change]) -> dict[str, Any]:
    """
    ``config`` with the ``credHelpers`` entries of ``changes``; every other key as it was.

    :param config: the configuration as read.
    :param changes: what :func:`plan` found.
    """
    result = dict(config)
    result["credHelpers"] = {**config.get("credHelpers", {}), **{c.host: HELPER_NAME for c in changes}}
    return result


def write_config(path: Path, config: Mapping[str, Any]) -> None:
    """
    Write ``config`` to ``path`` atomically, mode 0600 (the directory is created 0700 if missing).

    :param path: Docker's ``config.json``.
    :param config: the whole configuration to write.
    :raises DockerConfigError: when it cannot be written (the old file stays as it was).
    """
    temp = None
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".config.json.", suffix=".tmp")  # mode 0600
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(config, handle, indent="\t")  # Docker's own layout
            handle.write("\n")
        os.replace(temp, path)
    except OSError as err:
        if temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(temp)
        raise DockerConfigError(
            f"Cannot write Docker's configuration {path} ({err.strerror}): fix the directory's permissions "
            "or point DOCKER_CONFIG elsewhere; nothing was changed."
        ) from None


def configure(hosts: Sequence[str], path: Path, check: bool = False) -> list[Change]:
    """
    Point ``hosts`` at the helper in the configuration at ``path`` (with ``check``: only say what
    would change). The file is written only when something changes.

    :param hosts: the registry hosts (:func:`registry_hosts`).
    :param path: Docker's ``config.json`` (:func:`config_file`).
    :param check: only report; write nothing.
    :raises DockerConfigError: for a file that cannot be read, parsed or written (left untouched).
    """
    config = read_config(path)
    changes = plan(config, hosts)
    if not check and not all(c.configured for c in changes):
        write_config(path, merged(config, changes))
    return changes


def registry_hosts(registries: Sequence[str]) -> list[str]:
    """
    The hosts to configure: each named registry (an ECR host, ``https://`` and a path allowed, or a
    host declared in ``[ecr] registry_aliases``); without any, every declared alias and the ECR
    registry it stands for (the only registries the configuration names).

    :param registries: the command's REGISTRY arguments.
    :raises DockerConfigError: for a registry the helper would not serve, or nothing to configure.
    """
    if not registries:
        aliases = ecr_settings().registry_aliases
        if not aliases:
            raise DockerConfigError(
                "Nothing to configure: name the registries, e.g. airflow-ecr configure-docker "
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com, or declare aliases in [ecr] registry_aliases."
            )
        hosts = []
        for alias, registry in sorted(aliases.items()):
            hosts += [alias, registry_host(registry.account_id, registry.region)]
        return hosts
    hosts = []
    for given in registries:
        host = server_host(given)
        try:
            parse_registry_host(host)
        except ValueError:
            try:
                resolve_host(host, aliases=ecr_settings().registry_aliases)
            except ValueError:
                raise DockerConfigError(
                    f"{given!r} is neither an Amazon ECR registry nor an alias declared in [ecr] registry_aliases: "
                    "name the ECR host ('<account>.dkr.ecr.<region>.amazonaws.com') or declare the alias "
                    f"('{host}=<12-digit account id>:<region>'); nothing was changed."
                ) from None
        hosts.append(host)
    return hosts
