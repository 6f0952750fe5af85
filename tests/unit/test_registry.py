"""registry.py: a table of real names, then properties checked by hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_ecr.registry import (
    EcrRegistry,
    ImageReference,
    alias_table,
    declare_alias,
    parse_registry_host,
    region_partition,
    registry_host,
    resolve_host,
    resolve_registry,
    validate_account_id,
    validate_region,
    with_account,
)

A = "123456789012"

# host -> (account, region, dns_suffix, partition, fips, dualstack, public)
HOSTS = {
    f"{A}.dkr.ecr.eu-west-1.amazonaws.com": (A, "eu-west-1", "amazonaws.com", "aws", False, False, False),
    f"{A}.dkr.ecr-fips.us-east-1.amazonaws.com": (A, "us-east-1", "amazonaws.com", "aws", True, False, False),
    f"{A}.dkr.ecr.cn-north-1.amazonaws.com.cn": (
        A,
        "cn-north-1",
        "amazonaws.com.cn",
        "aws-cn",
        False,
        False,
        False,
    ),
    f"{A}.dkr-ecr.us-west-2.on.aws": (A, "us-west-2", "on.aws", "aws", False, True, False),
    f"{A}.dkr-ecr.cn-northwest-1.on.amazonwebservices.com.cn": (
        A,
        "cn-northwest-1",
        "on.amazonwebservices.com.cn",
        "aws-cn",
        False,
        True,
        False,
    ),
    f"{A}.dkr.ecr.eusc-de-east-1.amazonaws.eu": (
        A,
        "eusc-de-east-1",
        "amazonaws.eu",
        "aws-eusc",
        False,
        False,
        False,
    ),
    f"{A}.dkr.ecr.us-gov-west-1.amazonaws.com": (
        A,
        "us-gov-west-1",
        "amazonaws.com",
        "aws-us-gov",
        False,
        False,
        False,
    ),
    f"{A}.dkr.ecr-fips.us-gov-east-1.amazonaws.com": (
        A,
        "us-gov-east-1",
        "amazonaws.com",
        "aws-us-gov",
        True,
        False,
        False,
    ),
    f"{A}.dkr.ecr.us-iso-east-1.c2s.ic.gov": (
        A,
        "us-iso-east-1",
        "c2s.ic.gov",
        "aws-iso",
        False,
        False,
        False,
    ),
    f"{A}.dkr.ecr.us-isob-east-1.sc2s.sgov.gov": (
        A,
        "us-isob-east-1",
        "sc2s.sgov.gov",
        "aws-iso-b",
        False,
        False,
        False,
    ),
    f"{A}.dkr.ecr.eu-isoe-west-1.cloud.adc-e.uk": (
        A,
        "eu-isoe-west-1",
        "cloud.adc-e.uk",
        "aws-iso-e",
        False,
        False,
        False,
    ),
    f"{A}.dkr.ecr.us-isof-south-1.csp.hci.ic.gov": (
        A,
        "us-isof-south-1",
        "csp.hci.ic.gov",
        "aws-iso-f",
        False,
        False,
        False,
    ),
    "public.ecr.aws": ("", "us-east-1", "", "aws", False, False, True),
    "ecr-public.aws.com": ("", "us-east-1", "", "aws", False, False, True),
}


@pytest.mark.parametrize("host", sorted(HOSTS))
def test_parses_every_partition_and_form(host):
    for written in (host, f"https://{host}", f"https://{host}/"):
        reg = parse_registry_host(written)
        fields = (
            reg.account_id,
            reg.region,
            reg.dns_suffix,
            reg.partition,
            reg.fips,
            reg.dualstack,
            reg.public,
        )
        assert fields == HOSTS[host]
        assert reg.host == host


@pytest.mark.parametrize(
    ("image", "host", "repository", "tag", "digest"),
    [
        (
            f"{A}.dkr.ecr.eu-west-1.amazonaws.com/ml/train:2.4",
            f"{A}.dkr.ecr.eu-west-1.amazonaws.com",
            "ml/train",
            "2.4",
            None,
        ),
        (
            f"{A}.dkr.ecr.eu-west-1.amazonaws.com/app",
            f"{A}.dkr.ecr.eu-west-1.amazonaws.com",
            "app",
            "latest",  # Docker's default tag
            None,
        ),
        (
            f"{A}.dkr.ecr.eu-west-1.amazonaws.com/app@sha256:" + "a" * 64,
            f"{A}.dkr.ecr.eu-west-1.amazonaws.com",
            "app",
            None,
            "sha256:" + "a" * 64,
        ),
        (
            f"{A}.dkr.ecr.eu-west-1.amazonaws.com/app:v1@sha256:" + "b" * 64,
            f"{A}.dkr.ecr.eu-west-1.amazonaws.com",
            "app",
            "v1",
            "sha256:" + "b" * 64,
        ),
        (
            f"https://{A}.dkr.ecr.eu-west-1.amazonaws.com/a/b/c:x",
            f"{A}.dkr.ecr.eu-west-1.amazonaws.com",
            "a/b/c",
            "x",
            None,
        ),
        (
            "public.ecr.aws/docker/library/busybox:1.36",
            "public.ecr.aws",
            "docker/library/busybox",
            "1.36",
            None,
        ),
        ("localhost:5000/app:1", "localhost:5000", "app", "1", None),
        ("ubuntu:22.04", "docker.io", "ubuntu", "22.04", None),  # Docker's default host
        ("library/ubuntu", "docker.io", "library/ubuntu", "latest", None),
    ],
)
def test_parse_image(image, host, repository, tag, digest):
    assert ImageReference.parse(image) == ImageReference.parse(image)  # pure
    ref = ImageReference.parse(image)
    assert (ref.host, ref.repository, ref.tag, ref.digest) == (host, repository, tag, digest)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("", "empty"),
        (" app:1", "whitespace"),
        (f"{A}.dkr.ecr.eu-west-1.amazonaws.com/my app:1", "whitespace"),
        (f"{A}.dkr.ecr.eu-west-1.amazonaws.com/App:1", "lowercase"),
        (f"{A}.dkr.ecr.eu-west-1.amazonaws.com/app@sha256:xyz", "malformed digest"),
        (f"{A}.dkr.ecr.eu-west-1.amazonaws.com/app:-bad", "malformed tag"),
        (f"{A}.dkr.ecr.eu-west-1.amazonaws.com/", "invalid repository"),
        (None, "must be a string"),
    ],
)
def test_parse_image_rejects_malformed(image, message):
    with pytest.raises(ValueError, match=message):
        ImageReference.parse(image)


@pytest.mark.parametrize(
    ("image", "kwargs", "message"),
    [
        ("ubuntu:22.04", {}, "has no registry host, so Docker would pull it from Docker Hub"),
        # A spelled-out docker.io is a host like any other (the reference's host_given), as before.
        ("docker.io/library/ubuntu:22.04", {}, r"not on an Amazon ECR host \('docker.io'\) nor on a declared alias"),
        ("ghcr.io/org/app:1", {}, r"nor on a declared alias: declare the alias in \[ecr\] registry_aliases"),
        ("ghcr.io/org/app:1", {"registry_id": A}, "nor on a declared alias"),
        ("1234.dkr.ecr.eu-west-1.amazonaws.com/app:1", {}, "looks like an ECR registry but is malformed"),
        (f"{A}.dkr.ecr.west.amazonaws.com/app:1", {}, "malformed AWS region"),
        (
            f"{A}.dkr.ecr.eu-west-1.amazonaws.com/app:1",
            {"region_name": "us-east-1"},
            "region_name='us-east-1'",
        ),
        (f"{A}.dkr.ecr.eu-west-1.amazonaws.com/app:1", {"registry_id": "999999999999"}, "Drop the override"),
        ("ecr.example.com/app:1", {"registry_id": "12345", "region_name": "eu-west-1"}, "12-digit"),
        ("ecr.example.com/app:1", {"registry_id": A, "region_name": "Europe"}, "not an AWS region"),
    ],
)
def test_resolve_registry_errors_name_the_fix(image, kwargs, message):
    with pytest.raises(ValueError, match=message):
        resolve_registry(image, **kwargs)


ALIASES = alias_table([declare_alias("ecr.example.com", A, "eu-west-1")])


def test_overrides_never_make_a_host_an_alias():
    """Fails on the old code: registry_id + region_name made any host an alias that receives the token."""
    with pytest.raises(ValueError, match=r"'attacker.example.com'\) nor on a declared alias.*registry_aliases"):
        resolve_registry("attacker.example.com/steal:1", registry_id=A, region_name="eu-west-1")


def test_a_declared_alias_resolves_and_overrides_must_agree_with_it():
    reg = resolve_registry("ECR.example.com/app:1", aliases=ALIASES)
    assert reg == EcrRegistry(account_id=A, region="eu-west-1", host="ECR.example.com")
    assert resolve_registry("ecr.example.com/app:1", registry_id=A, region_name="eu-west-1", aliases=ALIASES) == (
        EcrRegistry(account_id=A, region="eu-west-1", host="ecr.example.com")
    )
    with pytest.raises(ValueError, match=r"region_name='us-east-1' but the alias 'ecr\.example\.com' says 'eu-west-1'"):
        resolve_registry("ecr.example.com/app:1", region_name="us-east-1", aliases=ALIASES)
    with pytest.raises(ValueError, match="nor on a declared alias"):
        resolve_registry("other.example.com/app:1", aliases=ALIASES)


@pytest.mark.parametrize(
    ("host", "registry_id", "region", "message"),
    [
        ("", A, "eu-west-1", "not a registry host name"),
        ("my registry", A, "eu-west-1", "not a registry host name"),
        ("reg.example.com\n/", A, "eu-west-1", "not a registry host name"),
        (f"{A}.dkr.ecr.eu-west-1.amazonaws.com", "210987654321", "eu-west-1", "is an Amazon ECR host"),
        ("public.ecr.aws", A, "us-east-1", "is an Amazon ECR host"),
        ("reg.example.com", "12345", "eu-west-1", "12-digit"),
        ("reg.example.com", A, None, "not an AWS region"),
    ],
)
def test_declare_alias_refuses_what_is_not_an_alias(host, registry_id, region, message):
    with pytest.raises(ValueError, match=message):
        declare_alias(host, registry_id, region)


def test_one_alias_declared_for_two_registries_is_refused():
    with pytest.raises(ValueError, match="declared twice"):
        alias_table([declare_alias("r.example.com", A, "eu-west-1"), declare_alias("R.example.com", A, "us-east-1")])


@pytest.mark.parametrize(
    "host",
    [
        f"{A}.dkr.ecr.eu-west-1.amazonaws.com\n/",  # `$` matched before the newline an `ecr:<host>\n/` id leaves
        "\u0661" * 12 + ".dkr.ecr.eu-west-1.amazonaws.com",  # Arabic-Indic digits matched \d
        f"{A}.d\u212ar.ecr.eu-west-1.amazonaws.com",  # the Kelvin sign lowercases to "k"
        f"{A}.dkr.ecr.eu-west-\u0661.amazonaws.com",
        "public.ecr.aw\u0455",
    ],
)
def test_host_parser_is_strict_ascii_and_whole_string(host):
    """Fails on the old code: each of these parsed as an ECR host."""
    with pytest.raises(ValueError, match="ECR"):
        parse_registry_host(host)


# A region of one partition under another partition's DNS suffix: each parsed, and its token came
# from the region's partition while Docker presented it to the suffix's (issue 22, defect 4).
CROSS_PARTITION_HOSTS = [
    f"{A}.dkr.ecr.us-east-1.amazonaws.eu",
    f"{A}.dkr.ecr.us-east-1.amazonaws.com.cn",
    f"{A}.dkr.ecr.cn-north-1.amazonaws.com",
    f"{A}.dkr-ecr.cn-north-1.on.aws",
    f"{A}.dkr-ecr.us-west-2.on.amazonwebservices.com.cn",
    f"{A}.dkr.ecr.eusc-de-east-1.amazonaws.com",
    f"{A}.dkr.ecr.us-gov-west-1.amazonaws.com.cn",
    f"{A}.dkr.ecr.us-iso-east-1.amazonaws.com",
    f"{A}.dkr.ecr.us-isob-east-1.c2s.ic.gov",
    f"{A}.dkr.ecr.eu-west-1.cloud.adc-e.uk",
    f"{A}.dkr.ecr-fips.us-isof-south-1.sc2s.sgov.gov",
]


@pytest.mark.parametrize("host", CROSS_PARTITION_HOSTS)
def test_a_region_under_another_partitions_suffix_is_refused(host):
    """Fails on the old code: each of these parsed, the token minted in the region's partition."""
    with pytest.raises(ValueError, match=r"is in partition .* but the host's suffix .* is partition .*'s"):
        parse_registry_host(host)
    with pytest.raises(ValueError, match="partition"):
        resolve_registry(f"{host}/app:1")


