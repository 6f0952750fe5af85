"""
The image policy file (``[ecr] image_policy``): its rules, the images each rule's scopes match, and a
DAG's tightening of a rule.

Pure but for three readers: :meth:`ImagePolicy.load` (the file), :func:`load_image_policy` (the
file, once per process and again when it changes) and :attr:`ImageRule.fingerprint` (hashes the
files a rule names, so that editing a trust store or a key invalidates the verdicts cached under the
rule). Every malformed input is an :class:`~airflow_ecr.exceptions.EcrConfigurationError` of one
sentence naming the file (or the DAG's task), the rule and the field; unknown fields are errors too,
because a typo must never silently loosen a rule. The file's reference is ``docs/image-policy.md``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from airflow_ecr.exceptions import EcrConfigurationError
from airflow_ecr.process_state import STATE
from airflow_ecr.trust.scan import SEVERITIES, AllowedFinding, ScanRule

if TYPE_CHECKING:
    from airflow_ecr.registry import ImageReference
    from airflow_ecr.settings import EcrSettings

POLICY_VERSION = "1"
# What a scan rule does when ECR cannot scan the image (unsupported) or cannot say (unavailable):
# refuse it, or let it run with the outcome recorded. "fail" is the stricter.
FALLBACKS = ("fail", "pass")
# The only key URI a cosign rule takes besides a key file: AWS KMS (kms:GetPublicKey).
KMS_PREFIX = "awskms://"
# Bumped when what the fingerprint covers changes, so that older cached verdicts stop matching.
_FINGERPRINT_VERSION = 1

_POLICY_FIELDS = ("version", "rules")
_RULE_FIELDS = ("name", "scopes", "scan", "signature")
_DAG_FIELDS = ("scan", "signature")
_SCAN_FIELDS = {
    "failAt": "fail_at",
    "onlyFixAvailable": "only_fix_available",
    "allow": "allow",
    "pendingWaitSeconds": "pending_wait_seconds",
    "onUnsupported": "on_unsupported",
    "onUnavailable": "on_unavailable",
    "refreshSeconds": "refresh_seconds",
}
_ALLOW_FIELDS = ("id", "expires", "reason")
_SIGNATURE_FIELDS = ("notation", "cosign")
_NOTATION_FIELDS = ("trustPolicy", "trustStore")
_COSIGN_FIELDS = ("keys",)


@dataclass(frozen=True)
class SignatureRule:
    """
    What signature a digest must carry: one that verifies in any of the configured formats.

    :param notation_trust_policy: Notation's ``trustpolicy.json`` (absolute), or None: no Notation.
    :param notation_trust_store: the directory of Notation's trust store (``x509/<type>/<name>/``).
    :param cosign_keys: cosign public key files (absolute paths) and ``awskms:///`` key URIs; empty:
        no cosign.
    """

    notation_trust_policy: Path | None = None
    notation_trust_store: Path | None = None
    cosign_keys: tuple[str, ...] = ()

    @property
    def notation(self) -> bool:
        return self.notation_trust_policy is not None

    def fingerprint_parts(self) -> dict[str, Any]:
        """The rule with the contents' hashes of every file it names (see :attr:`ImageRule.fingerprint`)."""
        parts: dict[str, Any] = {"cosign": [[key, _key_hash(key)] for key in self.cosign_keys]}
        if self.notation_trust_policy is not None and self.notation_trust_store is not None:
            parts["notation"] = {
                "trustPolicy": [str(self.notation_trust_policy), _file_hash(self.notation_trust_policy)],
                "trustStore": [str(self.notation_trust_store), _tree_hashes(self.notation_trust_store)],
            }
        return parts


