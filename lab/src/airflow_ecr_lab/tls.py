"""The lab's TLS: a lab CA and one server certificate whose SANs cover every registry host."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from airflow_ecr_lab.paths import write_private


def make_tls(directory: Path, hosts: dict[str, str]) -> None:
    """A lab CA and one server certificate for every registry host (EC P-256: fast to make).

    :param directory: where ``ca.crt``, ``server.crt`` and ``server.key`` go.
    :param hosts: host name -> address, all in the certificate's SANs.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "airflow-ecr lab CA")])
    ca_usage = dict.fromkeys(
        ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement", "encipher_only"),
        False,
    )
    ca_usage.update(digital_signature=True, key_cert_sign=True, crl_sign=True, decipher_only=False)
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(**ca_usage), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(h) for h in hosts]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in hosts.values()]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, next(iter(hosts)))]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    def write(name: str, data: bytes, mode: int) -> None:
        write_private(directory / name, data, mode)

    pem = serialization.Encoding.PEM
    write("ca.crt", ca_cert.public_bytes(pem), 0o644)
    write("server.crt", cert.public_bytes(pem) + ca_cert.public_bytes(pem), 0o644)
    key_format = serialization.PrivateFormat.PKCS8
    write("server.key", key.private_bytes(pem, key_format, serialization.NoEncryption()), 0o600)
