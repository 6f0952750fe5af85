"""AWS KMS asymmetric signing keys as the emulator keeps and answers them: ``GetPublicKey`` and ``Sign`` (JSON 1.1).

A test registers a key through the admin API (``POST /_emulator/kms/keys``): the emulator makes a
new private key of the given ``KeySpec`` (or takes a PEM one), keeps it, and answers ``GetPublicKey``
with its DER SubjectPublicKeyInfo and ``Sign`` with a signature as KMS makes it (ECDSA: DER; RSA:
PKCS#1 v1.5 or PSS with a salt as long as the hash). Keys are found by id, key ARN, alias name
(``alias/…``) or alias ARN, in the region and account the key was registered for.
"""

from __future__ import annotations

import base64
import binascii
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from airflow_ecr.testing.emulator.model import EmulatorError

KMS_TARGET_PREFIX = "TrentService."

_CURVES: dict[str, ec.EllipticCurve] = {
    "ECC_NIST_P256": ec.SECP256R1(),
    "ECC_NIST_P384": ec.SECP384R1(),
    "ECC_NIST_P521": ec.SECP521R1(),
}
_RSA_BITS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
# KMS's signing algorithms per key spec.
SIGNING_ALGORITHMS = {
    "ECC_NIST_P256": ("ECDSA_SHA_256",),
    "ECC_NIST_P384": ("ECDSA_SHA_384",),
    "ECC_NIST_P521": ("ECDSA_SHA_512",),
    **{
        spec: tuple(f"RSASSA_{scheme}_SHA_{bits}" for scheme in ("PSS", "PKCS1_V1_5") for bits in ("256", "384", "512"))
        for spec in _RSA_BITS
    },
}
# RAW messages KMS signs: at most 4096 bytes.
MAX_MESSAGE = 4096

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass
class KmsKey:
    """
    One asymmetric KMS key of the emulator.

    :param key_id: the key id (a UUID by default).
    :param account_id: the owning account.
    :param region: the key's region.
    :param key_spec: ``ECC_NIST_P256``, ``RSA_2048``, ...
    :param private_key: the key itself.
    :param aliases: alias names, each ``alias/…``.
    """

    key_id: str
    account_id: str
    region: str
    key_spec: str
    private_key: PrivateKey
    aliases: list[str] = field(default_factory=list)

    @property
    def arn(self) -> str:
        return f"arn:aws:kms:{self.region}:{self.account_id}:key/{self.key_id}"

    def public_der(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def describe(self) -> dict[str, Any]:
        """What the admin API answers for the key (the public key base64 DER)."""
        return {
            "KeyId": self.key_id,
            "Arn": self.arn,
            "KeySpec": self.key_spec,
            "Aliases": list(self.aliases),
            "PublicKey": base64.b64encode(self.public_der()).decode(),
            "SigningAlgorithms": list(SIGNING_ALGORITHMS[self.key_spec]),
        }


def _new_private_key(key_spec: str) -> PrivateKey:
    if key_spec in _CURVES:
        return ec.generate_private_key(_CURVES[key_spec])
    return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS[key_spec])


def _spec_of(private_key: Any) -> str:
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        for spec, curve in _CURVES.items():
            if curve.name == private_key.curve.name:
                return spec
    if isinstance(private_key, rsa.RSAPrivateKey):
        for spec, bits in _RSA_BITS.items():
            if bits == private_key.key_size:
                return spec
    raise ValueError(f"KMS has no key spec for a {type(private_key).__name__}; give an EC P-256/384/521 or RSA key")