@pytest.mark.parametrize("value", ["\u0661" * 12, A + "\n"])
def test_account_ids_are_twelve_ascii_digits_and_nothing_else(value):
    with pytest.raises(ValueError, match="12-digit"):
        validate_account_id(value)


def test_regions_are_matched_whole():
    with pytest.raises(ValueError, match="not an AWS region"):
        validate_region("eu-west-1\n")


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        (f"{A}.dkr.ecr-fips.us-east-1.amazonaws.com", "210987654321.dkr.ecr-fips.us-east-1.amazonaws.com"),
        # Before, a dual-stack registry's cross-account registry came out as dkr.ecr...on.aws.
        (f"{A}.dkr-ecr.us-west-2.on.aws", "210987654321.dkr-ecr.us-west-2.on.aws"),
    ],
)
def test_with_account_keeps_region_and_form(host, expected):
    other = with_account(parse_registry_host(host), "210987654321")
    assert other.host == expected
    assert parse_registry_host(other.host) == other


# --- properties -------------------------------------------------------------------------------

accounts = st.from_regex(r"\A[0-9]{12}\Z")
regions = st.sampled_from(
    [
        "eu-west-1",
        "us-east-1",
        "ap-southeast-2",
        "cn-north-1",
        "us-gov-west-1",
        "us-iso-east-1",
        "us-isob-east-1",
        "eu-isoe-west-1",
        "us-isof-south-1",
        "eusc-de-east-1",
        "me-central-1",
    ]
)
components = st.from_regex(r"\A[a-z0-9]+(?:[._-][a-z0-9]+){0,2}\Z")
tags = st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}\Z")


