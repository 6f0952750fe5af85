"""
The X.509 rules of Notation signatures: the trust store's layout, the certificate chain from the
signing certificate to a trusted root, and ``x509.subject`` trusted identities. Pure but for reading
the trust store's files.

Every rule answers with a sentence naming what is wrong, or None: the caller decides, by the trust
policy's verification level, whether that sentence refuses the image or is only logged.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from airflow_ecr.exceptions import EcrConfigurationError

#: Notation's trust store kinds: signing CAs, signing authorities (AWS Signer) and timestamping CAs.
STORE_KINDS = ("ca", "signingAuthority", "tsa")
STORE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
CERTIFICATE_SUFFIXES = (".crt", ".cer", ".pem")
# Notation requires these in every x509.subject identity so that one cannot trust "CN=x" alone.
MANDATORY_DN_ATTRIBUTES = ("C", "ST", "O")
_SPACED_TYPE = re.compile(r"(^|(?<!\\)[,+])\s*([A-Za-z][A-Za-z0-9-]*|[0-9.]+)\s*=\s*")
_SPACED_SEPARATOR = re.compile(r"(?<!\\)\s+([,+])")


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """
    The certificates of one file, PEM (one or more) or DER (one).

    :param data: the file's bytes.
    :raises ValueError: when the bytes hold no certificate.
    """
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificates(data)
    return [x509.load_der_x509_certificate(data)]


class TrustStore:
    """
    Notation's X.509 trust store: ``{root}/x509/{ca|signingAuthority|tsa}/{name}/*.crt|*.cer|*.pem``.

    :param root: the trust store's directory (Notation's ``truststore``).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def certificates(self, kind: str, name: str) -> tuple[x509.Certificate, ...]:
        """
        The certificates of the named store.

        :param kind: ``ca``, ``signingAuthority`` or ``tsa``.
        :param name: the named store, as a trust policy's ``kind:name`` spells it.
        :raises EcrConfigurationError: the store does not exist, is empty, or holds a file that is not
            a certificate.
        """
        if kind not in STORE_KINDS or not STORE_NAME.match(name):
            raise EcrConfigurationError(f"Trust store '{kind}:{name}' is not a Notation trust store name.")
        directory = self.root / "x509" / kind / name
        if not directory.is_dir():
            raise EcrConfigurationError(
                f"Trust store '{kind}:{name}' does not exist: create {directory} with its certificates."
            )
        found: list[x509.Certificate] = []
        for path in sorted(directory.iterdir()):
            # Notation ignores sub-directories and refuses symlinks; other files must be certificates.
            if path.is_symlink() or not path.is_file():
                continue
            try:
                found.extend(load_certificates(path.read_bytes()))
            except ValueError:
                raise EcrConfigurationError(
                    f"Trust store '{kind}:{name}' holds {path.name}, which is not a PEM or DER certificate."
                ) from None
        if not found:
            raise EcrConfigurationError(f"Trust store '{kind}:{name}' ({directory}) holds no certificate.")
        return tuple(found)


def chain_problem(chain: Sequence[x509.Certificate], trusted: Sequence[x509.Certificate], store: str) -> str | None:
    """
    Why the chain (leaf first) does not lead from a code-signing certificate to the trust store.

    :param chain: the envelope's certificates, the signing certificate first.
    :param trusted: the certificates of the trust policy's stores of the signing scheme's kind.
    :param store: the stores' names as the trust policy spells them, for the sentence.
    """
    if not chain:
        return "the signature carries no certificate chain"
    problem = _leaf_problem(chain[0])
    if problem:
        return problem
    for child, issuer in itertools.pairwise(chain):
        try:
            child.verify_directly_issued_by(issuer)
        except Exception:  # InvalidSignature, or ValueError/TypeError for a name or key type mismatch
            return (
                f"the certificate {child.subject.rfc4514_string()} in the signature's chain is not issued by "
                f"the next one, {issuer.subject.rfc4514_string()}"
            )
        if not _is_ca(issuer):
            return f"the certificate {issuer.subject.rfc4514_string()} issues another but is not a CA"
    root = chain[-1]
    try:
        # As notation-core-go: the chain must end in a self-signed root (a lone self-signed leaf too).
        root.verify_directly_issued_by(root)
    except Exception:
        return f"the signature's certificate chain ends in {root.subject.rfc4514_string()}, which is not a root"
    if not any(root == candidate for candidate in trusted):
        return f"the signature's certificate chain does not end in the trust store {store}"
    return None


