"""The image policy file (``[ecr] image_policy``): validation, scopes, a DAG's tightening, fingerprints."""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any

import pytest

from airflow_ecr.exceptions import EcrConfigurationError
from airflow_ecr.registry import ImageReference
from airflow_ecr.settings import EcrSettings, ecr_settings
from airflow_ecr.trust.policy import ImagePolicy, ImageRule, SignatureRule, effective_rule, load_image_policy
from airflow_ecr.trust.scan import AllowedFinding, ScanRule

ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
KMS = "awskms:///arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ALLOW = {"id": "CVE-2024-1234", "expires": "2027-03-01", "reason": "not reachable from the entry point"}


def ml_prod(**changes: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "name": "ml-prod",
        "scopes": [f"{ECR}/ml/*"],
        "scan": {
            "failAt": "HIGH",
            "onlyFixAvailable": False,
            "allow": [ALLOW, {"id": "CVE-2024-9999", "expires": "2026-12-31", "reason": "vendor fix pending"}],
            "pendingWaitSeconds": 120,
            "onUnsupported": "fail",
            "onUnavailable": "fail",
            "refreshSeconds": 3600,
        },
        "signature": {
            "notation": {"trustPolicy": "notation/trustpolicy.json", "trustStore": "notation"},
            "cosign": {"keys": ["cosign.pub", KMS]},
        },
    }
    rule.update(changes)
    return rule


def write_policy(directory: Path, *rules: dict[str, Any], **top: Any) -> Path:
    store = directory / "notation" / "x509" / "ca" / "acme"
    store.mkdir(parents=True, exist_ok=True)
    (store / "root.crt").write_text("root certificate")
    (directory / "notation" / "trustpolicy.json").write_text('{"version": "1.0", "trustPolicies": []}')
    (directory / "cosign.pub").write_text("public key")
    path = directory / "image-policy.json"
    path.write_text(json.dumps({"version": "1", "rules": list(rules), **top}))
    return path


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    return write_policy(tmp_path, ml_prod())


@pytest.fixture
def rule(policy_file: Path) -> ImageRule:
    return ImagePolicy.load(policy_file).rules[0]


def test_a_full_rule_reads_into_the_model_with_paths_relative_to_the_file(tmp_path: Path) -> None:
    path = write_policy(tmp_path, ml_prod())
    policy = ImagePolicy.load(path)
    assert policy.path == path
    assert policy.rules == (
        ImageRule(
            "ml-prod",
            (f"{ECR}/ml/*",),
            ScanRule(
                fail_at="HIGH",
                only_fix_available=False,
                allow=(
                    AllowedFinding("CVE-2024-1234", datetime.date(2027, 3, 1), "not reachable from the entry point"),
                    AllowedFinding("CVE-2024-9999", datetime.date(2026, 12, 31), "vendor fix pending"),
                ),
                pending_wait_seconds=120.0,
                on_unsupported="fail",
                on_unavailable="fail",
                refresh_seconds=3600.0,
            ),
            SignatureRule(
                tmp_path / "notation" / "trustpolicy.json",
                tmp_path / "notation",
                (str(tmp_path / "cosign.pub"), KMS),
            ),
            origin=str(path),
        ),
    )


def test_unwritten_scan_fields_take_their_defaults_and_absolute_paths_stay(tmp_path: Path) -> None:
    path = write_policy(
        tmp_path,
        {"scopes": ["*"], "scan": {}, "signature": {"cosign": {"keys": ["/etc/airflow/cosign.pub"]}}},
    )
    (rule,) = ImagePolicy.load(path).rules
    assert rule.name == "#1"
    assert rule.scan == ScanRule()
    assert rule.signature == SignatureRule(None, None, ("/etc/airflow/cosign.pub",))


