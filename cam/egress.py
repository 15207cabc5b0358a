"""Outbound HTTP to URLs staff chose: lead source APIs, Slack and webhook alert channels.

Staff (and whoever gets hold of a staff account) choose these URLs, so without a check CAM would
fetch anything its host can reach: the loopback admin port of a database, a service on the private
network, the cloud's metadata endpoint with its instance credentials. Every such request goes
through ``egress_session()``, whose connections refuse an address that is not on the public
internet — loopback, private (RFC 1918, ULA ``fc00::/7``), link-local, carrier-grade NAT
(``100.64.0.0/10``), multicast, unspecified or reserved, also when written as IPv4 inside IPv6 —
unless ``AICMO_CAM_EGRESS_ALLOW`` names the host or its range. Cloud metadata addresses
(``169.254.169.254``, ``fd00:ec2::254``, ``metadata.google.internal``) are refused even then.

The check is made where the connection is opened, on the addresses the name resolved to, and the
socket connects to the address that was checked: a name that resolves once to a public address and
then to a private one (DNS rebinding) cannot slip between the check and the connection. The request
itself still names the host (``Host`` header, TLS SNI and certificate check). A redirect to another
host opens a connection of its own, so each hop is checked again. Proxies from ``HTTP(S)_PROXY`` are not used: the
check must see the address the socket connects to.

What is kept of an answer is its status (``status_text``), never its body: errors are stored where a
read-only API key can read them, and a body (or a reason phrase written to carry something) could
hold whatever the far end had.

``check_url`` is the cheaper check for save time: the scheme, and a host written as a refused
address. DNS can change after that, so the check when connecting is the one that counts.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from functools import lru_cache
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

import requests
import urllib3
from django.conf import settings
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import allowed_gai_family
from urllib3.util.timeout import _DEFAULT_TIMEOUT

SCHEMES = ("http", "https")
SETTING = "AICMO_CAM_EGRESS_ALLOW"
METADATA_HOSTS = frozenset({"metadata.google.internal"})
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})
CARRIER_GRADE_NAT = ipaddress.ip_network("100.64.0.0/10")
PRIVATE_NETWORKS = tuple(ipaddress.ip_network(cidr) for cidr in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                                                                 "fc00::/7"))
NAT64 = ipaddress.ip_network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class EgressRefused(Exception):
    """A request to a staff-chosen URL was refused before anything was sent; the message says why.

    Not an ``OSError``, so neither urllib3 nor requests mistakes it for a network failure to retry.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"refused: {reason}")
        self.reason = reason


