"""
Parse image references (:class:`ImageReference`, the one model of an image name) and registry hosts
(into :class:`EcrRegistry` values).

Pure functions, no I/O: this module and :mod:`airflow_ecr.tokens` are the only places that know
what an ECR name looks like. The host patterns follow ``amazon-ecr-credential-helper``: every
partition (commercial, China, EU sovereign, ISO), ``-fips`` endpoints, dual-stack ``dkr-ecr`` /
``on.aws`` hosts, and ECR Public (``public.ecr.aws``, ``ecr-public.aws.com``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

ECR_PUBLIC_HOSTS = ("public.ecr.aws", "ecr-public.aws.com")
# ECR Public hands out tokens from us-east-1 only, whatever region the caller is in.
ECR_PUBLIC_REGION = "us-east-1"
# Where a deployment declares the non-ECR hosts (DNS aliases, pull-through proxies) tokens may go to.
ALIASES_OPTION = "[ecr] registry_aliases"
# Where Docker pulls a name without a registry host from, and the tag a name without tag nor digest means.
DOCKER_HUB = "docker.io"
DEFAULT_TAG = "latest"

# Every pattern is ASCII-only and used with fullmatch: `$` would match before a trailing newline,
# and without re.ASCII `\d` takes any script's digits.
_ACCOUNT_ID = re.compile(r"\d{12}", re.ASCII)
_REGION = re.compile(r"[a-z]{2,4}(?:-[a-z]+)+-\d{1,2}", re.ASCII)

# DNS suffix -> AWS partition. us-gov regions share amazonaws.com with the commercial partition.
_PARTITIONS = {
    "amazonaws.com": "aws",
    "on.aws": "aws",
    "amazonaws.com.cn": "aws-cn",
    "on.amazonwebservices.com.cn": "aws-cn",
    "amazonaws.eu": "aws-eusc",
    "c2s.ic.gov": "aws-iso",
    "sc2s.sgov.gov": "aws-iso-b",
    "cloud.adc-e.uk": "aws-iso-e",
    "csp.hci.ic.gov": "aws-iso-f",
}
# Region prefix -> the registry DNS suffix of its partition, for building canonical hosts.
# Every region with none of these prefixes is commercial (or us-gov), under amazonaws.com.
_REGION_SUFFIXES = (
    ("cn-", "amazonaws.com.cn"),
    ("eusc-", "amazonaws.eu"),
    ("us-isob-", "sc2s.sgov.gov"),
    ("us-isof-", "csp.hci.ic.gov"),
    ("eu-isoe-", "cloud.adc-e.uk"),
    ("us-iso-", "c2s.ic.gov"),
)


def _partition_host_pattern(partition: str) -> re.Pattern[str]:
    """
    The registry hosts of one partition family: its regions under its own DNS suffixes only. A
    region of one partition under another's suffix would get its token from the region's partition
    while Docker presents it to the suffix's hosts.
    """
    suffixes = [suffix for suffix, owner in _PARTITIONS.items() if owner == partition]
    prefixes = [prefix for prefix, suffix in _REGION_SUFFIXES if _PARTITIONS[suffix] == partition]
    if prefixes:
        region = "(?:" + "|".join(map(re.escape, prefixes)) + ")"
    else:  # the commercial family: any region no other partition claims
        region = "(?!" + "|".join(re.escape(prefix) for prefix, _ in _REGION_SUFFIXES) + ")"
    return re.compile(
        r"(?P<account>\d{12})"
        r"\.dkr(?P<sep>[.-])ecr"
        r"(?P<fips>-fips)?"
        rf"\.(?P<region>{region}[a-z0-9][a-z0-9-]*)"
        r"\.(?P<suffix>" + "|".join(map(re.escape, suffixes)) + ")",
        re.ASCII,
    )


# One pattern per partition family (commercial with us-gov, China, EU sovereign, each ISO).
_PARTITION_HOSTS = tuple(_partition_host_pattern(partition) for partition in dict.fromkeys(_PARTITIONS.values()))
# The shape of every partition's hosts at once, only to explain why a host matched none of them.
_ANY_PARTITION_HOST = re.compile(
    r"\d{12}\.dkr[.-]ecr(?:-fips)?\.(?P<region>[a-z0-9][a-z0-9-]*)"
    r"\.(?P<suffix>" + "|".join(map(re.escape, _PARTITIONS)) + ")",
    re.ASCII,
)
# Anything that starts like an ECR host, to tell "malformed ECR host" from "not ECR at all".
_LOOKS_LIKE_ECR = re.compile(r"(^|\.)dkr[.-]ecr(-fips)?\.", re.IGNORECASE | re.ASCII)

# The Docker reference grammar (distribution/reference), enough to split and validate a name.
_HOST_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"{_HOST_COMPONENT}(?:\.{_HOST_COMPONENT})*(?::\d+)?", re.ASCII)
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*", re.ASCII)
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9]{32,}", re.ASCII)


@dataclass(frozen=True)
class EcrRegistry:
    """
    One ECR registry: where tokens come from and which host they are presented to.

    :param account_id: the 12-digit registry id (AWS account); empty for ECR Public.
    :param region: the region whose ECR API issues tokens for this registry.
    :param host: the registry host Docker talks to (an ECR host, or a declared alias).
    :param dns_suffix: the partition's registry DNS suffix, e.g. ``amazonaws.com``.
    :param fips: whether the host is a FIPS endpoint.
    :param dualstack: whether the host is a dual-stack (IPv4 + IPv6) endpoint.
    :param public: whether this is ECR Public.
    """

    account_id: str
    region: str
    host: str
    dns_suffix: str = "amazonaws.com"
    fips: bool = False
    dualstack: bool = False
    public: bool = False

    @property
    def partition(self) -> str:
        """The AWS partition (``aws``, ``aws-cn``, ``aws-us-gov``, ``aws-iso``, ...)."""
        if self.region.startswith("us-gov-"):
            return "aws-us-gov"
        return _PARTITIONS.get(self.dns_suffix, "aws")

    @property
    def registry_id(self) -> str:
        """The id ``GetAuthorizationToken`` takes (the account id); empty for ECR Public."""
        return self.account_id

    def __str__(self) -> str:
        return self.host


@dataclass(frozen=True)
class ImageReference:
    """
    An image reference split as Docker splits it when it pulls: a name without a registry host is
    on Docker Hub (``docker.io``), and a name with neither tag nor digest means the tag ``latest``.

    :param host: the registry host (with port, if any); ``docker.io`` when the name gives none.
    :param repository: the repository inside the registry, e.g. ``ml/train``.
    :param tag: the tag (``latest`` when the name has neither tag nor digest), or None.
    :param digest: the digest the name pins (``sha256:...``), or None.
    :param host_given: whether the name spells its host (False: Docker Hub by default).
    :param tag_given: whether the name spells its tag (False: ``latest`` by default, or a digest only).
        Names that differ only in what they spell out name the same image: neither flag takes part in ``==``.
    """

    host: str
    repository: str
    tag: str | None = None
    digest: str | None = None
    host_given: bool = field(default=True, compare=False)
    tag_given: bool = field(default=True, compare=False)

    @classmethod
    def parse(cls, image: str) -> ImageReference:
        """
        Split an image reference (``[https://]host/repo[:tag][@digest]``) into its parts.

        :param image: the reference, as given to ``DockerOperator(image=...)``.
        :raises ValueError: if the reference is not a valid Docker image reference.
        """
        if not isinstance(image, str):
            raise ValueError(f"Image reference must be a string, got {type(image).__name__}: {image!r}.")
        original = image
        ref = image.strip()
        if not ref or ref != image or any(c.isspace() for c in ref):
            raise ValueError(f"Image reference {original!r} is empty or contains whitespace.")
        for scheme in ("https://", "http://"):
            if ref.startswith(scheme):
                ref = ref[len(scheme) :]
        digest = None
        if "@" in ref:
            ref, digest = ref.split("@", 1)
            if not _DIGEST.fullmatch(digest):
                raise ValueError(
                    f"Image reference {original!r} has a malformed digest {digest!r}: "
                    "expected 'algorithm:hex', e.g. 'sha256:' followed by 64 hex digits."
                )
        host, _, rest = ref.partition("/")
        # Docker's rule: the first component is a host only if it looks like one.
        if rest and ("." in host or ":" in host or host == "localhost"):
            if not _DOMAIN.fullmatch(host):
                raise ValueError(f"Image reference {original!r} has a malformed registry host {host!r}.")
            path = rest
        else:
            host, path = "", ref
        tag = None
        last = path.rsplit("/", 1)[-1]
        if ":" in last:
            path, tag = path.rsplit(":", 1)
            if not _TAG.fullmatch(tag):
                raise ValueError(f"Image reference {original!r} has a malformed tag {tag!r}.")
        components = path.split("/")
        for component in components:
            if not _PATH_COMPONENT.fullmatch(component):
                hint = " (repository names must be lowercase)" if component.lower() != component else ""
                raise ValueError(f"Image reference {original!r} has an invalid repository name {path!r}{hint}.")
        tag_given = tag is not None
        if tag is None and digest is None:
            tag = DEFAULT_TAG
        return cls(host or DOCKER_HUB, path, tag, digest, host_given=bool(host), tag_given=tag_given)

    @property
    def repository_path(self) -> str:
        """``host/repository``: the name the daemon lists in ``RepoDigests`` and ``RepoTags``."""
        return f"{self.host}/{self.repository}"

    @property
    def tagged(self) -> str:
        """``host/repository:tag``: what a pin is looked up by (the default tag spelled out)."""
        return f"{self.repository_path}:{self.tag or DEFAULT_TAG}"

    @property
    def manifest_reference(self) -> str:
        """What to ask the registry's manifest API for: the digest if the name has one, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def name_on_host(self, host: str) -> str:
        """
        This image's full name on ``host`` (a replica's registry, or its own): same repository, tag
        and digest.
        """
        name = f"{host}/{self.repository}" + (f":{self.tag}" if self.tag else "")
        return name + (f"@{self.digest}" if self.digest else "")

    def name_by_digest(self, digest: str) -> str:
        """``host/repository@digest``: the image that exact digest names."""
        return f"{self.repository_path}@{digest}"


def bare_host(host: str) -> str:
    """A registry host as written by people (``https://host/``, spaces) reduced to the host."""
    name = host.strip()
    for scheme in ("https://", "http://"):
        name = name.removeprefix(scheme)
    return name.rstrip("/")


def parse_registry_host(host: str) -> EcrRegistry:
    """
    Parse an ECR registry host (optionally ``https://`` prefixed) into an :class:`EcrRegistry`.

    :param host: e.g. ``123456789012.dkr.ecr.eu-west-1.amazonaws.com`` or ``public.ecr.aws``.
    :raises ValueError: if the host is not an ECR registry host.
    """
    if not isinstance(host, str):
        raise ValueError(f"Registry host must be a string, got {type(host).__name__}: {host!r}.")
    name = bare_host(host)
    # Lowercase ASCII only: str.lower() maps e.g. the Kelvin sign to "k", making a non-ASCII name
    # parse as an ECR host that Docker and DNS would not treat as one.
    lowered = name.lower() if name.isascii() else ""
    if lowered in ECR_PUBLIC_HOSTS:
        return EcrRegistry(account_id="", region=ECR_PUBLIC_REGION, host=name, dns_suffix="", public=True)
    match = next(filter(None, (pattern.fullmatch(lowered) for pattern in _PARTITION_HOSTS)), None)
    if match is None:
        mixed = _ANY_PARTITION_HOST.fullmatch(lowered)
        if mixed is not None and _REGION.fullmatch(mixed["region"]):
            raise ValueError(
                f"{host!r}: region {mixed['region']!r} is in partition {region_partition(mixed['region'])} "
                f"but the host's suffix {mixed['suffix']!r} is partition {_PARTITIONS[mixed['suffix']]}'s: use "
                f"{registry_host(lowered[:12], mixed['region'])!r} or a region of that partition."
            )
        if _LOOKS_LIKE_ECR.search(name):
            raise ValueError(
                f"{host!r} looks like an ECR registry but is malformed: expected "
                "'<12-digit account id>.dkr.ecr.<region>.amazonaws.com' (or another partition's suffix)."
            )
        raise ValueError(
            f"{host!r} is not an Amazon ECR registry host. Use an image in ECR "
            "('<account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag>'), or declare the host as an "
            f"alias in {ALIASES_OPTION}."
        )
    region = match["region"]
    if not _REGION.fullmatch(region):
        raise ValueError(f"{host!r} has a malformed AWS region {region!r} (expected e.g. 'eu-west-1').")
    suffix = match["suffix"]
    return EcrRegistry(
        account_id=match["account"],
        region=region,
        host=name,
        dns_suffix=suffix,
        fips=bool(match["fips"]),
        dualstack=match["sep"] == "-" or suffix.startswith("on."),
    )


def registry_host(account_id: str, region: str) -> str:
    """
    Build the canonical ECR registry host of an account in a region.

    :param account_id: the 12-digit account id.
    :param region: the AWS region.
    :raises ValueError: if either is malformed.
    """
    validate_account_id(account_id)
    validate_region(region)
    return f"{account_id}.dkr.ecr.{region}.{_region_suffix(region)}"


def _region_suffix(region: str) -> str:
    return next((s for prefix, s in _REGION_SUFFIXES if region.startswith(prefix)), "amazonaws.com")


def region_partition(region: str) -> str:
    """The AWS partition of a region (``aws``, ``aws-cn``, ``aws-us-gov``, ``aws-iso``, ...)."""
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return _PARTITIONS[_region_suffix(region)]


def validate_account_id(account_id: object) -> str:
    """Return ``account_id`` if it is a 12-digit string; raise a clear ``ValueError`` otherwise."""
    if not isinstance(account_id, str) or not _ACCOUNT_ID.fullmatch(account_id):
        raise ValueError(f"ECR registry id {account_id!r} is not a 12-digit AWS account id.")
    return account_id


def validate_region(region: object) -> str:
    """Return ``region`` if it looks like an AWS region; raise a clear ``ValueError`` otherwise."""
    if not isinstance(region, str) or not _REGION.fullmatch(region):
        raise ValueError(f"{region!r} is not an AWS region name (expected e.g. 'eu-west-1').")
    return region


def resolve_registry(
    image: str,
    *,
    registry_id: str | None = None,
    region_name: str | None = None,
    aliases: Mapping[str, EcrRegistry] | None = None,
) -> EcrRegistry:
    """
    Find the ECR registry an image is pulled from.

    :param image: the image reference.
    :param registry_id: the registry's account id; must agree with the image's host.
    :param region_name: the registry's region; must agree with the image's host.
    :param aliases: the declared aliases (:func:`alias_table`), the only non-ECR hosts accepted.
    :raises ValueError: if the image is not in ECR nor on a declared alias.
    """
    ref = ImageReference.parse(image)
    if not ref.host_given:
        raise ValueError(
            f"Image {image!r} has no registry host, so Docker would pull it from Docker Hub. "
            "Use the full ECR name: '<account>.dkr.ecr.<region>.amazonaws.com/"
            f"{ref.repository}', or pull Docker Hub's images through an ECR pull-through cache rule "
            "declared in [ecr] pull_through_cache ('docker.io=<ECR registry host>/<rule prefix>')."
        )
    return resolve_host(
        ref.host, registry_id=registry_id, region_name=region_name, aliases=aliases, subject=f"Image {image!r}"
    )


def resolve_host(
    host: str,
    *,
    registry_id: str | None = None,
    region_name: str | None = None,
    aliases: Mapping[str, EcrRegistry] | None = None,
    subject: str | None = None,
) -> EcrRegistry:
    """
    Find the ECR registry behind a registry host.

    An ECR host stands for itself. Any other host (a DNS alias or proxy in front of ECR) is
    accepted only if it is a declared alias: the token is presented to that host, so it must come
    from configuration the deployment controls, never from ``registry_id`` / ``region_name``
    arguments, which a template may have rendered from DAG-run conf. Given overrides must agree
    with the host (or the alias).

    :param host: the registry host.
    :param registry_id: the registry's account id, checked against the host.
    :param region_name: the registry's region, checked against the host.
    :param aliases: the declared aliases (:func:`alias_table`).
    :param subject: how error messages name what is being resolved.
    :raises ValueError: if the host is neither ECR nor a declared alias.
    """
    host = bare_host(host)
    subject = subject or f"Registry {host!r}"
    if registry_id is not None:
        validate_account_id(registry_id)
    if region_name is not None:
        validate_region(region_name)
    what = "host"
    try:
        registry = parse_registry_host(host)
    except ValueError as err:
        if _LOOKS_LIKE_ECR.search(host):
            raise ValueError(f"{subject}: {err}") from None
        alias = (aliases or {}).get(host.lower()) if host.isascii() else None
        if alias is None:
            raise ValueError(
                f"{subject} is not on an Amazon ECR host ({host!r}) nor on a declared alias: declare "
                f"the alias in {ALIASES_OPTION} ('{host}=<12-digit account id>:<region>') or in an "
                "ecr_docker connection (its host, registry_id and region_name), or use a plain DockerOperator."
            ) from None
        # Docker matches credentials to the host as the image spells it.
        registry, what = replace(alias, host=host), f"alias {host!r}"
    if registry.public:
        return registry
    conflicts = [
        f"{name}={given!r} but the {what} says {actual!r}"
        for name, given, actual in (
            ("registry_id", registry_id, registry.account_id),
            ("region_name", region_name, registry.region),
        )
        if given is not None and given != actual
    ]
    if conflicts:
        raise ValueError(f"{subject}: " + "; ".join(conflicts) + ". Drop the override.")
    return registry


def declare_alias(host: str, registry_id: str, region_name: str) -> EcrRegistry:
    """
    The registry a deployment-declared alias host stands for.

    Call it only with configuration the deployment or DAG author controls (``[ecr]
    registry_aliases``, an ``ecr_docker`` connection, the secrets backend's settings).

    :param host: the alias host, e.g. ``registry.example.com`` (optionally ``https://`` prefixed).
    :param registry_id: the 12-digit account id of the ECR registry behind it.
    :param region_name: that registry's region.
    :raises ValueError: if the host is not a registry host name, is an ECR host, or an id is malformed.
    """
    name = bare_host(host) if isinstance(host, str) else host
    if not isinstance(name, str) or not _DOMAIN.fullmatch(name):
        raise ValueError(f"Alias {host!r} is not a registry host name (expected e.g. 'registry.example.com').")
    if _LOOKS_LIKE_ECR.search(name) or name.lower() in ECR_PUBLIC_HOSTS:
        raise ValueError(f"Alias {host!r} is an Amazon ECR host: it needs no alias, drop it.")
    return EcrRegistry(
        account_id=validate_account_id(registry_id),
        region=validate_region(region_name),
        host=name.lower(),
        dns_suffix=_region_suffix(region_name),
    )


def alias_table(aliases: Iterable[EcrRegistry]) -> dict[str, EcrRegistry]:
    """
    Declared aliases (from :func:`declare_alias`) keyed by lowercased host, as ``aliases=`` takes them.

    :raises ValueError: if one host is declared for two registries.
    """
    table: dict[str, EcrRegistry] = {}
    for alias in aliases:
        key = alias.host.lower()
        if table.get(key, alias) != alias:
            raise ValueError(f"Alias {alias.host!r} is declared twice, for different registries: keep one.")
        table[key] = alias
    return table


def with_account(registry: EcrRegistry, account_id: str) -> EcrRegistry:
    """
    The registry of another account in the same region and partition (for cross-account ids).

    :param registry: a registry of the same region and partition.
    :param account_id: the other registry's 12-digit id.
    """
    validate_account_id(account_id)
    host = _host_like(registry, account_id, registry.region)
    suffix = registry.dns_suffix or _region_suffix(registry.region)
    return replace(registry, account_id=account_id, host=host, public=False, dns_suffix=suffix)


def _host_like(registry: EcrRegistry, account_id: str, region: str) -> str:
    """The ECR host of ``account_id`` in ``region`` in the form of ``registry``'s (FIPS, dual-stack, suffix)."""
    sep = "-" if ".dkr-ecr" in registry.host.lower() else "."  # dual-stack: <account>.dkr-ecr.<region>.on.aws
    fips = "-fips" if registry.fips else ""
    suffix = registry.dns_suffix or _region_suffix(region)
    return f"{account_id}.dkr{sep}ecr{fips}.{region}.{suffix}"


def in_region(registry: EcrRegistry, region: str) -> EcrRegistry:
    """
    The same account's registry in another region of its partition: where ECR replication puts a
    replica of its repositories (same repository names, same digests).

    :param registry: a private registry (an ECR host or a declared alias of one).
    :param region: the other region.
    :raises ValueError: a malformed region, the registry's own region, another partition, or ECR Public.
    """
    validate_region(region)
    if registry.public:
        raise ValueError("ECR Public has no regional replicas: drop fallback_regions for this image.")
    if region == registry.region:
        raise ValueError(f"fallback region {region} is the image's own region: list other regions only.")
    if region_partition(region) != registry.partition:
        raise ValueError(
            f"fallback region {region} is in partition {region_partition(region)}, the image's registry in "
            f"{registry.partition}: ECR replicates within a partition only."
        )
    return replace(registry, region=region, host=_host_like(registry, registry.account_id, region))


def fallback_registries(registry: EcrRegistry, regions: object) -> list[EcrRegistry]:
    """
    The replicas to pull from, in order, when ``registry``'s region fails.

    :param registry: the image's registry.
    :param regions: the ``fallback_regions`` argument: a list of region names (or a comma-separated string).
    :raises ValueError: with one sentence naming what to fix.
    """
    if regions is None:
        return []
    if isinstance(regions, str):
        regions = [r.strip() for r in regions.split(",") if r.strip()]
    if not isinstance(regions, (list, tuple)) or not all(isinstance(r, str) for r in regions):
        raise ValueError(f"fallback_regions must be a list of AWS region names, got {regions!r}.")
    return [in_region(registry, region) for region in dict.fromkeys(regions)]
