"""
Images of other registries pulled through an ECR pull-through cache (``[ecr] pull_through_cache``). Pure.

An ECR pull-through cache rule serves ``<upstream registry>/<repository>`` as
``<ECR host>/<prefix>/<repository>``: Docker Hub's ``busybox:1.36`` is
``123456789012.dkr.ecr.eu-west-1.amazonaws.com/docker-hub/library/busybox:1.36`` under a rule with
the prefix ``docker-hub``. ECR cannot serve it under its upstream name, so the image name itself has
to change: :func:`through_cache` does that for every mode (Docker operators, the pin operator,
Kubernetes pods), from the rules :func:`parse_pull_through_cache` reads.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from airflow_ecr.registry import DOCKER_HUB, ImageReference, parse_registry_host

OPTION = "[ecr] pull_through_cache"
EXAMPLE = "docker.io=123456789012.dkr.ecr.eu-west-1.amazonaws.com/docker-hub"
# The names Docker Hub goes by in image names; ImageReference turns a bare name into docker.io, but
# not index.docker.io nor registry-1.docker.io (the host the daemon really talks to).
_DOCKER_HUB_HOSTS = frozenset({DOCKER_HUB, "index.docker.io", "registry-1.docker.io"})
# Official images live in Docker Hub's ``library`` namespace: ``busybox`` is ``library/busybox``, and
# the cache knows them only by that full name.
_OFFICIAL_NAMESPACE = "library"
# A registry host, with an optional port: what may stand left of '/' in an image name.
_UPSTREAM = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*(?::[0-9]{1,5})?")
# ECR repository names (and so rule prefixes): lowercase path components joined by . _ -
_PREFIX = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*")


@dataclass(frozen=True)
class PullThroughRule:
    """
    One upstream registry served through an ECR pull-through cache rule.

    :param upstream: the upstream registry host as images name it (``docker.io`` for Docker Hub).
    :param registry: the ECR registry host that has the rule.
    :param prefix: the rule's repository prefix (``docker-hub``).
    """

    upstream: str
    registry: str
    prefix: str

    @property
    def cache(self) -> str:
        """``<ECR host>/<prefix>``: what the upstream's repositories are found under."""
        return f"{self.registry}/{self.prefix}"


@dataclass(frozen=True)
class Rewrite:
    """
    An image name rewritten to its pull-through cache name.

    :param image: the image to pull: in the ECR registry, under the rule's prefix (tag and digest kept).
    :param requested: the image as given (``busybox:1.36``).
    :param rule: the rule that rewrote it.
    """

    image: str
    requested: str
    rule: PullThroughRule

    def log_line(self, doing: str = "Pulling") -> str:
        """
        The one line a task logs about it.

        :param doing: what the task does with the image (``Pulling``, ``Resolving``).
        """
        return f"{doing} {self.requested} through the ECR pull-through cache as {self.image} ({OPTION})."


def upstream_host(host: str) -> str:
    """``host`` as rules name it: lowercased, and ``docker.io`` for each of Docker Hub's names.

    :param host: a registry host from an image name or a rule.
    """
    lowered = host.strip().lower()
    return DOCKER_HUB if lowered in _DOCKER_HUB_HOSTS else lowered


def parse_pull_through_cache(text: str) -> tuple[PullThroughRule, ...]:
    """
    ``[ecr] pull_through_cache``: ``upstream=<ECR registry host>/<prefix>`` entries separated by
    commas or newlines, e.g. ``docker.io=123456789012.dkr.ecr.eu-west-1.amazonaws.com/docker-hub``.

    :param text: the option's value (empty: no rule).
    :raises EcrConfigurationError: one sentence naming the option and the entry to fix.
    """
    rules: dict[str, PullThroughRule] = {}
    for entry in filter(None, (e.strip() for e in text.replace("\n", ",").split(","))):
        upstream, equals, target = (part.strip() for part in entry.partition("="))
        host, slash, prefix = target.removeprefix("https://").strip("/").partition("/")
        problem = None
        if not equals or not slash:
            problem = "lacks the '=' or the repository prefix"
        elif not _UPSTREAM.fullmatch(upstream.lower()):
            problem = f"names no upstream registry host left of '=' ({upstream!r})"
        elif not _PREFIX.fullmatch(prefix):
            problem = f"has no valid repository prefix after the ECR host ({prefix!r}: lowercase, e.g. docker-hub)"
        elif upstream_host(upstream) in rules:
            problem = f"names the upstream {upstream_host(upstream)} a second time"
        else:
            try:
                registry = parse_registry_host(host)
            except ValueError:
                problem = f"does not name a private ECR registry host right of '=' ({host!r})"
            else:
                if registry.public:
                    problem = "names ECR Public, which has no pull-through cache rules: use a private registry"
        if problem is not None:
            from airflow_ecr.exceptions import EcrConfigurationError

            raise EcrConfigurationError(
                f"{OPTION}: entry {entry!r} {problem}; fix it, each entry being "
                f"'upstream=<ECR registry host>/<repository prefix>', e.g. '{EXAMPLE}'."
            )
        rules[upstream_host(upstream)] = PullThroughRule(upstream_host(upstream), host.lower(), prefix)
    return tuple(rules.values())


def through_cache(image: str, rules: Sequence[PullThroughRule]) -> Rewrite | None:
    """
    ``image`` as pulled through the rule for its registry, or None when no rule is for its registry
    (an image already in ECR, or on a registry with no rule: left alone).

    Docker Hub's official images gain their implicit ``library/`` (``busybox:1.36`` becomes
    ``<cache>/library/busybox:1.36``); the tag and digest are kept as given (no tag: ``latest``).

    :param image: the image as rendered.
    :param rules: the rules in effect (``ecr_settings().pull_through_rules``).
    """
    if not rules:
        return None
    try:
        name = ImageReference.parse(image)
    except ValueError:
        return None  # not an image name: left alone, for the check or the daemon that reads it to say so
    upstream = upstream_host(name.host)
    rule = next((r for r in rules if r.upstream == upstream), None)
    if rule is None:
        return None
    repository = name.repository
    if upstream == DOCKER_HUB and "/" not in repository:
        repository = f"{_OFFICIAL_NAMESPACE}/{repository}"
    cached = ImageReference(rule.registry, f"{rule.prefix}/{repository}", name.tag, name.digest)
    return Rewrite(cached.name_on_host(rule.registry), image, rule)
