"""TCP ports and addresses on this machine: a free port to listen on, whether one is free, whether an address is loopback."""

from __future__ import annotations

import ipaddress
import socket


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def free_port(host: str) -> int:
    """A port on `host` no one listens on now (the kernel's pick for port 0).

    Args:
        host: the address to listen on, IPv4 or IPv6.

    Returns:
        The port number; another process may still take it before the caller binds.
    """
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_free(host: str, port: int) -> bool:
    """Whether a server could listen on `host:port` now.

    Binds with SO_REUSEADDR, as servers (TensorBoard's among them) do, so a
    port in TIME_WAIT does not count as busy.

    Args:
        host: the address, IPv4 or IPv6.
        port: the port.

    Returns:
        True when the bind succeeded.
    """
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def is_loopback(address: str | None) -> bool:
    """Whether an address keeps a server on this machine (127.0.0.0/8, ::1, "localhost").

    Args:
        address: an address or host name; None or "" (every interface),
            "0.0.0.0" and "::" are not loopback.

    Returns:
        True only for loopback addresses; False for any other address or name.
    """
    text = (address or "").strip().strip("[]")
    if text.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False  # empty (every interface) or a host name: reachable from elsewhere