def test_the_first_rule_whose_scope_matches_applies_and_no_match_means_no_policy(tmp_path: Path) -> None:
    path = write_policy(
        tmp_path,
        ml_prod(name="ml-train", scopes=[f"{ECR}/ml/train"]),
        ml_prod(name="ml", scopes=[f"{ECR}/ml/*", f"{ECR}/shared/base"]),
        ml_prod(name="eu-west-1", scopes=["*.dkr.ecr.eu-west-1.amazonaws.com/*"]),
        ml_prod(name="everything", scopes=["*"]),
    )
    policy = ImagePolicy.load(path)

    def applied(image: str) -> str | None:
        found = policy.rule_for(ImageReference.parse(image))
        return found.name if found else None

    assert applied(f"{ECR}/ml/train:1") == "ml-train"
    assert applied(f"{ECR}/ml/train@sha256:" + "a" * 64) == "ml-train"
    assert applied(f"{ECR}/ml/serve:1") == "ml"
    # '*' crosses '/': a scope covers the repositories below its prefix at any depth.
    assert applied(f"{ECR}/ml/team/a/b:1") == "ml"
    assert applied(f"{ECR}/shared/base:1") == "ml"
    assert applied(f"{ECR}/shared/base-extra:1") == "eu-west-1"
    assert applied(f"{ECR.upper()}/other:1") == "eu-west-1"  # hosts compare without case
    assert applied("busybox:1.36") == "everything"
    assert ImagePolicy.load(write_policy(tmp_path, ml_prod())).rule_for(ImageReference.parse("busybox")) is None


@pytest.mark.parametrize(
    ("document", "sentence"),
    [
        ("[]", "Image policy {path}: the file must be a JSON object, got []."),
        ({"rules": []}, "Image policy {path}: version null is not '1'."),
        ({"version": 1, "rules": []}, "Image policy {path}: version 1 is not '1'."),
        ({"version": "1"}, "Image policy {path}: rules must be a list, got null."),
        (
            {"version": "1", "rules": [], "rule": []},
            "Image policy {path}: rule is not a field of the policy (expected version, rules).",
        ),
        (
            {"version": "1", "rules": ["x"]},
            "Image policy {path}, rule #1: the rule must be a JSON object, got 'x'.",
        ),
        (
            {"version": "1", "rules": [ml_prod(), ml_prod()]},
            "Image policy {path}, rule 'ml-prod': name is used by more than one rule.",
        ),
    ],
)
def test_every_malformed_document_is_one_sentence_naming_the_file(tmp_path: Path, document: Any, sentence: str) -> None:
    path = write_policy(tmp_path)
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    with pytest.raises(EcrConfigurationError) as raised:
        ImagePolicy.load(path)
    assert str(raised.value) == sentence.format(path=path)


def without(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != key}


def scan(**fields: Any) -> dict[str, Any]:
    return ml_prod(scan={**ml_prod()["scan"], **fields})


