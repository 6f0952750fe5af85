"""
Doctor's image policy checks: what ``[ecr] image_policy`` says of the image's digest now, rule by rule.

10. ``policy_scan`` (needs 2): the scan rule on the digest the tag points to now.
11. ``policy_signature`` (needs 2): the signature rule on that digest.

Both come from one fresh check (:func:`~airflow_ecr.trust.check.check_digest`, the tasks' own),
never from the host's verdict cache: doctor shows what a cold task would find.
"""

from __future__ import annotations

from airflow_ecr import exit_codes
from airflow_ecr.doctor.results import Check, CheckId, CheckResult, DoctorState, result
from airflow_ecr.exceptions import EcrError
from airflow_ecr.trust.outcome import SCAN, SIGNATURE, Verdict

POLICY_SCAN: CheckId = ("policy_scan", "Image policy: scan")
POLICY_SIGNATURE: CheckId = ("policy_signature", "Image policy: signature")


def check_policy_scan(state: DoctorState) -> CheckResult:
    """The scan rule's outcome (and the verdict both checks show, made here once)."""
    return _rule_result(state, POLICY_SCAN, SCAN)


def check_policy_signature(state: DoctorState) -> CheckResult:
    """The signature rule's outcome."""
    return _rule_result(state, POLICY_SIGNATURE, SIGNATURE)


def _rule_result(state: DoctorState, check: CheckId, rule: str) -> CheckResult:
    found = _verdict(state)
    if isinstance(found, CheckResult):
        return CheckResult(check[0], check[1], found.status, found.summary, found.fix, found.exit_code, found.details)
    if found is None:
        return result(check, "info", f"no image policy covers {state.image} ([ecr] image_policy)")
    outcome = found.outcome(rule)
    if outcome is None:
        return result(check, "info", f"image policy {found.scope!r} has no {rule} rule")
    details = {"scope": found.scope, "digest": found.digest, **dict(outcome.facts)}
    if outcome.passed:
        return result(check, "ok", f"{found.digest}: {outcome.summary}", details=details)
    return result(
        check, "fail", f"{found.digest}: {outcome.summary}", fix=outcome.fix or None,
        exit_code=exit_codes.EXIT_POLICY, details=details,
    )  # fmt: skip


def _verdict(state: DoctorState) -> Verdict | CheckResult | None:
    """The verdict on the image's digest now, None without a rule, or the failure that stopped it."""
    if "verdict" in state.policy:
        return state.policy["verdict"]
    from airflow_ecr.hooks.docker import EcrDockerHook

    image, reference = state.image or "", state.reference
    found: Verdict | CheckResult | None = None
    try:
        hook = EcrDockerHook(image=image, aws_conn_id=state.aws_conn_id)
        rule = hook.image_rule(image, None, "doctor")
        if rule is not None and reference is not None:
            digest = reference.digest or hook.resolve_manifest(image).digest
            found = hook.verdict_now(rule, image, digest)
    except EcrError as err:
        found = result(POLICY_SCAN, "fail", str(err), exit_code=err.exit_code)
    state.policy["verdict"] = found
    return found


CHECKS = (
    Check(*POLICY_SCAN, check_policy_scan, needs_image=True, needs=("ecr_permission",)),
    Check(*POLICY_SIGNATURE, check_policy_signature, needs_image=True, needs=("ecr_permission",)),
)
