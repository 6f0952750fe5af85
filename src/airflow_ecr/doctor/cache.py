"""
The host token cache check: the ``[ecr]`` cache settings, then the directory as
:meth:`FileStore.inspect <airflow_ecr.tokens.store.FileStore.inspect>` finds it. The rules are the
store's own (:mod:`airflow_ecr.tokens.private_files`); this module only words its problem codes for
doctor's report (a task's log words them in :mod:`airflow_ecr.tokens.store`).
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path
from typing import Any

from airflow_ecr.doctor.results import Check, CheckId, CheckResult, DoctorState, result
from airflow_ecr.tokens.private_files import DirectoryProblem
from airflow_ecr.tokens.store import FileStore

CACHE: CheckId = ("host_cache", "Host token cache")
CACHE_DIR_SETTING = "[ecr] cache_dir (AIRFLOW__ECR__CACHE_DIR)"


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
    problem, facts = FileStore(directory).inspect()
    details = _details(directory, facts)
    if problem is not None:
        summary, fix = report(problem)
        return result(CACHE, "warn", summary, fix=fix, details=details)
    if not facts.get("exists"):
        return result(
            CACHE, "ok", f"{directory} does not exist yet; it is created (mode 0700) on first use", details=details
        )
    return result(
        CACHE,
        "ok",
        f"{directory} (mode {facts['mode']:04o}, owner {_user(facts['uid'])}, {facts['entries']} token(s))",
        details=details,
    )


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _details(directory: Path, facts: dict[str, Any]) -> dict[str, Any]:
    """The facts for machines: users by name, the mode in octal."""
    details: dict[str, Any] = {"enabled": True, "directory": str(directory)}
    if "symlink_to" in facts:
        details.update(symlink_to=facts["symlink_to"], link_owner=_user(facts["link_uid"]))
    if "exists" in facts:
        details["exists"] = facts["exists"]
    if "uid" in facts:
        details.update(owner=_user(facts["uid"]), mode=f"{facts['mode']:04o}")
    if "entries" in facts:
        details["entries"] = facts["entries"]
    return details


def report(problem: DirectoryProblem) -> tuple[str, str]:
    """
    doctor's wording of a problem code: the summary and the fix.

    :param problem: what :meth:`FileStore.inspect <airflow_ecr.tokens.store.FileStore.inspect>` found.
    """
    path, setting = problem.path, CACHE_DIR_SETTING
    match problem.kind:
        case "cannot_examine":
            return f"cannot inspect {path}: {problem.error}", f"fix it or set {setting}"
        case "cannot_create":
            return (
                f"{path} does not exist and cannot be created: {problem.parent} is not writable by this user",
                f"create it (mkdir -m 700 {path}) or set {setting}; until then every task fetches its own token",
            )
        case "foreign_link":
            return (
                f"{path} is a symbolic link of {_user(problem.uid)}, not of this user ({_user(os.geteuid())}): "
                "the cache is off",
                f"set {setting} to a directory of this user, or remove the link",
            )
        case "dangling_link":
            return (
                f"{path} is a symbolic link to {problem.target}, which does not exist",
                f"create the target (mkdir -m 700), remove the link, or set {setting}",
            )
        case "not_directory":
            return f"{path} is not a directory", f"remove it or set {setting}"
        case "foreign_owner":
            return (
                f"{path} belongs to {_user(problem.uid)}, not to this user ({_user(os.geteuid())}): the cache is off",
                f"run tasks as its owner, chown it, or set {setting} to a directory of this user",
            )
        case "open_mode":
            return (
                f"{path} has mode {problem.mode:04o}, open to other users: the cache is off (tokens are secrets)",
                f"chmod 700 {path}",
            )
        case "not_writable":
            return f"{path} is not writable: the cache is off", f"chmod 700 {path}"
        case "exposed_files":
            return (
                f"{problem.count} cache file(s) in {path} are readable by others and ignored",
                f"chmod 600 {path}/*.json (or delete them)",
            )
    return f"{path}: {problem.kind}", f"fix it or set {setting}"


CHECKS = (Check(*CACHE, check_host_cache),)
