"""``[ecr] pull_through_cache``: parsing the rules, rewriting image names, the first-pull error sentence."""

from __future__ import annotations

import pytest

from airflow_ecr.exceptions import (
    EcrConfigurationError,
    EcrImageNotFoundError,
    EcrPullError,
    EcrRegistryUnavailableError,
)
from airflow_ecr.hooks.pull_errors import FIRST_PULL_ACTIONS, first_pull_error
from airflow_ecr.images.pull_through import PullThroughRule, parse_pull_through_cache, through_cache
from airflow_ecr.settings import ecr_settings

ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
HUB = f"{ECR}/docker-hub"
D = "sha256:" + "a" * 64
RULES = parse_pull_through_cache(
    f"docker.io={HUB}, ghcr.io={ECR}/ghcr\n public.ecr.aws={ECR}/ecr-public,quay.io={ECR}/quay,"
    f"registry.example.com:5000={ECR}/private-upstream"
)


def test_the_option_reads_every_upstream_once_separated_by_commas_or_newlines() -> None:
    assert (
        PullThroughRule("docker.io", ECR, "docker-hub"),
        PullThroughRule("ghcr.io", ECR, "ghcr"),
        PullThroughRule("public.ecr.aws", ECR, "ecr-public"),
        PullThroughRule("quay.io", ECR, "quay"),
        PullThroughRule("registry.example.com:5000", ECR, "private-upstream"),
    ) == RULES
    assert parse_pull_through_cache("") == ()
    # Docker Hub's other names are Docker Hub; hosts are compared lowercased.
    assert parse_pull_through_cache(f"Index.Docker.IO={HUB}/") == (PullThroughRule("docker.io", ECR, "docker-hub"),)


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        # Docker Hub's official images, however they are written, gain the implicit library/.
        ("busybox", f"{HUB}/library/busybox:latest"),
        ("busybox:1.36", f"{HUB}/library/busybox:1.36"),
        ("library/busybox:1.36", f"{HUB}/library/busybox:1.36"),
        ("docker.io/busybox:1.36", f"{HUB}/library/busybox:1.36"),
        ("docker.io/library/busybox:1.36", f"{HUB}/library/busybox:1.36"),
        ("index.docker.io/busybox:1.36", f"{HUB}/library/busybox:1.36"),
        ("registry-1.docker.io/library/busybox:1.36", f"{HUB}/library/busybox:1.36"),
        ("DOCKER.IO/busybox:1.36", f"{HUB}/library/busybox:1.36"),
        # Other namespaces stay as they are; digests and tags are kept.
        ("bitnami/redis:7.2", f"{HUB}/bitnami/redis:7.2"),
        (f"busybox@{D}", f"{HUB}/library/busybox@{D}"),
        (f"busybox:1.36@{D}", f"{HUB}/library/busybox:1.36@{D}"),
        ("ghcr.io/org/tool:v1", f"{ECR}/ghcr/org/tool:v1"),
        ("public.ecr.aws/docker/library/nginx:1", f"{ECR}/ecr-public/docker/library/nginx:1"),
        (f"quay.io/prometheus/node-exporter@{D}", f"{ECR}/quay/prometheus/node-exporter@{D}"),
        ("registry.example.com:5000/team/app:3", f"{ECR}/private-upstream/team/app:3"),
        # Left alone: already on ECR (the cache itself included), another port, a registry with no rule.
        (f"{ECR}/app:1", None),
        (f"{HUB}/library/busybox:1.36", None),
        ("registry.example.com/team/app:3", None),
        ("localhost:5000/app:1", None),
        ("gcr.io/distroless/static:nonroot", None),
    ],
)
def test_images_of_a_configured_upstream_are_pulled_by_their_cache_name(image: str, expected: str | None) -> None:
    rewrite = through_cache(image, RULES)
    assert (rewrite.image if rewrite else None) == expected
    if rewrite is not None:
        assert rewrite.requested == image
        assert rewrite.log_line() == (
            f"Pulling {image} through the ECR pull-through cache as {expected} ([ecr] pull_through_cache)."
        )