@given(accounts, regions, st.lists(components, min_size=1, max_size=3), tags)
def test_round_trip_of_built_names(account, region, path, tag):
    host = registry_host(account, region)
    reg = parse_registry_host(host)
    assert (reg.account_id, reg.region, reg.host) == (account, region, host)
    image = f"{host}/{'/'.join(path)}:{tag}"
    assert resolve_registry(image) == reg
    ref = ImageReference.parse(image)
    assert (ref.host, ref.repository, ref.tag) == (host, "/".join(path), tag)


@settings(max_examples=500)
@given(st.text(max_size=120))
def test_arbitrary_text_parses_or_raises_value_error(text):
    for parse in (parse_registry_host, resolve_registry, ImageReference.parse):
        try:
            result = parse(text)
        except ValueError as err:
            assert str(err)
        else:
            assert result is not None


@settings(max_examples=300)
@given(
    st.from_regex(r"\A[0-9a-z.-]{1,30}\.dkr[.-]ecr(-fips)?\.[a-z0-9-]{1,20}\.(amazonaws\.com|on\.aws|amazonaws\.eu)\Z")
)
def test_near_ecr_hosts_parse_to_valid_registries_or_raise(host):
    try:
        reg = parse_registry_host(host)
    except ValueError:
        return
    assert len(reg.account_id) == 12 and reg.account_id.isdigit()
    assert registry_host(reg.account_id, reg.region)  # the region is well formed
    assert region_partition(reg.region) == reg.partition  # and of the host's partition