@dataclass(frozen=True)
class ImageRule:
    """
    One rule of the image policy: the images it applies to and what they must pass.

    :param name: the rule's name (the file's ``name``, else ``#<position>``); verdicts carry it.
    :param scopes: ``host/repository`` glob patterns (:func:`fnmatch.fnmatchcase`, lowercased);
        empty for a rule a DAG wrote.
    :param scan: the scan rule, or None: scan findings are not checked.
    :param signature: the signature rule, or None: signatures are not checked.
    :param origin: where the rule was written (the policy file, or the DAG's task), for messages.
    """

    name: str
    scopes: tuple[str, ...]
    scan: ScanRule | None
    signature: SignatureRule | None
    origin: str = ""

    def matches(self, name: ImageReference) -> bool:
        """Whether one of the scopes matches the image's ``host/repository``."""
        path = f"{name.host}/{name.repository}".lower()
        return any(fnmatchcase(path, scope.lower()) for scope in self.scopes)

    @property
    def fingerprint(self) -> str:
        """
        A sha256 of the effective rule: its name, its scan rule, its signature rule and the contents'
        hashes of the files the signature rule names (the trust policy, every file under the trust
        store, cosign key files; a KMS key enters as its URI). A cached verdict is reused only under
        the same fingerprint, so editing the policy or a trust store re-checks every image.
        Computed at every call: the files may change under a long-lived process.
        """
        document = {
            "version": _FINGERPRINT_VERSION,
            "name": self.name,
            "scan": _scan_json(self.scan) if self.scan is not None else None,
            "signature": self.signature.fingerprint_parts() if self.signature is not None else None,
        }
        return hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    def tightened_by(self, dag: Mapping[str, Any] | None, where: str) -> ImageRule:
        """
        This deployment rule as a DAG's ``image_policy`` tightens it: the DAG may make every check
        stricter, never looser (see ``docs/image-policy.md``).

        :param dag: the operator's ``image_policy`` (``{"scan": {...}, "signature": {...}}``), or None.
        :param where: how messages name the DAG's argument, e.g. ``task 'train'``.
        :raises EcrConfigurationError: for a malformed ``image_policy``, or one that loosens this rule.
        """
        if not dag:
            return self
        fields = _dag_fields(dag, where)
        scan = self.scan
        if "scan" in fields:
            asked = _scan_fields(fields["scan"], _dag_context(where))
            scan = ScanRule(**asked) if scan is None else _tighten_scan(scan, asked, self, where)
        signature = self.signature
        if "signature" in fields:
            asked_signature = _signature(fields["signature"], _dag_context(where), relative_to=None)
            if signature is not None:
                _check_signature_subset(signature, asked_signature, self, where)
            signature = asked_signature
        return replace(self, scan=scan, signature=signature)


@dataclass(frozen=True)
class ImagePolicy:
    """
    The deployment's image policy: its rules, in the file's order.

    :param path: the policy file.
    :param rules: its rules; the first whose scope matches an image applies to it.
    """

    path: Path
    rules: tuple[ImageRule, ...]

    @classmethod
    def load(cls, path: Path) -> ImagePolicy:
        """
        Read and check the policy file.

        :param path: the file (relative paths inside it are relative to its directory).
        :raises EcrConfigurationError: naming the file, the rule and the field to fix.
        """
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            reason = getattr(err, "strerror", None) or type(err).__name__
            raise EcrConfigurationError(
                f"Image policy {path} cannot be read ({reason}): fix [ecr] image_policy or the file."
            ) from None
        try:
            data = json.loads(text)
        except ValueError as err:
            raise EcrConfigurationError(
                f"Image policy {path} is not JSON ({err}): fix the file, see docs/image-policy.md."
            ) from None
        return cls.parse(data, path)

    @classmethod
    def parse(cls, data: Any, path: Path) -> ImagePolicy:
        """
        The policy the file's JSON describes (pure).

        :param data: the parsed JSON.
        :param path: the file it came from: relative paths in it are relative to its directory.
        :raises EcrConfigurationError: naming the file, the rule and the field to fix.
        """
        context = f"Image policy {path}"
        document = _object(data, context, "the file")
        _known(document, _POLICY_FIELDS, context, "", "the policy")
        if document.get("version") != POLICY_VERSION:
            _fail(context, "version", f"{_shown(document.get('version'))} is not {POLICY_VERSION!r}")
        items = _list(document.get("rules"), context, "rules")
        rules = tuple(_rule(item, index, path) for index, item in enumerate(items))
        names = [rule.name for rule in rules]
        for rule in rules:
            if names.count(rule.name) > 1:
                _fail(f"{context}, rule {rule.name!r}", "name", "is used by more than one rule")
        return cls(path, rules)

    def rule_for(self, name: ImageReference) -> ImageRule | None:
        """
        The rule that applies to an image: the first whose scope matches; None: no policy for it.

        :param name: the image the task pulls.
        """
        return next((rule for rule in self.rules if rule.matches(name)), None)