def test_a_malformed_name_is_left_alone_for_its_check_to_refuse() -> None:
    # Before the image models were one, docker-py's lenient split rewrote it to {HUB}/library/BusyBox:1.36.
    assert through_cache("BusyBox:1.36", RULES) is None


def test_no_rule_rewrites_nothing() -> None:
    assert through_cache("busybox:1.36", ()) is None


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("docker.io", "entry 'docker.io' lacks the '=' or the repository prefix;"),
        (f"docker.io={ECR}", f"entry 'docker.io={ECR}' lacks the '=' or the repository prefix;"),
        ("docker.io=registry.example.com/docker-hub", "does not name a private ECR registry host right of '='"),
        ("docker.io=public.ecr.aws/docker-hub", "names ECR Public, which has no pull-through cache rules"),
        (f"docker hub={HUB}", "names no upstream registry host left of '=' ('docker hub')"),
        (f"docker.io={ECR}/Docker_Hub", "has no valid repository prefix after the ECR host ('Docker_Hub'"),
        (f"docker.io={HUB}, index.docker.io={ECR}/other", "names the upstream docker.io a second time"),
    ],
)
def test_a_value_that_does_not_parse_is_one_sentence_naming_the_option_and_the_entry(value: str, said: str) -> None:
    with pytest.raises(EcrConfigurationError) as caught:
        parse_pull_through_cache(value)
    message = str(caught.value)
    assert message.startswith("[ecr] pull_through_cache: entry ")
    assert said in message
    assert message.endswith(
        f"fix it, each entry being 'upstream=<ECR registry host>/<repository prefix>', e.g. 'docker.io={HUB}'."
    )
    assert message.replace("e.g. ", "eg ").count(". ") == 0  # one sentence