def _blob(value: Any, name: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EmulatorError("SerializationException", f"{name} is not base64") from exc


class KmsKeys:
    """The emulator's KMS keys, guarded by their own lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: list[KmsKey] = []

    def add(
        self,
        account_id: str,
        region: str,
        *,
        key_id: str | None = None,
        key_spec: str = "ECC_NIST_P256",
        aliases: list[str] | None = None,
        private_key_pem: str | None = None,
    ) -> KmsKey:
        """Register a key; returns it.

        :param account_id: the owning account.
        :param region: the key's region.
        :param key_id: the key id (default: a new UUID).
        :param key_spec: the key spec of a new key (ignored with ``private_key_pem``).
        :param aliases: alias names, each ``alias/…``.
        :param private_key_pem: a PKCS#8 or traditional PEM private key to use instead of a new one.
        """
        for alias in aliases or []:
            if not alias.startswith("alias/") or alias.startswith("alias/aws/"):
                raise ValueError(f"an alias name starts with 'alias/' (and not 'alias/aws/'), not {alias!r}")
        if private_key_pem:
            private_key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
            spec = _spec_of(private_key)
        else:
            if key_spec not in SIGNING_ALGORITHMS:
                raise ValueError(f"key_spec must be one of {sorted(SIGNING_ALGORITHMS)}, not {key_spec!r}")
            spec = key_spec
            private_key = _new_private_key(spec)
        key = KmsKey(key_id or str(uuid.uuid4()), account_id, region, spec, private_key, list(aliases or []))  # type: ignore[arg-type]
        with self._lock:
            if any(k.key_id == key.key_id for k in self._keys):
                raise ValueError(f"key {key.key_id} is already registered")
            self._keys.append(key)
        return key

    def clear(self) -> None:
        """Forget every key."""
        with self._lock:
            self._keys.clear()

    def listing(self) -> list[dict[str, Any]]:
        """The keys (the admin API's ``GET /_emulator/kms/keys``)."""
        with self._lock:
            return [k.describe() for k in self._keys]

    def find(self, key_id: Any, account_id: str, region: str) -> KmsKey:
        """The key that ``key_id`` (id, key ARN, alias name or alias ARN) names for a caller in ``region``."""
        if not isinstance(key_id, str) or not key_id:
            raise EmulatorError("ValidationException", "1 validation error detected: Value at 'keyId' must not be null")
        if key_id.startswith("arn:"):
            parts = key_id.split(":", 5)
            if len(parts) != 6 or parts[2] != "kms":
                raise EmulatorError("InvalidArnException", f"Invalid arn {key_id}")
            account_id, region, name = parts[4], parts[3], parts[5]
        else:
            name = key_id
        with self._lock:
            for key in self._keys:
                if (key.account_id, key.region) != (account_id, region):
                    continue
                if name in (key.key_id, f"key/{key.key_id}") or name in key.aliases:
                    return key
        if name.startswith("alias/"):
            raise EmulatorError("NotFoundException", f"Alias arn:aws:kms:{region}:{account_id}:{name} is not found.")
        raise EmulatorError("NotFoundException", f"Key '{key_id}' does not exist")

    def get_public_key(self, request: dict[str, Any], account_id: str, region: str) -> dict[str, Any]:
        """Answer ``GetPublicKey``."""
        key = self.find(request.get("KeyId"), account_id, region)
        return {
            "KeyId": key.arn,
            "PublicKey": base64.b64encode(key.public_der()).decode(),
            "CustomerMasterKeySpec": key.key_spec,
            "KeySpec": key.key_spec,
            "KeyUsage": "SIGN_VERIFY",
            "SigningAlgorithms": list(SIGNING_ALGORITHMS[key.key_spec]),
        }

    def sign(self, request: dict[str, Any], account_id: str, region: str) -> dict[str, Any]:
        """Answer ``Sign`` (``MessageType`` RAW or DIGEST)."""
        key = self.find(request.get("KeyId"), account_id, region)
        algorithm = str(request.get("SigningAlgorithm", ""))
        if algorithm not in SIGNING_ALGORITHMS[key.key_spec]:
            raise EmulatorError(
                "InvalidKeyUsageException",
                f"The signing algorithm {algorithm} is not supported by key {key.arn} ({key.key_spec})",
            )
        message = _blob(request.get("Message", ""), "Message")
        message_type = request.get("MessageType", "RAW")
        hash_algorithm = _HASHES[algorithm.rsplit("_", 1)[1]]()
        if message_type == "RAW":
            if not 1 <= len(message) <= MAX_MESSAGE:
                raise EmulatorError("ValidationException", f"Message must be 1 to {MAX_MESSAGE} bytes long")
            chosen: hashes.HashAlgorithm | utils.Prehashed = hash_algorithm
        elif message_type == "DIGEST":
            if len(message) != hash_algorithm.digest_size:
                raise EmulatorError("ValidationException", f"Digest is invalid length for algorithm {algorithm}.")
            chosen = utils.Prehashed(hash_algorithm)
        else:
            raise EmulatorError("ValidationException", f"MessageType {message_type!r} is not RAW or DIGEST")
        if isinstance(key.private_key, ec.EllipticCurvePrivateKey):
            signature = key.private_key.sign(message, ec.ECDSA(chosen))
        elif algorithm.startswith("RSASSA_PSS"):
            pss = padding.PSS(mgf=padding.MGF1(hash_algorithm), salt_length=hash_algorithm.digest_size)
            signature = key.private_key.sign(message, pss, chosen)
        else:
            signature = key.private_key.sign(message, padding.PKCS1v15(), chosen)
        return {"KeyId": key.arn, "Signature": base64.b64encode(signature).decode(), "SigningAlgorithm": algorithm}
