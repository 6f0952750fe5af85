"""Probes from inside the lab's network namespace, where only the lab's dockerd and registries live."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# Run inside the lab's network namespace (nsenter): GET /v2/ over verified TLS, print the status.
_PROBE = """
import socket, ssl, sys
address, host, ca = sys.argv[1:4]
try:
    context = ssl.create_default_context(cafile=ca)
    with socket.create_connection((address, 443), timeout=2) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(("GET /v2/ HTTP/1.0\\r\\nHost: " + host + "\\r\\n\\r\\n").encode())
            print(tls.recv(256).split(b"\\r\\n", 1)[0].split()[1].decode())
except Exception as exc:
    print("error:", exc)
"""


def probe(netns_pid: int, address: str, host: str, ca: Path) -> str:
    """``GET https://host/v2/`` (at ``address``) from inside ``netns_pid``'s network namespace.

    Returns the HTTP status ("401", "200") or ``error: ...``; verifies the certificate with the lab CA.

    :param netns_pid: a process in the lab's network namespace (dockerd, or a registry).
    :param address: the registry's address.
    :param host: the registry's host name (SNI and the certificate's name).
    :param ca: the lab CA certificate.
    """
    argv = ["nsenter", f"--net=/proc/{netns_pid}/ns/net", "--", sys.executable, "-I", "-c", _PROBE]
    try:
        result = subprocess.run(
            [*argv, address, host, str(ca)], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"error: {exc}"
    return (result.stdout.strip() or result.stderr.strip() or f"error: exit {result.returncode}").splitlines()[-1]
