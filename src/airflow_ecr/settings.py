"""
The ``[ecr]`` section of Airflow's configuration, read once per process.

Every option's name, default and validation lives here; ``provider_info`` publishes the defaults
and the token modules ask :func:`ecr_settings`. At import time this module imports only
:mod:`airflow_ecr.process_state` (where its reads are kept), not even Airflow: provider discovery
loads ``provider_info`` (which reads the defaults here) while Airflow itself is still starting. A
task process reads the section once: the result is kept until one of the environment variables
that could change it does (``AIRFLOW__ECR__*`` overrides, as tests and deployments set them),
which costs a few dictionary lookups instead of eight configuration lookups. The retry options of
the token call are read apart (:func:`token_retries`), when a process first makes a client: a task
served from the cache never reads them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_ecr.process_state import STATE

if TYPE_CHECKING:
    from airflow_ecr.images.pull_through import PullThroughRule
    from airflow_ecr.registry import EcrRegistry

SECTION = "ecr"
# The AWS connection every operator, hook, DAG factory and CLI command uses unless told otherwise
# (as the amazon provider's hooks do), and the pod mutation hook's default ([ecr] aws_conn_id); here, not
# in the hook, so the CLI's parser imports no Airflow.
DEFAULT_AWS_CONN_ID = "aws_default"
DEFAULT_CACHE_ENABLED = True
DEFAULT_REFRESH_RATIO = 0.5
DEFAULT_LOCK_TIMEOUT = 60.0
# Hosts refresh a token up to this fraction of its refresh age early (see tokens/policy.py).
DEFAULT_REFRESH_JITTER = 0.1
# How long a recorded "connection id -> identity" (the identity index of the token cache) is trusted
# before the connection is read again; the default of Airflow's own connection cache ([secrets]
# cache_ttl_seconds). 0: the connection is read in every task process.
DEFAULT_IDENTITY_RECHECK = 15 * 60.0
# A day: a record trusted longer would outlive most connection edits' urgency (a repointed role).
MAX_IDENTITY_RECHECK = 24 * 3600.0
DEFAULT_REQUIRE_AWS_CONNECTION = False
# The token call's retries: botocore's standard mode (full-jitter exponential backoff) with 7
# attempts waits at most 51 s in all (token_retry_wait_bound), below the default lock_timeout, so
# the other processes of a host wait for the one retrying instead of taking over from it.
TOKEN_RETRY_MODES = ("standard", "adaptive")
DEFAULT_TOKEN_RETRY_MODE = "standard"  # noqa: S105 - a botocore retry mode, no secret
DEFAULT_TOKEN_MAX_ATTEMPTS = 7
# 30 attempts already wait up to 8.5 minutes (token_retry_wait_bound): more would only hide an outage.
MAX_TOKEN_ATTEMPTS = 30
# botocore's standard backoff: before attempt n+1, a wait drawn from [0, min(2 ** (n - 1), 20)) s
# for a throttling error (botocore.retries.standard.ExponentialBackoff).
BOTOCORE_MAX_BACKOFF = 20.0
_OPTIONS = (
    "cache_enabled",
    "cache_dir",
    "refresh_ratio",
    "refresh_jitter",
    "lock_timeout",
    "registry_aliases",
    "pull_through_cache",
    "image_policy",
    "token_retry_mode",
    "token_max_attempts",
)
# The environment variables that can change what is read: the options' overrides, the home a
# configured ``~/...`` cache_dir expands in, and what decides the configuration file (the default
# cache directory is the token cache's business, resolved when a cache is made). Looked up by name: scanning the whole
# environment costs more than the read. (None of the options is sensitive, so Airflow reads no
# _CMD or _SECRET form of them.)
_ENV_INPUTS = (
    *(f"AIRFLOW__ECR__{option.upper()}" for option in _OPTIONS),
    "HOME",
    "AIRFLOW_HOME",
    "AIRFLOW_CONFIG",
)


@dataclass(frozen=True)
class EcrSettings:
    """
    The ``[ecr]`` options in effect.

    The one settings object: the token cache's refresh policy (:meth:`RefreshPolicy.of
    <airflow_ecr.tokens.policy.RefreshPolicy.of>`) and its directory (:func:`cache_directory
    <airflow_ecr.tokens.cache.cache_directory>`) are derived from it, not copied.

    :param cache_enabled: whether tokens are kept in a host cache directory (``[ecr] cache_enabled``).
    :param cache_dir: ``[ecr] cache_dir`` (user expanded); None: the default directory (the token
        cache's rule, :func:`~airflow_ecr.tokens.private_files.default_cache_path`).
    :param refresh_ratio: fraction of a token's life after which it is refreshed.
    :param lock_timeout: seconds to wait for another process's fetch before fetching anyway.
    :param registry_aliases: the declared alias hosts (lowercased) and the ECR registry each stands for.
    :param refresh_jitter: fraction of the refresh age by which a token may be refreshed early.
    :param pull_through_cache: ``[ecr] pull_through_cache`` as written; :attr:`pull_through_rules` parses it.
    :param image_policy: ``[ecr] image_policy``: the image policy file's path, empty for none; read at
        first use by :func:`airflow_ecr.trust.policy.load_image_policy` (this layer is below ``trust``).
    """

    cache_enabled: bool = DEFAULT_CACHE_ENABLED
    cache_dir: Path | None = None
    refresh_ratio: float = DEFAULT_REFRESH_RATIO
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    registry_aliases: dict[str, EcrRegistry] = field(default_factory=dict)
    refresh_jitter: float = DEFAULT_REFRESH_JITTER
    pull_through_cache: str = ""
    image_policy: str = ""

    @cached_property
    def pull_through_rules(self) -> tuple[PullThroughRule, ...]:
        """
        The upstream registries served through ECR pull-through cache rules (``[ecr] pull_through_cache``).

        Parsed at first use, not by :func:`ecr_settings`: a malformed value fails the tasks whose
        images it rewrites, with its one sentence, and leaves the token cache, the secrets backend and
        doctor working.

        :raises EcrConfigurationError: naming the option and the malformed entry.
        """
        from airflow_ecr.images.pull_through import parse_pull_through_cache

        return parse_pull_through_cache(self.pull_through_cache)


@dataclass(frozen=True)
class TokenRetries:
    """
    The retry policy of the ``GetAuthorizationToken`` call (``[ecr] token_retry_mode``,
    ``token_max_attempts``), as botocore ``Config(retries=...)`` takes it.

    :param mode: botocore's retry mode, ``standard`` or ``adaptive``.
    :param max_attempts: attempts in all, the first one included.
    """

    mode: str = DEFAULT_TOKEN_RETRY_MODE
    max_attempts: int = DEFAULT_TOKEN_MAX_ATTEMPTS

    def __post_init__(self) -> None:
        check_token_retry_mode(self.mode)
        check_token_max_attempts(self.max_attempts)

    @property
    def botocore_retries(self) -> dict[str, Any]:
        """The ``retries`` of a botocore ``Config``."""
        return {"mode": self.mode, "total_max_attempts": self.max_attempts}

    @property
    def wait_bound(self) -> float:
        """The most seconds botocore waits between the attempts of one throttled call."""
        return token_retry_wait_bound(self.max_attempts)


def token_retry_wait_bound(max_attempts: int) -> float:
    """
    The longest total wait of botocore's standard retry mode over ``max_attempts`` throttled attempts:
    each wait before attempt ``n + 1`` is drawn from ``[0, min(2 ** (n - 1), 20))`` seconds (full
    jitter), so the sum of those caps bounds the whole (half of it on average). Adaptive mode waits as
    long, plus its client-side rate limiter's pauses.

    :param max_attempts: attempts in all, the first one included.
    """
    return sum(min(2.0**n, BOTOCORE_MAX_BACKOFF) for n in range(max(0, max_attempts - 1)))


def check_refresh_ratio(ratio: float) -> float:
    """
    ``ratio`` if it is a usable refresh ratio.

    :raises EcrConfigurationError: with the sentence that says what to set.
    """
    if not 0 < ratio <= 1:
        from airflow_ecr.exceptions import EcrConfigurationError

        raise EcrConfigurationError(f"[ecr] refresh_ratio must be in (0, 1], got {ratio}: set e.g. 0.5.")
    return ratio


def check_refresh_jitter(jitter: float) -> float:
    """
    ``jitter`` if it is a usable refresh jitter: in [0, 1) (a fraction of the refresh age).

    :raises EcrConfigurationError: with the sentence that says what to set.
    """
    if not 0 <= jitter < 1:
        from airflow_ecr.exceptions import EcrConfigurationError

        raise EcrConfigurationError(
            f"[ecr] refresh_jitter must be in [0, 1), got {jitter}: set e.g. {DEFAULT_REFRESH_JITTER:g}, or 0 for none."
        )
    return jitter


def check_token_retry_mode(mode: str) -> str:
    """
    ``mode`` if botocore's retries can bound its waits (``standard``, ``adaptive``).

    :raises EcrConfigurationError: with the sentence that says what to set.
    """
    if mode not in TOKEN_RETRY_MODES:
        from airflow_ecr.exceptions import EcrConfigurationError

        raise EcrConfigurationError(
            f"[ecr] token_retry_mode must be one of {', '.join(TOKEN_RETRY_MODES)}, got {mode!r}: "
            f"set e.g. {DEFAULT_TOKEN_RETRY_MODE}."
        )
    return mode


def check_token_max_attempts(attempts: object) -> int:
    """
    ``attempts`` as an int if it is a usable number of attempts (1 to 30).

    :raises EcrConfigurationError: with the sentence that says what to set.
    """
    text = str(attempts).strip()
    if isinstance(attempts, bool) or not text.isdigit() or not 1 <= int(text) <= MAX_TOKEN_ATTEMPTS:
        from airflow_ecr.exceptions import EcrConfigurationError

        raise EcrConfigurationError(
            f"[ecr] token_max_attempts must be a whole number from 1 to {MAX_TOKEN_ATTEMPTS}, got {attempts!r}: "
            f"set e.g. {DEFAULT_TOKEN_MAX_ATTEMPTS}."
        )
    return int(text)


def check_identity_recheck(seconds: float) -> float:
    """
    ``[ecr] identity_recheck``: 0 (read the connection in every task process) up to a day.

    :param seconds: the option's value.
    :raises EcrConfigurationError: outside that range.
    """
    if not 0 <= seconds <= MAX_IDENTITY_RECHECK:
        from airflow_ecr.exceptions import EcrConfigurationError

        raise EcrConfigurationError(
            f"[ecr] identity_recheck must be between 0 and {MAX_IDENTITY_RECHECK:g} seconds, got {seconds:g}: "
            f"set e.g. {DEFAULT_IDENTITY_RECHECK:g}."
        )
    return seconds


def _float_option(conf: Any, option: str, default: float) -> float:
    """``[ecr] option`` as a float; one sentence when it is not a number."""
    text = str(conf.get(SECTION, option, fallback=str(default))).strip()
    try:
        return float(text)
    except ValueError:
        from airflow_ecr.exceptions import EcrConfigurationError

        raise EcrConfigurationError(f"[ecr] {option} must be a number, got {text!r}: set e.g. {default:g}.") from None


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


def ecr_settings() -> EcrSettings:
    """
    Read ``[ecr] cache_enabled``, ``cache_dir``, ``refresh_ratio``, ``refresh_jitter``,
    ``lock_timeout``, ``registry_aliases``, ``pull_through_cache``, ``image_policy`` (once per process;
    the last two are parsed at first use, see :attr:`EcrSettings.pull_through_rules` and
    :func:`airflow_ecr.trust.policy.load_image_policy`).

    :raises EcrConfigurationError: for a refresh ratio outside (0, 1], a jitter outside [0, 1) or a
        malformed alias.
    """
    overrides = tuple(map(os.environ.get, _ENV_INPUTS))
    memo = STATE.settings_reads.get("ecr_settings")
    if memo is not None and memo[0] == overrides:
        return memo[1]
    from airflow_ecr._compat import conf

    directory = conf.get(SECTION, "cache_dir", fallback="")
    settings = EcrSettings(
        cache_enabled=conf.getboolean(SECTION, "cache_enabled", fallback=DEFAULT_CACHE_ENABLED),
        cache_dir=Path(directory).expanduser() if directory else None,
        refresh_ratio=check_refresh_ratio(conf.getfloat(SECTION, "refresh_ratio", fallback=DEFAULT_REFRESH_RATIO)),
        lock_timeout=conf.getfloat(SECTION, "lock_timeout", fallback=DEFAULT_LOCK_TIMEOUT),
        registry_aliases=parse_registry_aliases(conf.get(SECTION, "registry_aliases", fallback="")),
        refresh_jitter=check_refresh_jitter(_float_option(conf, "refresh_jitter", DEFAULT_REFRESH_JITTER)),
        pull_through_cache=str(conf.get(SECTION, "pull_through_cache", fallback="")),
        image_policy=str(conf.get(SECTION, "image_policy", fallback="")).strip(),
    )
    STATE.settings_reads["ecr_settings"] = (overrides, settings)
    return settings


def token_retries() -> TokenRetries:
    """
    Read ``[ecr] token_retry_mode`` and ``token_max_attempts`` (once per process, as :func:`ecr_settings`).

    A connection's ``config_kwargs`` with ``retries`` wins over them (see
    :func:`airflow_ecr.tokens.sources.with_token_retries`).

    :raises EcrConfigurationError: for an unknown mode or a number of attempts outside 1 to 30.
    """
    overrides = tuple(map(os.environ.get, _ENV_INPUTS))
    memo = STATE.settings_reads.get("token_retries")
    if memo is not None and memo[0] == overrides:
        return memo[1]
    from airflow_ecr._compat import conf

    mode = str(conf.get(SECTION, "token_retry_mode", fallback=DEFAULT_TOKEN_RETRY_MODE)).strip().lower()
    attempts = conf.get(SECTION, "token_max_attempts", fallback=str(DEFAULT_TOKEN_MAX_ATTEMPTS))
    retries = TokenRetries(check_token_retry_mode(mode), check_token_max_attempts(attempts))
    STATE.settings_reads["token_retries"] = (overrides, retries)
    return retries


def _read_once(option: str, read: Callable[[Any], Any]) -> Any:
    """
    ``read(conf)`` of one ``[ecr] option`` that a warm task never needs (so it is not in
    :func:`ecr_settings`, nor in the variables that function compares on every call): once per
    process, and again only when its ``AIRFLOW__ECR__*`` variable or the configuration file changes.

    :param option: the option's name.
    :param read: reads and checks it from Airflow's configuration.
    """
    inputs = tuple(map(os.environ.get, (f"AIRFLOW__ECR__{option.upper()}", "AIRFLOW_HOME", "AIRFLOW_CONFIG")))
    memo = STATE.settings_reads.get(option)
    if memo is not None and memo[0] == inputs:
        return memo[1]
    from airflow_ecr._compat import conf

    value = read(conf)
    STATE.settings_reads[option] = (inputs, value)
    return value


def identity_recheck() -> float:
    """
    ``[ecr] identity_recheck``: seconds a recorded "connection id -> identity" is trusted before the
    connection is read again. Read when a record is written (not by a warm lookup, which only
    compares the record's own ``valid_until`` with the clock): a new value applies to the records
    written after it.

    :raises EcrConfigurationError: for a value that is not a number from 0 to a day.
    """
    return float(
        _read_once(
            "identity_recheck",
            lambda conf: check_identity_recheck(_float_option(conf, "identity_recheck", DEFAULT_IDENTITY_RECHECK)),
        )
    )


def require_aws_connection() -> bool:
    """
    ``[ecr] require_aws_connection``: whether an ``aws_conn_id`` naming no connection is an error
    instead of a warning (and boto3's default chain). Read only when a connection is missing.
    """
    return bool(
        _read_once(
            "require_aws_connection",
            lambda conf: conf.getboolean(SECTION, "require_aws_connection", fallback=DEFAULT_REQUIRE_AWS_CONNECTION),
        )
    )


def default_aws_conn_id() -> str | None:
    """
    ``[ecr] aws_conn_id``: the AWS connection of the modes no DAG argument reaches (the Kubernetes
    pod mutation hook); empty means boto3's default chain.
    """
    return (
        _read_once(
            "aws_conn_id", lambda conf: str(conf.get(SECTION, "aws_conn_id", fallback=DEFAULT_AWS_CONN_ID)).strip()
        )
        or None
    )