def effective_rule(deployment: ImageRule | None, dag: Mapping[str, Any] | None, where: str) -> ImageRule | None:
    """
    The rule a task's image must pass: the deployment's rule as the DAG tightens it; where no
    deployment rule applies, the DAG's own rule alone (a DAG may always add checks).

    :param deployment: the policy file's rule for the image (:meth:`ImagePolicy.rule_for`), or None.
    :param dag: the operator's ``image_policy``, or None.
    :param where: how messages name the DAG's argument, e.g. ``task 'train'``.
    :raises EcrConfigurationError: for a malformed ``image_policy``, or one that loosens the deployment's.
    """
    if deployment is not None:
        return deployment.tightened_by(dag, where)
    if not dag:
        return None
    return dag_rule(dag, where)


def dag_rule(dag: Mapping[str, Any], where: str) -> ImageRule:
    """
    A DAG's ``image_policy`` as a rule of its own (no deployment rule applies to the image).

    :param dag: the operator's ``image_policy``.
    :param where: how messages name the DAG's argument, e.g. ``task 'train'``.
    :raises EcrConfigurationError: for a malformed ``image_policy``.
    """
    fields = _dag_fields(dag, where)
    context = _dag_context(where)
    scan = ScanRule(**_scan_fields(fields["scan"], context)) if "scan" in fields else None
    signature = _signature(fields["signature"], context, relative_to=None) if "signature" in fields else None
    return ImageRule(f"image_policy of {where}", (), scan, signature, origin=where)


def load_image_policy(settings: EcrSettings) -> ImagePolicy | None:
    """
    The policy file ``[ecr] image_policy`` names, read at first use and again when it changes (its
    modification time, size or inode): a malformed file fails only the tasks that consult it, and
    doctor. None when the option is empty.

    :param settings: the ``[ecr]`` settings.
    :raises EcrConfigurationError: for a file that cannot be read or is malformed.
    """
    text = settings.image_policy.strip()
    if not text:
        return None
    path = Path(text).expanduser().absolute()
    try:
        info = path.stat()
    except OSError as err:
        raise EcrConfigurationError(
            f"[ecr] image_policy {path} cannot be read ({err.strerror}): fix the option or create the file."
        ) from None
    version = (info.st_mtime_ns, info.st_size, info.st_ino)
    memo = STATE.image_policies.get(str(path))
    if memo is not None and memo[0] == version:
        policy: ImagePolicy = memo[1]
        return policy
    policy = ImagePolicy.load(path)
    STATE.image_policies[str(path)] = (version, policy)
    return policy


# -- reading the file's and a DAG's JSON -----------------------------------------------------------


def _fail(context: str, field: str, problem: str) -> NoReturn:
    raise EcrConfigurationError(f"{context}: {field} {problem}.")


def _shown(value: Any) -> str:
    """A value as the sentence quotes it: strings in quotes, the rest as JSON."""
    if isinstance(value, str):
        return repr(value)
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return type(value).__name__