# Which registry DNS suffixes each partition's regions live under, written out here (not taken
# from registry.py) so the property below checks the parser against an independent table.
SUFFIXES_OF_PARTITION = {
    "aws": {"amazonaws.com", "on.aws"},
    "aws-us-gov": {"amazonaws.com", "on.aws"},
    "aws-cn": {"amazonaws.com.cn", "on.amazonwebservices.com.cn"},
    "aws-eusc": {"amazonaws.eu"},
    "aws-iso": {"c2s.ic.gov"},
    "aws-iso-b": {"sc2s.sgov.gov"},
    "aws-iso-e": {"cloud.adc-e.uk"},
    "aws-iso-f": {"csp.hci.ic.gov"},
}


@settings(max_examples=300)
@given(accounts, regions, st.sampled_from(sorted(set().union(*SUFFIXES_OF_PARTITION.values()))), st.booleans())
def test_a_host_parses_only_if_its_region_and_suffix_share_a_partition(account, region, suffix, dualstack):
    host = f"{account}.dkr{'-' if dualstack else '.'}ecr.{region}.{suffix}"
    partition = region_partition(region)
    try:
        reg = parse_registry_host(host)
    except ValueError as err:
        assert suffix not in SUFFIXES_OF_PARTITION[partition], err
    else:
        assert suffix in SUFFIXES_OF_PARTITION[partition]
        assert reg.partition == partition


def test_resolve_host_takes_hosts_as_people_write_them():
    expected = resolve_host("ecr.example.com", aliases=ALIASES)
    assert (
        resolve_host(" https://ecr.example.com/ ", registry_id=A, region_name="eu-west-1", aliases=ALIASES) == expected
    )
    assert resolve_host(f"https://{A}.dkr.ecr.eu-west-1.amazonaws.com/").host == f"{A}.dkr.ecr.eu-west-1.amazonaws.com"


@pytest.mark.parametrize(
    ("region", "partition"),
    [
        ("eu-west-1", "aws"),
        ("us-gov-west-1", "aws-us-gov"),
        ("cn-north-1", "aws-cn"),
        ("eusc-de-east-1", "aws-eusc"),
        ("us-iso-east-1", "aws-iso"),
        ("us-isob-east-1", "aws-iso-b"),
    ],
)
def test_region_partition_agrees_with_the_partition_of_the_regions_registry_host(region: str, partition: str) -> None:
    assert region_partition(region) == partition
    assert parse_registry_host(registry_host(A, region)).partition == partition
