"""Server-side request forgery defence: webhooks only go to public internet addresses.

A target must be an absolute ``http``/``https`` URL without credentials whose host resolves only to public
addresses. Refused: loopback (unless ``WEBHOOK_ALLOW_LOOPBACK``, for development and tests), private
(10/8, 172.16/12, 192.168/16, fc00::/7), link-local (169.254/16 with the cloud metadata service, fe80::/10),
shared CGNAT space (100.64/10), unspecified, multicast, reserved and documentation ranges, and IPv6 forms
that embed a refused IPv4 address (mapped, 6to4, NAT64).

The URL is checked when an endpoint is saved and again before every request. The sender resolves the host
once (:func:`pinned_target`) and connects to that very address, with the original ``Host`` header and TLS
server name, so a DNS answer that changes between the check and the connection (DNS rebinding) cannot
redirect a request inside the network.
"""

from __future__ import annotations

import ipaddress
import socket
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from urllib.parse import urlsplit

from .conf import setting
from .errors import InvalidWebhookUrl, UnsafeUrl

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
DEFAULT_PORTS = {"http": 80, "https": 443}


class ResolutionFailed(Exception):
    """The host did not resolve (in time)."""


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str  # host name or IP literal, without brackets, lower-case
    port: int
    path: str  # path and query, what the request line carries
    host_header: str


@dataclass(frozen=True)
class PinnedTarget:
    target: Target
    address: IPAddress


def parse(url: str) -> Target:
    """Split and check the form of ``url``; :class:`InvalidWebhookUrl` when it is not a usable target."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise InvalidWebhookUrl(f"Malformed URL: {exc}.", field="url") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise InvalidWebhookUrl("Only http and https URLs can receive webhooks.", field="url")
    if parts.username is not None or parts.password is not None:
        raise InvalidWebhookUrl("Put no credentials in the URL; verify the signature instead.", field="url")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise InvalidWebhookUrl("The URL has no host.", field="url")
    port = port or DEFAULT_PORTS[scheme]
    literal = _literal(host)
    shown = f"[{host}]" if literal is not None and literal.version == 6 else host
    host_header = shown if port == DEFAULT_PORTS[scheme] else f"{shown}:{port}"
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(url=url.strip(), scheme=scheme, host=host, port=port, path=path, host_header=host_header)


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def forbidden_reason(address: IPAddress, *, allow_loopback: bool | None = None) -> str | None:
    """Why ``address`` may not receive webhooks, or None when it is a public address."""
    if allow_loopback is None:
        allow_loopback = setting("WEBHOOK_ALLOW_LOOPBACK")
    if address.version == 6:
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return forbidden_reason(embedded, allow_loopback=allow_loopback)
    if address.is_loopback:
        return None if allow_loopback else "loopback"
    if address.is_unspecified:
        return "unspecified"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.version == 4 and address in CGNAT:
        return "shared (CGNAT)"
    if address.is_reserved:
        return "reserved"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "non-public"
    return None


_executor: ThreadPoolExecutor | None = None


def _getaddrinfo(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to, within the connect timeout. Raises :class:`ResolutionFailed`."""
    literal = _literal(host)
    if literal is not None:
        return [literal]
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhook-dns")
    future = _executor.submit(_getaddrinfo, host, port)
    try:
        found = future.result(timeout=float(setting("WEBHOOK_CONNECT_TIMEOUT")))
    except FutureTimeout:
        raise ResolutionFailed(f"{host} did not resolve in time") from None
    except OSError as exc:
        raise ResolutionFailed(f"{host} does not resolve ({exc.strerror or exc})") from None
    addresses: list[IPAddress] = []
    for raw in found:
        address = ipaddress.ip_address(raw.split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise ResolutionFailed(f"{host} does not resolve")
    return addresses


def _checked(target: Target, addresses: list[IPAddress]) -> IPAddress:
    for address in addresses:
        reason = forbidden_reason(address)
        if reason is not None:
            shown = target.host if str(address) == target.host else f"{target.host} resolves to {address}"
            raise UnsafeUrl(f"{shown}: a {reason} address, not a public one.", field="url")
    return addresses[0]


def check_url(url: str) -> Target:
    """The check when an endpoint is saved: well-formed, resolvable, public. Raises a 400 error otherwise."""
    target = parse(url)
    try:
        addresses = resolve(target.host, target.port)
    except ResolutionFailed as exc:
        raise InvalidWebhookUrl(f"The host does not resolve: {exc}.", field="url", code="unresolvable_host") from None
    _checked(target, addresses)
    return target


def pinned_target(url: str) -> PinnedTarget:
    """The check before each request: resolve once and return the address to connect to.

    Raises :class:`InvalidWebhookUrl`, :class:`UnsafeUrl` or :class:`ResolutionFailed`.
    """
    target = parse(url)
    return PinnedTarget(target=target, address=_checked(target, resolve(target.host, target.port)))