def test_a_bad_value_fails_only_what_reads_the_rules(monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW__ECR__PULL_THROUGH_CACHE", "docker.io")
    settings = ecr_settings()  # the token cache, the secrets backend and doctor read this: still fine
    assert settings.pull_through_cache == "docker.io"
    with pytest.raises(EcrConfigurationError, match=r"\[ecr\] pull_through_cache: entry 'docker.io'"):
        _ = settings.pull_through_rules
    monkeypatch.setenv("AIRFLOW__ECR__PULL_THROUGH_CACHE", f"docker.io={HUB}")
    assert ecr_settings().pull_through_rules == (PullThroughRule("docker.io", ECR, "docker-hub"),)


def test_a_refused_or_missing_first_pull_names_the_import_permissions() -> None:
    rewrite = through_cache("busybox:1.36", RULES)
    assert rewrite is not None
    said = "manifest unknown: manifest unknown"
    err = first_pull_error(
        EcrImageNotFoundError(f"Image {rewrite.image} was not found. Registry said: {said}"), rewrite
    )
    assert type(err) is EcrImageNotFoundError
    text = str(err)
    assert text.startswith(f"Image busybox:1.36 is pulled through the ECR pull-through cache as {rewrite.image} ")
    assert all(action in text for action in FIRST_PULL_ACTIONS)
    assert "cache rule 'docker-hub'" in text and "from docker.io" in text and said in text
    assert type(first_pull_error(EcrPullError("denied: not authorized"), rewrite)) is EcrPullError
    # An unreachable registry is an outage, not a permission: left as it was.
    outage = EcrRegistryUnavailableError("connection refused")
    assert first_pull_error(outage, rewrite) is outage


# -- the operators -------------------------------------------------------------------------------
def test_a_docker_hub_image_passes_the_parse_time_check_only_with_a_rule(monkeypatch) -> None:
    from airflow_ecr.operators.docker import EcrDockerOperator

    with pytest.raises(EcrConfigurationError, match=r"Docker Hub.*\[ecr\] pull_through_cache"):
        EcrDockerOperator(task_id="t", image="busybox:1.36")
    monkeypatch.setenv("AIRFLOW__ECR__PULL_THROUGH_CACHE", f"docker.io={HUB}")
    op = EcrDockerOperator(task_id="t", image="busybox:1.36", fallback_regions=["eu-central-1"])
    assert op.image == "busybox:1.36"  # the name the DAG gave, until the task runs
    monkeypatch.setenv("AIRFLOW__ECR__PULL_THROUGH_CACHE", "docker.io")
    with pytest.raises(EcrConfigurationError, match=r"^\[ecr\] pull_through_cache: entry 'docker.io'"):
        EcrDockerOperator(task_id="t", image="busybox:1.36")


def test_the_rendered_image_is_rewritten_before_anything_connects_and_its_replicas_follow(monkeypatch) -> None:
    from airflow_ecr.operators.docker import EcrDockerOperator

    monkeypatch.setenv("AIRFLOW__ECR__PULL_THROUGH_CACHE", f"docker.io={HUB}")
    op = EcrDockerOperator(task_id="t", image="{{ params.image }}", fallback_regions=["eu-central-1"],
                           docker_url="unix:///nonexistent.sock")  # fmt: skip
    op.image = "busybox:1.36"  # what rendering produced
    seen: dict[str, object] = {}

    def execute_in_regions(context: object) -> str:
        seen["image"], seen["hook"] = op.image, op.hook
        return "ran"

    monkeypatch.setattr(op, "_execute_in_regions", execute_in_regions)
    assert op.execute({}) == "ran"
    assert seen["image"] == f"{HUB}/library/busybox:1.36"
    hook = seen["hook"]
    assert [r.host for r in hook.registries] == [ECR]  # type: ignore[attr-defined]
    replica = hook.in_registry(hook.fallback_registries[0])  # type: ignore[attr-defined]
    assert replica._target["image"] == "123456789012.dkr.ecr.eu-central-1.amazonaws.com/docker-hub/library/busybox:1.36"
    assert op.image == "busybox:1.36"  # rendered fields show what the DAG gave


def test_a_failed_pull_of_a_rewritten_image_names_the_first_pull_permissions(monkeypatch) -> None:
    from airflow_ecr.operators.docker import EcrDockerOperator

    monkeypatch.setenv("AIRFLOW__ECR__PULL_THROUGH_CACHE", f"docker.io={HUB}")
    op = EcrDockerOperator(task_id="t", image="busybox:1.37")

    def refused(context: object) -> None:
        raise EcrPullError(f"Registry {ECR} rejected the credentials for {op.image}: denied")

    monkeypatch.setattr(op, "_execute_in_regions", refused)
    with pytest.raises(EcrPullError, match="ecr:BatchImportUpstreamImage and ecr:CreateRepository"):
        op.execute({})
    # Without a rule the same error is left as it was.
    plain = EcrDockerOperator(task_id="p", image=f"{ECR}/app:1")
    monkeypatch.setattr(plain, "_execute_in_regions", refused)
    with pytest.raises(EcrPullError) as caught:
        plain.execute({})
    assert "BatchImportUpstreamImage" not in str(caught.value)


def test_doctor_checks_an_upstream_image_by_its_cache_name_as_tasks_pull_it(monkeypatch) -> None:
    from airflow_ecr.doctor import DoctorState

    with pytest.raises(ValueError, match="Docker Hub"):
        DoctorState(image="busybox:1.36")
    monkeypatch.setenv("AIRFLOW__ECR__PULL_THROUGH_CACHE", f"docker.io={HUB}")
    state = DoctorState(image="busybox:1.36")
    assert state.image == f"{HUB}/library/busybox:1.36"
    assert state.registry is not None and state.registry.host == ECR