def reached(address: IPAddress) -> IPAddress:
    """The address a connection to ``address`` ends up at: the IPv4 address written inside an IPv6 one
    (``::ffff:10.0.0.1``, 6to4, NAT64), otherwise ``address`` itself."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return embedded
    return address


def address_kind(address: IPAddress) -> str:
    """What kind of address this is when CAM must not connect to it ("a private address"); "" when public."""
    address = reached(address)
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for kind, test in (("an unspecified", address.is_unspecified), ("a loopback", address.is_loopback),
                       ("a link-local", address.is_link_local), ("a multicast", address.is_multicast),
                       ("a private", any(address in network for network in PRIVATE_NETWORKS)),
                       ("a carrier-grade NAT", address in CARRIER_GRADE_NAT),
                       # Anything else not routed on the internet: 0.0.0.0/8, 240.0.0.0/4, benchmarking
                       # and documentation ranges, the broadcast address, IPv6's reserved blocks.
                       ("a reserved", not address.is_global)):
        if test:
            return f"{kind} address"
    return ""


@lru_cache(maxsize=16)
def _parse_allowed(entries: tuple[str, ...]) -> tuple[frozenset[str], tuple[IPNetwork, ...]]:
    hosts, networks = set(), []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            hosts.add(entry.strip().lower().rstrip("."))
    return frozenset(hosts), tuple(networks)


def _allowed() -> tuple[frozenset[str], tuple[IPNetwork, ...]]:
    return _parse_allowed(tuple(getattr(settings, SETTING, ()) or ()))


def host_allowed(host: str) -> bool:
    """True when ``AICMO_CAM_EGRESS_ALLOW`` names this host, or a parent domain written with a leading dot."""
    hosts, _ = _allowed()
    name = host.lower().rstrip(".")
    return name in hosts or any(entry.startswith(".") and (name.endswith(entry) or name == entry[1:])
                                for entry in hosts)


def address_allowed(address: IPAddress) -> bool:
    """True when a range in ``AICMO_CAM_EGRESS_ALLOW`` holds this address (or the IPv4 address inside it)."""
    _, networks = _allowed()
    return any(candidate.version == network.version and candidate in network
               for candidate in {address, reached(address)} for network in networks)


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _refusal(host: str, address: IPAddress, *, named: bool) -> str:
    """Why ``address`` (which ``host`` resolved to, or is) may not be reached; "" when it may."""
    kind = address_kind(address)
    if not kind:
        return ""
    shown = f"{address} ({reached(address)})" if reached(address) != address else str(address)
    where = f"{host} resolves to {shown}, {kind}" if named else f"{shown} is {kind}"
    if reached(address) in METADATA_ADDRESSES:
        return f"{where}, which is never allowed"
    if (named and host_allowed(host)) or address_allowed(address):
        return ""
    return f"{where}; add {host if named else address} to {SETTING} if this internal destination is deliberate"


def check_host(host: str) -> None:
    """Refuse a metadata host name, or a host written as an address CAM must not reach (no DNS lookup)."""
    name = host.strip("[]").lower().rstrip(".")
    if name in METADATA_HOSTS:
        raise EgressRefused(f"{name} is a cloud metadata host, which is never allowed")
    address = _literal(name)
    if address is not None:
        reason = _refusal(name, address, named=False)
        if reason:
            raise EgressRefused(reason)


def check_url(url: str) -> None:
    """Save-time check of a staff-chosen URL: http(s), with a host, not written as a refused address.

    Raises ``EgressRefused``. A host name is not looked up here; ``egress_session`` checks what it
    resolves to when it connects.
    """
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise EgressRefused("only http:// and https:// URLs with a host may be requested")
    check_host(parts.hostname)


def vetted_addresses(host: str, port: int) -> list[tuple[socket.AddressFamily, tuple[Any, ...]]]:
    """``host``'s addresses to connect to, each checked; raises ``EgressRefused`` if any is refused.

    One refused address refuses the host: the connection must not depend on which answer comes first.
    ``socket.gaierror`` when the name does not resolve.
    """
    check_host(host)
    name = host.strip("[]")
    literal = _literal(name) is not None
    answers = socket.getaddrinfo(name, port, allowed_gai_family(), socket.SOCK_STREAM)
    vetted: list[tuple[socket.AddressFamily, tuple[Any, ...]]] = []
    for family, _, _, _, sockaddr in answers:
        address = ipaddress.ip_address(cast(str, sockaddr[0]).split("%")[0])  # an IP family's: (host, port, …)
        reason = _refusal(name.lower().rstrip("."), address, named=not literal)
        if reason:
            raise EgressRefused(reason)
        vetted.append((family, sockaddr))
    return vetted


if TYPE_CHECKING:  # the mixin below is only ever mixed into urllib3's connection
    _ConnectionBase = urllib3.connection.HTTPConnection
else:
    _ConnectionBase = object


class _VettedConnection(_ConnectionBase):
    """urllib3's connection, but the socket goes to an address checked by ``vetted_addresses``.

    ``host`` stays the name from the URL, so the ``Host`` header, TLS SNI and the certificate check
    are unchanged; only where the socket connects is chosen here.
    """

    def _new_conn(self) -> socket.socket:
        try:
            addresses = vetted_addresses(self._dns_host, self.port)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        error: OSError = OSError("getaddrinfo returned no address")
        for family, sockaddr in addresses:
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                for option in self.socket_options or ():
                    sock.setsockopt(*option)
                # http.client's stubs type timeout as a float or None; urllib3 leaves its sentinel in it.
                if self.timeout is not _DEFAULT_TIMEOUT:  # type: ignore[comparison-overlap]
                    sock.settimeout(self.timeout)
                if self.source_address:
                    sock.bind(self.source_address)
                sock.connect(sockaddr)
            except OSError as exc:  # the next address may answer, as urllib3's own connect does
                sock.close()
                error = exc
                continue
            sys.audit("http.client.connect", self, self.host, self.port)
            return sock
        if isinstance(error, TimeoutError):
            raise ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})") from error
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}") from error


class _VettedHTTPConnection(_VettedConnection, urllib3.connection.HTTPConnection):
    pass


class _VettedHTTPSConnection(_VettedConnection, urllib3.connection.HTTPSConnection):
    pass


class _VettedHTTPConnectionPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _VettedHTTPConnection


class _VettedHTTPSConnectionPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _VettedHTTPSConnection


class _VettedAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter on pools of vetted connections, never through a proxy."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _VettedHTTPConnectionPool,
                                                   "https": _VettedHTTPSConnectionPool}

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             timeout: float | tuple[float | None, float | None] | None = None, verify: bool | str = True,
             cert: str | tuple[str, str] | None = None, proxies: dict[str, str] | None = None) -> requests.Response:
        # A proxy would connect on our behalf, to an address this process never sees.
        request.headers.pop("Proxy-Authorization", None)
        return super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies={})


class _EgressSession(requests.Session):
    """Drops the named secret headers, as requests drops ``Authorization``, when a redirect leaves the host:
    a lead source's token may travel in ``X-Api-Key`` or any header its configuration names."""

    secret_headers: tuple[str, ...] = ()

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        super().rebuild_auth(prepared_request, response)
        assert response.request.url is not None and prepared_request.url is not None  # both prepared
        if self.should_strip_auth(response.request.url, prepared_request.url):
            for name in self.secret_headers:
                prepared_request.headers.pop(name, None)


def egress_session(*, secret_headers: tuple[str, ...] = ()) -> requests.Session:
    """A ``requests`` session for staff-chosen URLs: http(s) only, every connection (and so every
    redirect hop) checked as the module docstring says. Other schemes have no adapter and fail.
    ``secret_headers`` are not sent on to another host a redirect points at."""
    session = _EgressSession()
    session.secret_headers = secret_headers
    # No proxies, .netrc credentials or CA bundle from the environment by default; a CA bundle named
    # the usual way is still honoured, for internal sources behind a private certificate authority.
    session.trust_env = False
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    session.adapters.clear()
    adapter = _VettedAdapter()
    for scheme in SCHEMES:
        session.mount(f"{scheme}://", adapter)
    return session


def status_text(status: int) -> str:
    """``500 Internal Server Error``: the code and its standard phrase, not the one the server sent."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)
