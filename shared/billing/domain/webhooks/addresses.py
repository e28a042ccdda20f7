"""Where a webhook may be sent: the rules of the SSRF guard, as pure functions.

A webhook URL is chosen by a tenant, and the sender runs inside the operator's AWS account: an address
that reaches into that account (the instance metadata service, a VPC-private service, the Lambda's own
loopback) must never be connected to. So a URL is accepted only when it is `https` (plain `http` only to
a loopback address, and only where the operator allows loopback: the local runtime), and every address
its host resolves to is publicly routable. The check is made when the endpoint is created and again
before each delivery (DNS answers change), and the connection then goes to an address that was checked.

Addresses that embed an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, SIIT
`::ffff:0:a.b.c.d`, 6to4
`2002::/16`, NAT64 `64:ff9b::/96`, Teredo) are judged by the IPv4 address they lead to; reserved ranges
and the local-use NAT64 prefix are refused.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# The local-use NAT64 prefix: where the IPv4 address sits depends on the translator's prefix length
# (RFC 6052), so what it leads to cannot be known from the address: refused as a whole.
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
# Deprecated IPv4-compatible addresses (::a.b.c.d), led to the IPv4 address in their low bits.
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# SIIT IPv4-translated addresses (::ffff:0:a.b.c.d).
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
_HOST_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")


class UnsafeUrl(ValueError):
    """A webhook URL that may not be used; `code` is the API's error code, the message says why."""

    def __init__(self, message: str, code: str = "webhook_url_refused") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class EndpointUrl:
    """A URL that passed the syntactic checks: where to connect (host, port) and what to ask for."""

    url: str
    scheme: str
    host: str  # a name, or an IP literal without brackets
    port: int
    target: str  # path and query, as sent in the request line

    @property
    def host_header(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return shown if self.port == default else f"{shown}:{self.port}"

    @property
    def literal_address(self) -> IPAddress | None:
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None


def parse_url(url: str, *, allow_loopback: bool) -> EndpointUrl:
    """Check what can be checked without DNS; raises UnsafeUrl naming the problem.

    `allow_loopback` is the local runtime's switch: there `http` is allowed, to loopback addresses only
    (checked once the host is resolved, see `address_problem`).
    """
    if not isinstance(url, str) or not url:
        raise UnsafeUrl("url must be an absolute https URL", "invalid_webhook_url")
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(f"url is longer than {MAX_URL_LENGTH} characters", "invalid_webhook_url")
    if any(ord(char) < 0x21 or ord(char) > 0x7E for char in url):
        raise UnsafeUrl(
            "url may only contain printable ASCII characters (percent-encode the others)",
            "invalid_webhook_url",
        )
    try:
        parts: SplitResult = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"url cannot be read: {exc}", "invalid_webhook_url") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise UnsafeUrl("url must use https", "invalid_webhook_url")
    if scheme == "http" and not allow_loopback:
        raise UnsafeUrl("url must use https (plain http is only for loopback addresses in the local runtime)")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeUrl("url has no host", "invalid_webhook_url")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("url may not carry credentials (user:password@); sign-in is the signature's job")
    if parts.fragment:
        raise UnsafeUrl("url may not have a #fragment (it is never sent)", "invalid_webhook_url")
    if port == 0:
        raise UnsafeUrl("url has port 0", "invalid_webhook_url")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    endpoint = EndpointUrl(
        url=url,
        scheme=scheme,
        host=host.lower(),
        port=port or (443 if scheme == "https" else 80),
        target=target,
    )
    literal = endpoint.literal_address
    bracketed = "[" in parts.netloc
    if (literal is None and (bracketed or not _HOST_NAME.fullmatch(endpoint.host))) or (
        bracketed and not isinstance(literal, ipaddress.IPv6Address)
    ):
        # Percent-escapes, [IPvFuture], anything a resolver or a proxy might read otherwise than we do.
        raise UnsafeUrl(
            "url host must be a DNS name (letters, digits, - and _, IDNs in punycode) or an IP address",
            "invalid_webhook_url",
        )
    if literal is not None:
        problem = address_problem(literal, allow_loopback=allow_loopback, scheme=scheme)
        if problem:
            raise UnsafeUrl(f"url {problem}")
    elif _looks_numeric(host):
        # `http://2130706433/` or `http://0x7f.1/`: resolvers read these as IPv4 addresses.
        raise UnsafeUrl("url host is a number that resolvers read as an IPv4 address; write it out")
    return endpoint


def address_problem(address: IPAddress, *, allow_loopback: bool, scheme: str = "https") -> str | None:
    """Why a connection to `address` is refused, or None when it is publicly routable (or an allowed
    loopback address). `scheme` http is allowed to loopback addresses only."""
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        address = ipaddress.IPv6Address(int(address))  # fe80::1%eth0 is judged as fe80::1
    if isinstance(address, ipaddress.IPv6Address) and address in _NAT64_LOCAL:
        return f"resolves to {address}, a local-use NAT64 address whose IPv4 destination cannot be known"
    judged = embedded_ipv4(address) or address
    if judged in METADATA_ADDRESSES or address in METADATA_ADDRESSES:
        return f"resolves to {address}, the cloud instance metadata service"
    if judged.is_loopback:
        if allow_loopback:
            return None
        return f"resolves to {address}, a loopback address"
    if scheme == "http":
        return f"resolves to {address}: plain http is only allowed to loopback addresses"
    if judged.is_link_local:
        return f"resolves to {address}, a link-local address"
    if judged.is_multicast:
        return f"resolves to {address}, a multicast address"
    if judged.is_unspecified:
        return f"resolves to {address}, the unspecified address"
    if judged.is_private:
        return f"resolves to {address}, a private address"
    if judged.is_reserved or getattr(judged, "is_site_local", False):
        return f"resolves to {address}, a reserved address"
    if not judged.is_global:
        return f"resolves to {address}, which is not publicly routable"
    return None


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address leads to (mapped, 6to4, NAT64, Teredo client), if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64 or address in _IPV4_TRANSLATED or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refused_addresses(
    endpoint: EndpointUrl, addresses: list[IPAddress], *, allow_loopback: bool
) -> list[str]:
    """The problems of every address the host resolved to (empty: all may be connected to).

    One bad address refuses the URL: a resolver may answer any of them on the next lookup.
    """
    if not addresses:
        return [f"host {endpoint.host} resolves to no address"]
    return [
        problem
        for address in addresses
        if (problem := address_problem(address, allow_loopback=allow_loopback, scheme=endpoint.scheme))
    ]


def _looks_numeric(host: str) -> bool:
    labels = host.split(".")
    return all(label and (label.isdigit() or label.lower().startswith("0x")) for label in labels)
