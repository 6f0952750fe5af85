"""
Whether a repository is under a pull-through cache rule, and what its first pull then needs.

A pull-through cache rule maps a repository prefix (``docker-hub``, ``ecr-public``, ...) of a
registry to an upstream registry: the first pull of ``<prefix>/<upstream repository>`` creates the
repository and imports the image, which needs ``ecr:BatchImportUpstreamImage`` and
``ecr:CreateRepository`` besides the pull permissions. Without them the manifest check fails,
and nothing in the registry's answer says why. Doctor asks ECR (``DescribePullThroughCacheRules``
for the registry's account, which needs ``ecr:DescribePullThroughCacheRules``); when it may not,
or ECR does not answer, it says the same in a hedged sentence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow_ecr.doctor.results import DoctorState
from airflow_ecr.hooks.pull_errors import FIRST_PULL_ACTIONS
from airflow_ecr.registry import EcrRegistry

__all__ = ["FIRST_PULL_ACTIONS", "PullThroughCache", "find_rule", "first_pull_advice", "matching_rule"]
# Pages of DescribePullThroughCacheRules read at most (a registry has at most a few dozen rules).
_MAX_PAGES = 5


@dataclass(frozen=True)
class PullThroughCache:
    """
    What doctor found out about the repository and the registry's pull-through cache rules.

    :param rule: the prefix of the rule the repository is under, or None.
    :param upstream: that rule's upstream registry.
    :param unknown: why doctor could not tell (an AWS error code), or None when it could.
    """

    rule: str | None = None
    upstream: str | None = None
    unknown: str | None = None


def matching_rule(repository: str, prefixes: list[tuple[str, str | None]]) -> tuple[str, str | None] | None:
    """
    The rule ``repository`` is under: the longest prefix that is a leading path of it.

    :param repository: the repository, e.g. ``docker-hub/library/busybox``.
    :param prefixes: (prefix, upstream) of each rule.
    """
    under = [(p, u) for p, u in prefixes if repository.startswith(p.rstrip("/") + "/")]
    return max(under, key=lambda rule: len(rule[0]), default=None)


def find_rule(state: DoctorState, registry: EcrRegistry, repository: str) -> PullThroughCache | None:
    """
    Ask ECR whether ``repository`` is under one of the registry's pull-through cache rules.

    :param state: the doctor's state (its AWS connection).
    :param registry: the image's registry (private ECR only).
    :param repository: the image's repository.
    :return: None for a repository that cannot be under a rule (ECR Public, no path prefix).
    """
    from airflow_ecr.tokens.aws_errors import classify
    from airflow_ecr.tokens.sources import EcrTokenSource

    if registry.public or "/" not in repository:
        return None  # a rule's repositories are always <prefix>/<upstream repository>
    try:
        client: Any = EcrTokenSource.from_connection(state.aws_conn_id).client("ecr", registry.region, registry.fips)
        prefixes: list[tuple[str, str | None]] = []
        request: dict[str, Any] = {"registryId": registry.account_id}
        for _ in range(_MAX_PAGES):
            page = client.describe_pull_through_cache_rules(**request)
            prefixes += [
                (r["ecrRepositoryPrefix"], r.get("upstreamRegistryUrl")) for r in page["pullThroughCacheRules"]
            ]
            if not page.get("nextToken"):
                break
            request["nextToken"] = page["nextToken"]
    except Exception as err:
        failure = classify(err)
        if failure.kind in ("no_credentials", "partial_credentials", "no_region"):
            return None  # this host's own configuration, which the token check already judged
        return PullThroughCache(unknown=failure.code)
    rule = matching_rule(repository, prefixes)
    return PullThroughCache(*rule) if rule else PullThroughCache()


def first_pull_advice(found: PullThroughCache | None, repository: str, who: str) -> str | None:
    """
    The sentence the manifest check adds to its fix, or None when no rule is involved.

    :param found: what :func:`find_rule` found.
    :param repository: the image's repository.
    :param who: how doctor names the identity.
    """
    actions = " and ".join(FIRST_PULL_ACTIONS)
    if found is None or (found.unknown is None and found.rule is None):
        return None
    if found.rule is not None:
        upstream = f" (upstream {found.upstream})" if found.upstream else ""
        return (
            f"repository {repository} is under the pull-through cache rule '{found.rule}'{upstream}: its first "
            f"pull creates the repository and imports the image, which needs {actions} for {who}"
        )
    prefix = repository.split("/", 1)[0]
    return (
        f"if '{prefix}' is the prefix of a pull-through cache rule, the first pull also needs {actions} for "
        f"{who} (doctor could not list the rules: {found.unknown}; ecr:DescribePullThroughCacheRules tells)"
    )