def _object(value: Any, context: str, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        _fail(context, field, f"must be a JSON object, got {_shown(value)}")
    return value


def _list(value: Any, context: str, field: str) -> Sequence[Any]:
    if not isinstance(value, (list, tuple)):
        _fail(context, field, f"must be a list, got {_shown(value)}")
    return value


def _known(data: Mapping[str, Any], allowed: Sequence[str], context: str, prefix: str, what: str) -> None:
    """Refuse unknown fields: a misspelt one would otherwise be ignored and loosen the rule."""
    for key in data:
        if key not in allowed:
            _fail(context, f"{prefix}{key}", f"is not a field of {what} (expected {', '.join(allowed)})")


def _text(value: Any, context: str, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail(context, field, f"must be a non-empty string, got {_shown(value)}")
    return value.strip()


def _seconds(value: Any, context: str, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        _fail(context, field, f"must be a number of seconds of 0 or more, got {_shown(value)}")
    return float(value)


def _choice(value: Any, choices: Sequence[str], context: str, field: str) -> str:
    if not isinstance(value, str) or value.upper() not in (c.upper() for c in choices):
        _fail(context, field, f"{_shown(value)} is not one of {', '.join(choices)}")
    return next(c for c in choices if c.upper() == value.upper())


def _rule(item: Any, index: int, path: Path) -> ImageRule:
    label = f"#{index + 1}"
    if isinstance(item, Mapping) and isinstance(item.get("name"), str) and item["name"].strip():
        label = item["name"].strip()
    context = f"Image policy {path}, rule {label if label.startswith('#') else repr(label)}"
    data = _object(item, context, "the rule")
    _known(data, _RULE_FIELDS, context, "", "a rule")
    if "name" in data:
        _text(data["name"], context, "name")
    scopes = tuple(
        _scope(scope, context, f"scopes[{i}]") for i, scope in enumerate(_list(data.get("scopes"), context, "scopes"))
    )
    if not scopes:
        _fail(context, "scopes", "is empty: name the images, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/ml/*")
    if "scan" not in data and "signature" not in data:
        _fail(context, "the rule", "has neither scan nor signature")
    scan = ScanRule(**_scan_fields(data["scan"], context)) if "scan" in data else None
    signature = _signature(data["signature"], context, relative_to=path.parent) if "signature" in data else None
    return ImageRule(label, scopes, scan, signature, origin=str(path))


def _scope(value: Any, context: str, field: str) -> str:
    scope = _text(value, context, field)
    if scope == "*":
        return scope
    if "/" not in scope or "@" in scope or ":" in scope.partition("/")[2] or any(c.isspace() for c in scope):
        _fail(
            context,
            field,
            f"{scope!r} is not a 'host/repository' pattern (no tag or digest), e.g. "
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/ml/*, or '*' for every image",
        )
    return scope


def _scan_fields(value: Any, context: str) -> dict[str, Any]:
    """The scan fields written, as :class:`ScanRule`'s keyword arguments (missing ones left out)."""
    prefix = "scan"
    data = _object(value, context, prefix)
    _known(data, tuple(_SCAN_FIELDS), context, f"{prefix}.", prefix)
    fields: dict[str, Any] = {}
    if "failAt" in data:
        fields["fail_at"] = _choice(data["failAt"], SEVERITIES, context, f"{prefix}.failAt")
    if "onlyFixAvailable" in data:
        if not isinstance(data["onlyFixAvailable"], bool):
            _fail(
                context, f"{prefix}.onlyFixAvailable", f"must be true or false, got {_shown(data['onlyFixAvailable'])}"
            )
        fields["only_fix_available"] = data["onlyFixAvailable"]
    if "allow" in data:
        entries = _list(data["allow"], context, f"{prefix}.allow")
        allow = tuple(_allowed(entry, context, f"{prefix}.allow[{i}]") for i, entry in enumerate(entries))
        ids = [entry.id for entry in allow]
        for i, finding in enumerate(allow):
            if ids.index(finding.id) != i:
                _fail(context, f"{prefix}.allow[{i}].id", f"{finding.id!r} is listed twice")
        fields["allow"] = allow
    for key in ("pendingWaitSeconds", "refreshSeconds"):
        if key in data:
            fields[_SCAN_FIELDS[key]] = _seconds(data[key], context, f"{prefix}.{key}")
    for key in ("onUnsupported", "onUnavailable"):
        if key in data:
            fields[_SCAN_FIELDS[key]] = _choice(data[key], FALLBACKS, context, f"{prefix}.{key}")
    return fields


def _allowed(value: Any, context: str, field: str) -> AllowedFinding:
    data = _object(value, context, field)
    _known(data, _ALLOW_FIELDS, context, f"{field}.", "an allow entry")
    finding = _text(data.get("id"), context, f"{field}.id")
    expires_text = data.get("expires")
    try:
        expires = datetime.date.fromisoformat(expires_text) if isinstance(expires_text, str) else None
    except ValueError:
        expires = None
    if expires is None:
        _fail(context, f"{field}.expires", f"must be an ISO date such as 2027-03-01, got {_shown(expires_text)}")
    reason = _text(data.get("reason"), context, f"{field}.reason")
    return AllowedFinding(finding, expires, reason)


def _signature(value: Any, context: str, relative_to: Path | None) -> SignatureRule:
    """
    A signature rule. ``relative_to`` is the policy file's directory; None (a DAG's rule, which has
    no directory to be relative to) requires absolute paths.
    """
    data = _object(value, context, "signature")
    _known(data, _SIGNATURE_FIELDS, context, "signature.", "signature")
    if not data:
        _fail(context, "signature", "names neither notation nor cosign")
    policy = store = None
    if "notation" in data:
        notation = _object(data["notation"], context, "signature.notation")
        _known(notation, _NOTATION_FIELDS, context, "signature.notation.", "signature.notation")
        policy = _path(notation.get("trustPolicy"), context, "signature.notation.trustPolicy", relative_to)
        store = _path(notation.get("trustStore"), context, "signature.notation.trustStore", relative_to)
    keys: tuple[str, ...] = ()
    if "cosign" in data:
        cosign = _object(data["cosign"], context, "signature.cosign")
        _known(cosign, _COSIGN_FIELDS, context, "signature.cosign.", "signature.cosign")
        written = _list(cosign.get("keys"), context, "signature.cosign.keys")
        if not written:
            _fail(context, "signature.cosign.keys", "is empty: name a public key file or an awskms:/// key")
        keys = tuple(_key(key, context, f"signature.cosign.keys[{i}]", relative_to) for i, key in enumerate(written))
    return SignatureRule(policy, store, keys)


def _path(value: Any, context: str, field: str, relative_to: Path | None) -> Path:
    path = Path(_text(value, context, field)).expanduser()
    if not path.is_absolute():
        if relative_to is None:
            _fail(context, field, f"{str(path)!r} must be an absolute path in a DAG's image_policy")
        path = relative_to / path
    # Normalised, so that a DAG naming the deployment's file another way is recognised as the same.
    return Path(os.path.normpath(path))


def _key(value: Any, context: str, field: str, relative_to: Path | None) -> str:
    key = _text(value, context, field)
    if key.startswith(KMS_PREFIX):
        return key
    if "://" in key:
        _fail(context, field, f"{key!r} is neither a public key file nor an {KMS_PREFIX}/ key URI")
    return str(_path(key, context, field, relative_to))


def _dag_context(where: str) -> str:
    return f"{where[:1].upper()}{where[1:]} image_policy"


def _dag_fields(dag: Any, where: str) -> Mapping[str, Any]:
    context = _dag_context(where)
    data = _object(dag, context, "the argument")
    _known(data, _DAG_FIELDS, context, "", "a DAG's image_policy (a deployment's scopes and names stay in the file)")
    return data


# -- tightening ------------------------------------------------------------------------------------


def _loosens(rule: ImageRule, where: str, field: str, asked: str, required: str) -> NoReturn:
    raise EcrConfigurationError(
        f"{where[:1].upper()}{where[1:]} asks image_policy {field} {asked}, which loosens the deployment's "
        f"{required} (rule {rule.name!r} of {rule.origin}): a DAG may only tighten the image policy."
    )


def _tighten_scan(deployment: ScanRule, asked: dict[str, Any], rule: ImageRule, where: str) -> ScanRule:
    """The deployment's scan rule with each field the DAG wrote, once each is checked to be no looser."""
    # SEVERITIES runs highest first: a threshold earlier in it fails fewer findings.
    if "fail_at" in asked and SEVERITIES.index(asked["fail_at"]) < SEVERITIES.index(deployment.fail_at):
        _loosens(rule, where, "scan.failAt", asked["fail_at"], deployment.fail_at)
    if asked.get("only_fix_available") and not deployment.only_fix_available:
        _loosens(rule, where, "scan.onlyFixAvailable", "true", "false (every finding counts)")
    for key, field in (("on_unsupported", "scan.onUnsupported"), ("on_unavailable", "scan.onUnavailable")):
        if key in asked and asked[key] != "fail" and getattr(deployment, key) == "fail":
            _loosens(rule, where, field, asked[key], "fail")
    if "refresh_seconds" in asked and asked["refresh_seconds"] > deployment.refresh_seconds:
        _loosens(rule, where, "scan.refreshSeconds", f"{asked['refresh_seconds']:g}", f"{deployment.refresh_seconds:g}")
    if "allow" in asked:
        _check_allow_subset(deployment.allow, asked["allow"], rule, where)
    return replace(deployment, **asked)


def _check_allow_subset(
    deployment: tuple[AllowedFinding, ...], asked: tuple[AllowedFinding, ...], rule: ImageRule, where: str
) -> None:
    """A DAG may drop allowlist entries or end them sooner; a new id or a later expiry loosens."""
    allowed = {entry.id: entry for entry in deployment}
    listed = ", ".join(allowed) if allowed else "none"
    for index, entry in enumerate(asked):
        granted = allowed.get(entry.id)
        if granted is None:
            _loosens(rule, where, f"scan.allow[{index}].id", repr(entry.id), f"allowlist ({listed})")
        if entry.expires > granted.expires:
            _loosens(
                rule,
                where,
                f"scan.allow[{index}].expires",
                entry.expires.isoformat(),
                f"{granted.expires.isoformat()} for {entry.id}",
            )


def _check_signature_subset(deployment: SignatureRule, asked: SignatureRule, rule: ImageRule, where: str) -> None:
    """
    Any one configured format that verifies satisfies a signature rule, so a DAG may keep only some
    of the deployment's ways to pass (one format, fewer cosign keys), never add one: another trust
    policy, trust store or key would let more signatures pass.
    """
    if asked.notation and (
        asked.notation_trust_policy != deployment.notation_trust_policy
        or asked.notation_trust_store != deployment.notation_trust_store
    ):
        required = (
            f"Notation trust policy {deployment.notation_trust_policy} "
            f"and trust store {deployment.notation_trust_store}"
            if deployment.notation
            else "signature rule without Notation"
        )
        _loosens(rule, where, "signature.notation", f"{asked.notation_trust_policy}", required)
    for index, key in enumerate(asked.cosign_keys):
        if key not in deployment.cosign_keys:
            required = (
                f"cosign keys ({', '.join(deployment.cosign_keys)})"
                if deployment.cosign_keys
                else "signature rule without cosign"
            )
            _loosens(rule, where, f"signature.cosign.keys[{index}]", key, required)


# -- fingerprints ----------------------------------------------------------------------------------


def _scan_json(scan: ScanRule) -> dict[str, Any]:
    return {
        "failAt": scan.fail_at,
        "onlyFixAvailable": scan.only_fix_available,
        "allow": [[entry.id, entry.expires.isoformat(), entry.reason] for entry in scan.allow],
        "pendingWaitSeconds": scan.pending_wait_seconds,
        "onUnsupported": scan.on_unsupported,
        "onUnavailable": scan.on_unavailable,
        "refreshSeconds": scan.refresh_seconds,
    }


def _file_hash(path: Path) -> str:
    """The sha256 of a file's contents; ``missing`` or ``unreadable`` (the verifier says why)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return "missing"
    except OSError:
        return "unreadable"


def _key_hash(key: str) -> str | None:
    """A key file's hash; None for a KMS key (it enters the fingerprint by its URI)."""
    return None if key.startswith(KMS_PREFIX) else _file_hash(Path(key))


def _tree_hashes(directory: Path) -> dict[str, str] | str:
    """Every file under a directory (links followed, each directory once) by relative path, with its hash."""
    if not directory.is_dir():
        return "missing"
    found: dict[str, str] = {}
    seen: set[str] = set()
    for root, dirs, files in os.walk(directory, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        for name in files:
            path = Path(root, name)
            found[path.relative_to(directory).as_posix()] = _file_hash(path)
    return found