@pytest.mark.parametrize(
    ("rule", "sentence"),
    [
        (
            ml_prod(scan={"failAt": "SEVERE"}),
            "scan.failAt 'SEVERE' is not one of CRITICAL, HIGH, MEDIUM, LOW, INFORMATIONAL, UNDEFINED.",
        ),
        (
            ml_prod(scan={"failAt": 3}),
            "scan.failAt 3 is not one of CRITICAL, HIGH, MEDIUM, LOW, INFORMATIONAL, UNDEFINED.",
        ),
        (
            ml_prod(scan={"failat": "HIGH"}),
            "scan.failat is not a field of scan (expected failAt, onlyFixAvailable, "
            "allow, pendingWaitSeconds, onUnsupported, onUnavailable, refreshSeconds).",
        ),
        (ml_prod(scan=[]), "scan must be a JSON object, got []."),
        (scan(onlyFixAvailable="yes"), "scan.onlyFixAvailable must be true or false, got 'yes'."),
        (scan(pendingWaitSeconds=-1), "scan.pendingWaitSeconds must be a number of seconds of 0 or more, got -1."),
        (scan(refreshSeconds="1h"), "scan.refreshSeconds must be a number of seconds of 0 or more, got '1h'."),
        (scan(refreshSeconds=True), "scan.refreshSeconds must be a number of seconds of 0 or more, got true."),
        (scan(onUnsupported="skip"), "scan.onUnsupported 'skip' is not one of fail, pass."),
        (scan(onUnavailable=None), "scan.onUnavailable null is not one of fail, pass."),
        (scan(allow={}), "scan.allow must be a list, got {}."),
        (scan(allow=[without(ALLOW, "reason")]), "scan.allow[0].reason must be a non-empty string, got null."),
        (scan(allow=[{**ALLOW, "reason": " "}]), "scan.allow[0].reason must be a non-empty string, got ' '."),
        (scan(allow=[without(ALLOW, "id")]), "scan.allow[0].id must be a non-empty string, got null."),
        (
            scan(allow=[{**ALLOW, "expires": "next year"}]),
            "scan.allow[0].expires must be an ISO date such as 2027-03-01, got 'next year'.",
        ),
        (
            scan(allow=[without(ALLOW, "expires")]),
            "scan.allow[0].expires must be an ISO date such as 2027-03-01, got null.",
        ),
        (
            scan(allow=[{**ALLOW, "expiry": "2027-03-01"}]),
            "scan.allow[0].expiry is not a field of an allow entry (expected id, expires, reason).",
        ),
        (scan(allow=[ALLOW, ALLOW]), "scan.allow[1].id 'CVE-2024-1234' is listed twice."),
        (ml_prod(signature={}), "signature names neither notation nor cosign."),
        (
            ml_prod(signature={"notary": {}}),
            "signature.notary is not a field of signature (expected notation, cosign).",
        ),
        (
            ml_prod(signature={"notation": {"trustPolicy": "trustpolicy.json"}}),
            "signature.notation.trustStore must be a non-empty string, got null.",
        ),
        (
            ml_prod(signature={"notation": {"trustPolicy": "p.json", "trustStore": "s", "level": "strict"}}),
            "signature.notation.level is not a field of signature.notation (expected trustPolicy, trustStore).",
        ),
        (
            ml_prod(signature={"cosign": {"keys": []}}),
            "signature.cosign.keys is empty: name a public key file or an awskms:/// key.",
        ),
        (
            ml_prod(signature={"cosign": {"key": "k.pub"}}),
            "signature.cosign.key is not a field of signature.cosign (expected keys).",
        ),
        (
            ml_prod(signature={"cosign": {"keys": ["gcpkms://projects/p/keys/k"]}}),
            "signature.cosign.keys[0] 'gcpkms://projects/p/keys/k' is neither a public key file nor an "
            "awskms:/// key URI.",
        ),
        (without(without(ml_prod(), "scan"), "signature"), "the rule has neither scan nor signature."),
        (ml_prod(scope=["*"]), "scope is not a field of a rule (expected name, scopes, scan, signature)."),
        (ml_prod(scopes=[]), f"scopes is empty: name the images, e.g. {ECR}/ml/*."),
        (without(ml_prod(), "scopes"), "scopes must be a list, got null."),
        (
            ml_prod(scopes=[f"{ECR}/ml/train:latest"]),
            f"scopes[0] '{ECR}/ml/train:latest' is not a 'host/repository' pattern (no tag or digest), "
            f"e.g. {ECR}/ml/*, or '*' for every image.",
        ),
        (
            ml_prod(scopes=["*", ECR]),
            f"scopes[1] '{ECR}' is not a 'host/repository' pattern (no tag or digest), e.g. {ECR}/ml/*, "
            "or '*' for every image.",
        ),
        (ml_prod(name=""), "name must be a non-empty string, got ''."),
    ],
)
def test_every_malformed_rule_is_one_sentence_naming_the_file_the_rule_and_the_field(
    tmp_path: Path, rule: dict[str, Any], sentence: str
) -> None:
    path = write_policy(tmp_path, rule)
    label = "'ml-prod'" if rule.get("name") else "#1"
    with pytest.raises(EcrConfigurationError) as raised:
        ImagePolicy.load(path)
    assert str(raised.value) == f"Image policy {path}, rule {label}: {sentence}"


