"""
The ``[ecr]`` section of Airflow's configuration, read once per process.

Every option's name, default and validation lives here; ``provider_info`` publishes the defaults
and the token modules ask :func:`ecr_settings`. This module imports nothing at import time, not even
Airflow: provider discovery loads ``provider_info`` (which reads the defaults here) while Airflow
itself is still starting. A task process reads the section once: the result
is kept until one of the environment variables that could change it does (``AIRFLOW__ECR__*``
overrides, as tests and deployments set them), which costs a few dictionary lookups instead of five
configuration lookups.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_ecr.registry import EcrRegistry

SECTION = "ecr"
DEFAULT_CACHE_ENABLED = True
DEFAULT_REFRESH_RATIO = 0.5
DEFAULT_LOCK_TIMEOUT = 60.0
_OPTIONS = ("cache_enabled", "cache_dir", "refresh_ratio", "lock_timeout", "registry_aliases")
# The environment variables that can change what is read: the options' overrides and what decides
# the default directory and the configuration file. Looked up by name: scanning the whole
# environment costs more than the read. (None of the options is sensitive, so Airflow reads no
# _CMD or _SECRET form of them.)
_ENV_INPUTS = (
    *(f"AIRFLOW__ECR__{option.upper()}" for option in _OPTIONS),
    "XDG_CACHE_HOME",
    "HOME",
    "AIRFLOW_HOME",
    "AIRFLOW_CONFIG",
)


@dataclass(frozen=True)
class EcrSettings:
    """
    The ``[ecr]`` options in effect.

    :param cache_dir: the host token cache directory; None when ``cache_enabled`` is off.
    :param refresh_ratio: fraction of a token's life after which it is refreshed.
    :param lock_timeout: seconds to wait for another process's fetch before fetching anyway.
    :param registry_aliases: the declared alias hosts (lowercased) and the ECR registry each stands for.
    """

    cache_dir: Path | None
    refresh_ratio: float = DEFAULT_REFRESH_RATIO
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    registry_aliases: dict[str, EcrRegistry] = field(default_factory=dict)


def check_refresh_ratio(ratio: float) -> float:
    """
    ``ratio`` if it is a usable refresh ratio.

    :raises EcrConfigurationError: with the sentence that says what to set.
    """
    if not 0 < ratio <= 1:
        from airflow_ecr.exceptions import EcrConfigurationError

        raise EcrConfigurationError(f"[ecr] refresh_ratio must be in (0, 1], got {ratio}: set e.g. 0.5.")
    return ratio


def parse_registry_aliases(text: str) -> dict[str, EcrRegistry]:
    """
    ``[ecr] registry_aliases``: ``host=<account id>:<region>`` entries separated by commas or newlines.

    :param text: the option's value, e.g. ``registry.example.com=123456789012:us-east-1``.
    :raises EcrConfigurationError: naming the entry to fix.
    """
    from airflow_ecr.registry import alias_table, declare_alias

    declared = []
    try:
        for entry in filter(None, (e.strip() for e in text.replace("\n", ",").split(","))):
            host, equals, target = entry.partition("=")
            registry_id, colon, region = target.strip().partition(":")
            if not equals or not colon:
                raise ValueError(f"entry {entry!r} is not 'host=<12-digit account id>:<region>'")
            declared.append(declare_alias(host.strip(), registry_id.strip(), region.strip()))
        return alias_table(declared)
    except ValueError as err:
        from airflow_ecr.exceptions import EcrConfigurationError

        raise EcrConfigurationError(
            f"[ecr] registry_aliases: {err}; fix it, e.g. 'registry.example.com=123456789012:us-east-1'."
        ) from None


_read: tuple[tuple[str | None, ...], EcrSettings] | None = None


def ecr_settings() -> EcrSettings:
    """
    Read ``[ecr] cache_enabled``, ``cache_dir``, ``refresh_ratio``, ``lock_timeout``,
    ``registry_aliases`` (once per process).

    :raises EcrConfigurationError: for a refresh ratio outside (0, 1] or a malformed alias.
    """
    global _read
    overrides = tuple(map(os.environ.get, _ENV_INPUTS))
    if _read is not None and _read[0] == overrides:
        return _read[1]
    from airflow_ecr._compat import conf
    from airflow_ecr.tokens.store import default_cache_dir

    enabled = conf.getboolean(SECTION, "cache_enabled", fallback=DEFAULT_CACHE_ENABLED)
    directory = conf.get(SECTION, "cache_dir", fallback="")
    settings = EcrSettings(
        cache_dir=(Path(directory).expanduser() if directory else default_cache_dir()) if enabled else None,
        refresh_ratio=check_refresh_ratio(conf.getfloat(SECTION, "refresh_ratio", fallback=DEFAULT_REFRESH_RATIO)),
        lock_timeout=conf.getfloat(SECTION, "lock_timeout", fallback=DEFAULT_LOCK_TIMEOUT),
        registry_aliases=parse_registry_aliases(conf.get(SECTION, "registry_aliases", fallback="")),
    )
    _read = (overrides, settings)
    return settings
