"""
The host token cache check: the ``[ecr]`` cache settings, then the directory as
:meth:`FileStore.inspect <airflow_ecr.tokens.store.FileStore.inspect>` finds it (the rules are the
store's own; this module only turns its findings into a result).
"""

from __future__ import annotations

from pathlib import Path

from airflow_ecr.doctor.results import Check, CheckId, CheckResult, DoctorState, result
from airflow_ecr.tokens.store import FileStore

CACHE: CheckId = ("host_cache", "Host token cache")


def check_host_cache(state: DoctorState) -> CheckResult:
    """The ``[ecr]`` cache settings and the cache directory's state."""
    from airflow_ecr.exceptions import EcrConfigurationError
    from airflow_ecr.settings import ecr_settings
    from airflow_ecr.tokens.cache import cache_directory

    try:
        directory = cache_directory(ecr_settings())
    except EcrConfigurationError as err:
        return result(CACHE, "fail", str(err), fix="fix the [ecr] section of airflow.cfg", exit_code=err.exit_code)
    if directory is None:
        return result(
            CACHE,
            "info",
            "disabled ([ecr] cache_enabled = False): each task process fetches its own token",
            details={"enabled": False},
        )
    return inspect_cache_dir(directory)


def inspect_cache_dir(directory: Path) -> CheckResult:
    """
    Whether the token cache can work in ``directory`` (nothing is created), as this check's result.

    A cache that cannot work is a warning, not a failure: tasks then fetch tokens without it.

    :param directory: the configured cache directory.
    """
    found = FileStore(directory).inspect()
    return result(CACHE, found.status, found.summary, fix=found.fix, details=found.details)


# The checks of this module, in the order they run (doctor runs every module's CHECKS in turn).
CHECKS = (Check(*CACHE, check_host_cache),)
