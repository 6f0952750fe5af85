"""An HTTPS (``CONNECT``) proxy from the host's loopback into the lab's network namespace.

The lab's registries exist only inside that namespace, by their real ECR names. Task processes
that talk to a registry themselves (the manifest requests that resolve a tag to a digest) reach
them as a worker behind a corporate proxy does: ``HTTPS_PROXY=http://127.0.0.1:PORT`` and the lab
CA in ``REQUESTS_CA_BUNDLE``. The proxy only tunnels bytes (TLS stays end to end, so it never sees
a token) and only to the lab's own host names on port 443.

The listening socket is made in the host's namespace by the lab and handed over as a file
descriptor; this process runs inside the lab's namespace (``nsenter --net``), where it connects.

Usage: ``python -m airflow_ecr_lab.proxy --fd N --hosts DIR/hosts`` (stops on SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import socket
import sys
import threading
from pathlib import Path

from airflow_ecr_lab.paths import LabPaths
from airflow_ecr_lab.processes import spawn, wait_until

IDLE_TIMEOUT = 60.0


def read_hosts(path: Path) -> dict[str, tuple[str, int]]:
    """``host:443`` -> (address, 443), from a hosts file (the lab's, which lists only its own names).

    :param path: the hosts file.
    """
    table: dict[str, tuple[str, int]] = {}
    for line in path.read_text().splitlines():
        fields = line.split("#", 1)[0].split()
        for name in fields[1:]:
            table.setdefault(f"{name.lower()}:443", (fields[0], 443))
    return table


def _pipe(client: socket.socket, upstream: socket.socket) -> None:
    sockets = [client, upstream]
    while True:
        readable, _, _ = select.select(sockets, [], [], IDLE_TIMEOUT)
        if not readable:
            return
        for source in readable:
            data = source.recv(65536)
            if not data:
                return
            (upstream if source is client else client).sendall(data)


def _serve(client: socket.socket, hosts: dict[str, tuple[str, int]]) -> None:
    with contextlib.closing(client):
        client.settimeout(10)
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 8192:
            chunk = client.recv(4096)
            if not chunk:
                return
            head += chunk
        request = head.split(b"\r\n", 1)[0].decode("latin-1").split()
        if len(request) != 3 or request[0] != "CONNECT":
            client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        target = hosts.get(request[1].lower())
        if target is None:
            client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        try:
            upstream = socket.create_connection(target, timeout=10)
        except OSError:
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        with contextlib.closing(upstream):
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            client.settimeout(None)
            # A relay must not hold small segments back (Nagle against delayed ACKs costs 40 ms a request).
            for side in (client, upstream):
                side.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _pipe(client, upstream)


def serve(listener: socket.socket, hosts: dict[str, tuple[str, int]]) -> None:
    """Accept tunnels on ``listener`` until it is closed.

    :param listener: the listening socket (bound in the host's namespace).
    :param hosts: the ``host:port`` names that may be tunnelled to, and where each one really is.
    """
    while True:
        try:
            client, _ = listener.accept()
        except OSError:  # closed
            return
        threading.Thread(target=_serve, args=(client, hosts), daemon=True).start()


def start_proxy(paths: LabPaths, netns_pid: int, port: int = 0) -> tuple[int, str]:
    """Start the proxy; returns (pid, its ``http://127.0.0.1:PORT`` URL).

    :param paths: the lab's layout (its hosts file must exist).
    :param netns_pid: a process in the lab's network namespace (dockerd).
    :param port: the port to listen on (0: any free one; a restart keeps the lab's).
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        listener.set_inheritable(True)
        port = listener.getsockname()[1]
        package_root = str(Path(__file__).resolve().parents[3])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
        argv = ["nsenter", f"--net=/proc/{netns_pid}/ns/net", "--", sys.executable, "-m", __name__]
        argv += ["--fd", str(listener.fileno()), "--hosts", str(paths.hosts)]
        log = paths.root / "proxy.log"
        pid = spawn(paths, "proxy", argv, log, env, pass_fds=(listener.fileno(),))
    finally:
        listener.close()  # the child holds its own copy
    wait_until("the lab proxy", lambda: _answers(port), pid, str(paths.root), log, 20)
    return pid, f"http://127.0.0.1:{port}"


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as probe:
            probe.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return probe.recv(64).startswith(b"HTTP/1.1 405")
    except OSError:
        return False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fd", type=int, required=True, help="the inherited listening socket")
    parser.add_argument("--hosts", type=Path, required=True, help="the lab's hosts file")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    serve(socket.socket(fileno=args.fd), read_hosts(args.hosts))


if __name__ == "__main__":
    main()
