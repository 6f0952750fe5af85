"""
A TLS-terminating TCP forwarder on a loopback address, for the credential-helper peer of the benchmark.

``docker-credential-ecr-login`` ignores ``AWS_ENDPOINT_URL`` and always calls
``https://api.ecr.<region>.amazonaws.com``. The benchmark resolves that name to this forwarder
(``/etc/hosts`` bound over in the benchmark's private mount namespace only, see ``lab_env.py``) and
gives the helper the forwarder's CA (:func:`make_certificate`) through ``AWS_CA_BUNDLE``; the
forwarder decrypts and passes the bytes, unchanged, to the ECR emulator's plain-HTTP port. Nothing
global changes.

Usage: ``python benchmarks/tls_forwarder.py --listen 127.x.y.z:443 --target 127.0.0.1:PORT
--cert server.crt --key server.key --ready-file FILE`` (stops on SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import ipaddress
import os
import select
import signal
import socket
import ssl
import sys
import threading
import time
from pathlib import Path
from types import FrameType

# An idle connection is closed after this many seconds.
IDLE_TIMEOUT = 60.0


def make_certificate(directory: Path, names: list[str], address: str) -> None:
    """``ca.crt``, and ``server.crt`` + ``server.key`` for ``names`` and ``address`` (EC P-256), in ``directory``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "airflow-ecr benchmark forwarder CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder(subject_name=ca_name, issuer_name=ca_name, public_key=ca_key.public_key(),
                                serial_number=x509.random_serial_number(), not_valid_before=start, not_valid_after=end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    sans.append(x509.IPAddress(ipaddress.ip_address(address)))
    server = (
        x509.CertificateBuilder(subject_name=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]),
                                issuer_name=ca_name, public_key=key.public_key(),
                                serial_number=x509.random_serial_number(), not_valid_before=start, not_valid_after=end)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    for name, data, mode in (
        ("ca.crt", ca.public_bytes(pem), 0o644),
        ("server.crt", server.public_bytes(pem) + ca.public_bytes(pem), 0o644),
        ("server.key", key_pem, 0o600),
    ):
        fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)


def _serve_one(raw: socket.socket, context: ssl.SSLContext, target: tuple[str, int]) -> None:
    """Decrypt one client connection and pass its bytes both ways until either side closes.

    One thread per connection, reading whichever side is ready: an SSL object is never read and
    written from two threads at once.
    """
    try:
        client = context.wrap_socket(raw, server_side=True)
        upstream = socket.create_connection(target, timeout=30)
    except (OSError, ssl.SSLError):
        raw.close()
        return
    with client, upstream, contextlib.suppress(OSError, ssl.SSLError):
        while True:
            # Bytes already decrypted by the SSL layer do not show in select().
            ready = [client] if client.pending() else select.select([client, upstream], [], [], IDLE_TIMEOUT)[0]
            if not ready:
                return
            for source in ready:
                data = source.recv(65536)
                if not data:
                    return
                (upstream if source is client else client).sendall(data)


def _exit_with_parent(parent: int) -> None:
    """Never outlive the benchmark that started this forwarder, even when it was killed."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT.

    :param argv: command line arguments (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", required=True, help="loopback address:port to listen on")
    parser.add_argument("--target", required=True, help="address:port of the plain-HTTP server behind")
    parser.add_argument("--cert", required=True, help="server certificate chain (PEM)")
    parser.add_argument("--key", required=True, help="server key (PEM)")
    parser.add_argument("--ready-file", help="written once listening")
    args = parser.parse_args(argv)
    listen, target = _address(args.listen), _address(args.target)
    if not ipaddress.ip_address(listen[0]).is_loopback:
        print(f"tls_forwarder: listens on loopback only, not {listen[0]}", file=sys.stderr)
        return 2
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        server.bind(listen)
    except OSError as exc:
        print(f"tls_forwarder: cannot listen on {args.listen}: {exc}", file=sys.stderr)
        return 3
    server.listen(128)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    if args.ready_file:
        tmp = Path(f"{args.ready_file}.{os.getpid()}.tmp")
        tmp.write_text("ready\n")
        os.replace(tmp, args.ready_file)
    with server:
        while True:
            raw, _ = server.accept()
            threading.Thread(target=_serve_one, args=(raw, context, target), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
