"""Loopback ports: is one taken, which ones are free."""

from __future__ import annotations

import socket
from contextlib import ExitStack

HOST = "127.0.0.1"


def port_in_use(port: int) -> bool:
    """Whether something already listens on `port` (on the loopback or on every address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Ignore connections of a stopped server lingering in TIME_WAIT.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return True
    return False


def accepts_connections(port: int, timeout_s: float = 0.5) -> bool:
    """Whether a TCP connection to the loopback `port` succeeds."""
    try:
        socket.create_connection((HOST, port), timeout=timeout_s).close()
    except OSError:
        return False
    return True


def free_ports(count: int) -> list[int]:
    """`count` distinct ports that were free a moment ago, chosen by the kernel.

    They are only very likely to stay free: someone may take one before it is used.
    """
    with ExitStack() as sockets:
        ports = []
        for _ in range(count):
            sock = sockets.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((HOST, 0))
            ports.append(sock.getsockname()[1])
    return ports