def validity_problem(chain: Sequence[x509.Certificate], at: datetime, when: str) -> str | None:
    """
    Why a certificate of the chain is not valid at a time.

    :param chain: the certificates, the signing certificate first.
    :param at: the time (timezone-aware).
    :param when: what the time is, for the sentence (``at its signing time 2024-…``, ``now``).
    """
    for cert in chain:
        if at < cert.not_valid_before_utc:
            return f"the certificate {cert.subject.rfc4514_string()} is not yet valid {when}"
        if at > cert.not_valid_after_utc:
            return (
                f"the certificate {cert.subject.rfc4514_string()} expired on "
                f"{cert.not_valid_after_utc.isoformat()}, before {when}"
            )
    return None


def _leaf_problem(leaf: x509.Certificate) -> str | None:
    # The Notary Project's certificate requirements for the signing certificate: digitalSignature key
    # usage, and if an extended key usage is present it must allow code signing.
    subject = leaf.subject.rfc4514_string()
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return f"the signing certificate {subject} has no key usage extension"
    if not usage.digital_signature:
        return f"the signing certificate {subject} is not allowed digitalSignature by its key usage"
    try:
        extended = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    if ExtendedKeyUsageOID.CODE_SIGNING not in extended:
        return f"the signing certificate {subject} is not allowed code signing by its extended key usage"
    return None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def parse_distinguished_name(text: str) -> dict[str, str]:
    """
    An ``x509.subject`` trusted identity's distinguished name as attribute → value, as Notation reads it.

    :param text: RFC 4514 text, e.g. ``C=US, ST=WA, O=wabbit-networks.io``.
    :raises ValueError: (one sentence) for text Notation refuses: ``=#`` values, multi-valued or
        repeated attributes, or no C, ST and O.
    """
    if "=#" in text:
        raise ValueError(f"{text!r} uses '=#' values, which Notation does not support")
    # Notation (go-ldap) allows spaces around separators and '='; cryptography's parser does not.
    compact = _SPACED_SEPARATOR.sub(r"\1", _SPACED_TYPE.sub(r"\1\2=", text.strip()))
    try:
        name = x509.Name.from_rfc4514_string(compact, {"S": NameOID.STATE_OR_PROVINCE_NAME})
    except ValueError as err:
        raise ValueError(f"{text!r} is not an RFC 4514 distinguished name ({err})") from None
    attributes: dict[str, str] = {}
    for rdn in name.rdns:
        if len(rdn) > 1:
            raise ValueError(f"{text!r} has a multi-valued attribute, which Notation does not support")
        for attribute in rdn:
            key = attribute.rfc4514_attribute_name
            if key in attributes:
                raise ValueError(f"{text!r} repeats the attribute {key}")
            attributes[key] = str(attribute.value)
    missing = [key for key in MANDATORY_DN_ATTRIBUTES if key not in attributes]
    if missing:
        raise ValueError(f"{text!r} lacks {', '.join(missing)} (C, ST and O are required)")
    return attributes


def subject_attributes(cert: x509.Certificate) -> dict[str, str]:
    """The certificate subject's attributes as attribute → value (the last one when repeated)."""
    return {attribute.rfc4514_attribute_name: str(attribute.value) for attribute in cert.subject}


def identity_matches(trusted: Mapping[str, str], subject: Mapping[str, str]) -> bool:
    """Whether a trusted identity matches a subject: each of its attributes has the subject's value."""
    return all(subject.get(key) == value for key, value in trusted.items())
