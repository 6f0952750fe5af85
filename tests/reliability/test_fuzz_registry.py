"""
Fuzz ``registry.py`` with hypothesis: whatever text (or override) comes in, the parsers return a
valid :class:`EcrRegistry` or raise ``ValueError`` with a message, never another exception.

``tests/unit/test_registry.py`` already feeds arbitrary text to the three parsers and checks they
return *something*; here every result is checked for validity, the overrides and
``with_account`` are fuzzed too, and the text is biased towards near-ECR names, where bugs hide.
(atheris is not used: it needs clang to build on Python 3.11 and adds nothing over hypothesis for
pure, fast functions like these.)
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from airflow_ecr.registry import (
    ECR_PUBLIC_HOSTS,
    EcrRegistry,
    ImageReference,
    alias_table,
    declare_alias,
    parse_registry_host,
    region_partition,
    resolve_host,
    resolve_registry,
    with_account,
)

REGION = re.compile(r"^[a-z]{2,4}(?:-[a-z]+)+-\d{1,2}$")
PARTITIONS = {"aws", "aws-cn", "aws-us-gov", "aws-eusc", "aws-iso", "aws-iso-b", "aws-iso-e", "aws-iso-f"}

# Pieces of real names, glued together at random: most results are almost-ECR names.
PIECES = st.sampled_from(
    [
        "111111111111",
        "12345678901",
        "1234567890123",
        ".dkr.ecr.",
        ".dkr-ecr.",
        ".dkr.ecr-fips.",
        "eu-west-1",
        "us-gov-west-1",
        "cn-north-1",
        "moon-1",
        "EU-WEST-1",
        ".amazonaws.com",
        ".amazonaws.com.cn",
        ".on.aws",
        ".amazonaws.eu",
        ".c2s.ic.gov",
        "public.ecr.aws",
        "ecr-public.aws.com",
        "https://",
        "/",
        ":",
        "@sha256:",
        "a" * 64,
        "app",
        "App",
        "ml/train",
        ":latest",
        " ",
        "\n",
        "..",
        ":443",
        "é",
        "\x00",
    ]
)
NEAR_ECR = st.lists(PIECES, max_size=10).map("".join)
ANY_TEXT = st.one_of(st.text(max_size=200), NEAR_ECR)
OVERRIDE = st.one_of(st.none(), st.just("111111111111"), st.just("eu-west-1"), ANY_TEXT, st.integers())


def assert_valid(registry: object) -> None:
    assert isinstance(registry, EcrRegistry), registry
    assert registry.host and registry.host == registry.host.strip() and "/" not in registry.host
    assert registry.partition in PARTITIONS, registry
    if registry.public:
        assert registry.account_id == "" and registry.region == "us-east-1"
    else:
        assert re.fullmatch(r"\d{12}", registry.account_id), registry
        assert REGION.match(registry.region), registry
        # the token comes from the region's partition: the host must be that partition's too
        assert region_partition(registry.region) == registry.partition, registry
        assert registry.registry_id == registry.account_id


def valid_or_value_error(parse, *args, **kwargs) -> None:
    try:
        result = parse(*args, **kwargs)
    except ValueError as err:
        assert str(err).strip(), "a ValueError must say what is wrong"
        return
    registry = result.registry if hasattr(result, "registry") else result
    assert_valid(registry)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ANY_TEXT)
def test_any_text_gives_a_valid_registry_or_a_value_error(text):
    valid_or_value_error(parse_registry_host, text)
    valid_or_value_error(resolve_registry, text)
    try:
        ref = ImageReference.parse(text)
    except ValueError as err:
        assert str(err).strip()
    else:
        assert ref.repository and (ref.host is None or (ref.host and not any(c.isspace() for c in ref.host)))


@settings(max_examples=1000, deadline=None)
@given(ANY_TEXT, OVERRIDE, OVERRIDE)
@example("", "111111111111", "eu-west-1")  # found by this test: an empty alias host was accepted
@example("my registry", "111111111111", "eu-west-1")
def test_overrides_give_a_valid_registry_or_a_value_error(text, registry_id, region_name):
    valid_or_value_error(resolve_registry, text, registry_id=registry_id, region_name=region_name)
    valid_or_value_error(resolve_host, text, registry_id=registry_id, region_name=region_name)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["111111111111.dkr.ecr.eu-west-1.amazonaws.com", *ECR_PUBLIC_HOSTS]), OVERRIDE)
def test_with_account_gives_a_valid_registry_or_a_value_error(host, account_id):
    valid_or_value_error(with_account, parse_registry_host(host), account_id)


@given(NEAR_ECR)
@settings(max_examples=300, deadline=None)
def test_a_parsed_host_parses_again_to_the_same_registry(text):
    try:
        registry = parse_registry_host(text)
    except ValueError:
        return
    assert parse_registry_host(registry.host) == registry


ALIASES = alias_table([declare_alias("registry.example.com", "111111111111", "eu-west-1")])


@settings(max_examples=1000, deadline=None)
@given(st.one_of(ANY_TEXT, st.sampled_from(["registry.example.com", "REGISTRY.example.com", "attacker.example.com"])),
       OVERRIDE, OVERRIDE)  # fmt: skip
@example("attacker.example.com", "111111111111", "eu-west-1")  # the old code made this an alias
def test_only_ecr_hosts_and_declared_aliases_resolve_whatever_the_overrides(text, registry_id, region_name):
    for resolve, value in ((resolve_host, text), (resolve_registry, f"{text}/app:1")):
        try:
            registry = resolve(value, registry_id=registry_id, region_name=region_name, aliases=ALIASES)
        except ValueError:
            continue
        try:
            own = parse_registry_host(registry.host)
        except ValueError:
            declared = ALIASES[registry.host.lower()]  # a KeyError here: an undeclared host resolved
            assert (registry.account_id, registry.region) == (declared.account_id, declared.region)
        else:
            assert (own.account_id, own.region) == (registry.account_id, registry.region)