def test_a_missing_or_non_json_file_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(EcrConfigurationError, match=r"^Image policy .*absent.json cannot be read \(No such file"):
        ImagePolicy.load(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(EcrConfigurationError, match=r"^Image policy .*bad.json is not JSON \(.*\): fix the file"):
        ImagePolicy.load(tmp_path / "bad.json")


def test_severity_and_fallback_names_are_read_without_case(tmp_path: Path) -> None:
    (rule,) = ImagePolicy.load(write_policy(tmp_path, scan(failAt="medium", onUnavailable="PASS"))).rules
    assert rule.scan is not None
    assert (rule.scan.fail_at, rule.scan.on_unavailable) == ("MEDIUM", "pass")


# -- the setting ---------------------------------------------------------------------------------


def test_the_setting_names_the_file_and_the_policy_is_read_again_only_when_it_changes(
    policy_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_image_policy(EcrSettings()) is None
    monkeypatch.setenv("AIRFLOW__ECR__IMAGE_POLICY", str(policy_file))
    settings = ecr_settings()
    assert settings.image_policy == str(policy_file)
    first = load_image_policy(settings)
    assert first is not None and first.rules[0].name == "ml-prod"
    assert load_image_policy(settings) is first  # memoised: no second read
    policy_file.write_text(json.dumps({"version": "1", "rules": [ml_prod(name="renamed-rule")]}))
    second = load_image_policy(settings)
    assert second is not None and second.rules[0].name == "renamed-rule"
    policy_file.write_text("{")
    with pytest.raises(EcrConfigurationError, match="is not JSON"):
        load_image_policy(settings)


def test_a_missing_policy_file_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(EcrConfigurationError, match=r"^\[ecr\] image_policy .*nowhere.json cannot be read"):
        load_image_policy(EcrSettings(image_policy=str(tmp_path / "nowhere.json")))


# -- a DAG tightens --------------------------------------------------------------------------------


def test_no_dag_policy_leaves_the_deployment_rule(rule: ImageRule) -> None:
    assert effective_rule(rule, None, "task 'train'") is rule
    assert effective_rule(rule, {}, "task 'train'") is rule
    assert effective_rule(None, None, "task 'train'") is None


def test_a_dag_may_tighten_every_scan_field(rule: ImageRule) -> None:
    tightened = rule.tightened_by(
        {
            "scan": {
                "failAt": "MEDIUM",
                "onlyFixAvailable": False,
                "allow": [{**ALLOW, "expires": "2026-06-01"}],
                "pendingWaitSeconds": 600,
                "onUnsupported": "fail",
                "refreshSeconds": 60,
            }
        },
        "task 'train'",
    )
    assert tightened.scan == ScanRule(
        fail_at="MEDIUM",
        allow=(AllowedFinding("CVE-2024-1234", datetime.date(2026, 6, 1), ALLOW["reason"]),),
        pending_wait_seconds=600,
        refresh_seconds=60,
    )
    assert tightened.signature == rule.signature and tightened.name == "ml-prod"
    # An empty allowlist drops every exception; unwritten fields keep the deployment's.
    assert rule.tightened_by({"scan": {"allow": []}}, "t").scan == ScanRule(
        fail_at="HIGH", pending_wait_seconds=120, refresh_seconds=3600
    )


def test_a_dag_only_fix_available_false_tightens_a_deployment_that_ignores_unfixable_findings(tmp_path: Path) -> None:
    (rule,) = ImagePolicy.load(write_policy(tmp_path, scan(onlyFixAvailable=True, onUnsupported="pass"))).rules
    tightened = rule.tightened_by({"scan": {"onlyFixAvailable": False, "onUnsupported": "fail"}}, "t")
    assert tightened.scan is not None
    assert (tightened.scan.only_fix_available, tightened.scan.on_unsupported) == (False, "fail")


LOOSENING = "(rule 'ml-prod' of {path}): a DAG may only tighten the image policy."


@pytest.mark.parametrize(
    ("dag", "sentence"),
    [
        (
            {"scan": {"failAt": "CRITICAL"}},
            "Task 'train' asks image_policy scan.failAt CRITICAL, which loosens the deployment's HIGH ",
        ),
        (
            {"scan": {"onlyFixAvailable": True}},
            "Task 'train' asks image_policy scan.onlyFixAvailable true, which "
            "loosens the deployment's false (every finding counts) ",
        ),
        (
            {"scan": {"onUnsupported": "pass"}},
            "Task 'train' asks image_policy scan.onUnsupported pass, which loosens the deployment's fail ",
        ),
        (
            {"scan": {"onUnavailable": "pass"}},
            "Task 'train' asks image_policy scan.onUnavailable pass, which loosens the deployment's fail ",
        ),
        (
            {"scan": {"refreshSeconds": 86400}},
            "Task 'train' asks image_policy scan.refreshSeconds 86400, which loosens the deployment's 3600 ",
        ),
        (
            {"scan": {"allow": [{"id": "CVE-2025-0001", "expires": "2026-01-01", "reason": "mine"}]}},
            "Task 'train' asks image_policy scan.allow[0].id 'CVE-2025-0001', which loosens the deployment's "
            "allowlist (CVE-2024-1234, CVE-2024-9999) ",
        ),
        (
            {"scan": {"allow": [{**ALLOW, "expires": "2030-01-01"}]}},
            "Task 'train' asks image_policy scan.allow[0].expires 2030-01-01, which loosens the deployment's "
            "2027-03-01 for CVE-2024-1234 ",
        ),
        (
            {"signature": {"cosign": {"keys": ["/home/me/my.pub"]}}},
            "Task 'train' asks image_policy signature.cosign.keys[0] /home/me/my.pub, which loosens the "
            "deployment's cosign keys ({dir}/cosign.pub, " + KMS + ") ",
        ),
        (
            {"signature": {"notation": {"trustPolicy": "/home/me/tp.json", "trustStore": "/home/me/store"}}},
            "Task 'train' asks image_policy signature.notation /home/me/tp.json, which loosens the deployment's "
            "Notation trust policy {dir}/notation/trustpolicy.json and trust store {dir}/notation ",
        ),
    ],
)
def test_a_dag_that_loosens_any_field_is_refused_in_one_sentence(
    rule: ImageRule, policy_file: Path, dag: dict[str, Any], sentence: str
) -> None:
    with pytest.raises(EcrConfigurationError) as raised:
        effective_rule(rule, dag, "task 'train'")
    expected = sentence.format(dir=policy_file.parent) + LOOSENING.format(path=policy_file)
    assert str(raised.value) == expected


def test_a_dag_may_keep_only_some_ways_a_signature_passes(rule: ImageRule, policy_file: Path) -> None:
    directory = policy_file.parent
    only_kms = rule.tightened_by({"signature": {"cosign": {"keys": [KMS]}}}, "t")
    assert only_kms.signature == SignatureRule(None, None, (KMS,))
    # The same files named another way are the deployment's.
    notation = {
        "trustPolicy": f"{directory}/notation/../notation/trustpolicy.json",
        "trustStore": f"{directory}/notation/",
    }
    only_notation = rule.tightened_by({"signature": {"notation": notation}}, "t")
    assert only_notation.signature == SignatureRule(directory / "notation" / "trustpolicy.json", directory / "notation")


def test_a_dag_may_add_a_rule_the_deployment_lacks(tmp_path: Path) -> None:
    (scan_only,) = ImagePolicy.load(write_policy(tmp_path, without(ml_prod(), "signature"))).rules
    added = scan_only.tightened_by({"signature": {"cosign": {"keys": ["/etc/airflow/team.pub", KMS]}}}, "t")
    assert added.signature == SignatureRule(None, None, ("/etc/airflow/team.pub", KMS))
    (signature_only,) = ImagePolicy.load(write_policy(tmp_path, without(ml_prod(), "scan"))).rules
    assert signature_only.tightened_by({"scan": {"failAt": "LOW"}}, "t").scan == ScanRule(fail_at="LOW")


def test_a_notation_rule_cannot_be_added_beside_a_cosign_only_deployment_rule(tmp_path: Path) -> None:
    (cosign_only,) = ImagePolicy.load(write_policy(tmp_path, ml_prod(signature={"cosign": {"keys": [KMS]}}))).rules
    notation = {"trustPolicy": "/etc/tp.json", "trustStore": "/etc/store"}
    with pytest.raises(EcrConfigurationError, match="loosens the deployment's signature rule without Notation"):
        cosign_only.tightened_by({"signature": {"notation": notation}}, "task 't'")


def test_where_no_deployment_rule_applies_a_dag_rule_stands_alone() -> None:
    dag = {"scan": {"failAt": "HIGH"}, "signature": {"cosign": {"keys": [KMS]}}}
    alone = effective_rule(None, dag, "task 'train'")
    assert alone == ImageRule(
        "image_policy of task 'train'",
        (),
        ScanRule(fail_at="HIGH"),
        SignatureRule(None, None, (KMS,)),
        origin="task 'train'",
    )


@pytest.mark.parametrize(
    ("dag", "sentence"),
    [
        (["scan"], "Task 'train' image_policy: the argument must be a JSON object, got [\"scan\"]."),
        (
            {"scopes": ["*"], "scan": {}},
            "Task 'train' image_policy: scopes is not a field of a DAG's image_policy (a deployment's scopes and "
            "names stay in the file) (expected scan, signature).",
        ),
        (
            {"scan": {"failAt": "SEVERE"}},
            "Task 'train' image_policy: scan.failAt 'SEVERE' is not one of CRITICAL, "
            "HIGH, MEDIUM, LOW, INFORMATIONAL, UNDEFINED.",
        ),
        (
            {"signature": {"cosign": {"keys": ["cosign.pub"]}}},
            "Task 'train' image_policy: signature.cosign.keys[0] 'cosign.pub' must be an absolute path in a DAG's "
            "image_policy.",
        ),
    ],
)
def test_a_malformed_dag_policy_is_one_sentence_naming_the_task(rule: ImageRule, dag: Any, sentence: str) -> None:
    for deployment in (rule, None):
        with pytest.raises(EcrConfigurationError) as raised:
            effective_rule(deployment, dag, "task 'train'")
        assert str(raised.value) == sentence


# -- fingerprints --------------------------------------------------------------------------------


def fingerprint_of(path: Path) -> str:
    return ImagePolicy.load(path).rules[0].fingerprint


def test_the_fingerprint_is_stable_and_changes_with_the_rule_and_every_file_it_names(
    policy_file: Path,
) -> None:
    directory = policy_file.parent
    first = fingerprint_of(policy_file)
    assert len(first) == 64 and fingerprint_of(policy_file) == first
    seen = {first}

    def changed() -> str:
        now = fingerprint_of(policy_file)
        assert now not in seen
        seen.add(now)
        return now

    (directory / "notation" / "x509" / "ca" / "acme" / "root.crt").write_text("another root")
    another_root = changed()
    (directory / "notation" / "x509" / "ca" / "acme" / "intermediate.crt").write_text("added")
    changed()
    os.unlink(directory / "notation" / "x509" / "ca" / "acme" / "intermediate.crt")
    assert fingerprint_of(policy_file) == another_root  # the contents decide, not when they were written
    (directory / "notation" / "trustpolicy.json").write_text('{"version": "1.0"}')
    changed()
    (directory / "cosign.pub").write_text("rotated key")
    changed()
    (directory / "cosign.pub").unlink()
    changed()
    policy_file.write_text(json.dumps({"version": "1", "rules": [scan(failAt="LOW")]}))
    changed()


def test_a_dag_tightening_changes_the_fingerprint_and_a_kms_key_enters_as_its_uri(rule: ImageRule) -> None:
    assert rule.tightened_by({"scan": {"failAt": "LOW"}}, "t").fingerprint != rule.fingerprint
    assert rule.tightened_by({}, "t").fingerprint == rule.fingerprint
    kms_only = ImageRule("k", ("*",), None, SignatureRule(None, None, (KMS,)))
    other_kms = ImageRule("k", ("*",), None, SignatureRule(None, None, (KMS + "0",)))
    assert kms_only.fingerprint != other_kms.fingerprint


def test_the_option_is_documented_in_the_providers_config_section() -> None:
    from airflow_ecr.provider_info import get_provider_info

    option = get_provider_info()["config"]["ecr"]["options"]["image_policy"]
    assert option["default"] == EcrSettings().image_policy == ""
    assert option["type"] == "string"
