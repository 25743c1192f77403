"""Who may use the web app: requests for this server's own names, from its own page, as JSON.

A server on 127.0.0.1 is not private to its user: any web page they visit can make their
browser POST to it. Cross-origin "simple" requests (text/plain, form encodings) need no
CORS preflight, so without checks a page could start generations; with DNS rebinding
(evil.example re-resolved to 127.0.0.1) the page is, to the browser, same-origin with the
server and could read the answers too. Three checks close both:

- POST bodies must be `Content-Type: application/json` (else 415): a page on another origin
  cannot send that without a preflight, and this server answers no preflight.
- The Host header must name this server, the bound address or a loopback name at the bound
  port (else 421): a rebinding page's requests carry the attacker's name.
- The Origin header, when the browser sends one, must name this server too (else 403).

`--allow-host NAME` adds a name, at any port (e.g. the one a reverse proxy serves under).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from lmlib.apps.web.request import Refused

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
WILDCARD = frozenset({"0.0.0.0", "::", ""})
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class HostGuard:
    """The names this server answers to: `names` at `port` (None: any port), `extra` at any."""

    names: frozenset[str] = LOOPBACK
    port: int | None = None  # None for an app not bound yet (Flask's test client)
    any_ip: bool = False  # bound to every interface: any address literal reaches it
    extra: frozenset[str] = frozenset()

    @classmethod
    def for_bind(cls, host: str, port: int, extra: Iterable[str] = ()) -> HostGuard:
        """The guard for a server bound to `host`:`port`."""
        names = set(LOOPBACK) | {host.lower()}
        if host not in LOOPBACK:  # reachable from other machines, which use its own name
            names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
        return cls(frozenset(names), port, host in WILDCARD, frozenset(n.lower() for n in extra))

    def allows(self, name: str, port: int) -> bool:
        if name in self.extra:
            return True
        if self.port is not None and port != self.port:
            return False
        return name in self.names or (self.any_ip and _is_address(name))

    def check(self, host: str | None, origin: str | None) -> None:
        """Raise Refused unless the Host and Origin headers (when sent) name this server."""
        if host is not None:
            where = _authority(host, 80)
            if where is None or not self.allows(*where):
                raise Refused(f"this server does not answer to Host {host!r}; {self._hint()}", 421)
        if origin is not None:
            parts = urlsplit(origin)
            where = _authority(parts.netloc, DEFAULT_PORTS.get(parts.scheme, 0)) if parts.scheme else None
            if where is None or parts.scheme not in DEFAULT_PORTS or not self.allows(*where):
                raise Refused(
                    f"requests from other web pages (Origin {origin!r}) are refused: only this "
                    f"server's own page may use it; {self._hint()}",
                    403,
                )

    def _hint(self) -> str:
        at = f" at port {self.port}" if self.port is not None else ""
        return f"open it as {' or '.join(sorted(self.names))}{at}, or start it with --allow-host NAME"


def check_json(method: str, mimetype: str) -> None:
    """Refuse (415) a POST whose body is not declared as JSON."""
    if method == "POST" and mimetype != "application/json":
        raise Refused(
            f"send the request body as JSON with the header Content-Type: application/json (got {mimetype or 'none'})",
            415,
        )


def _authority(text: str, default_port: int) -> tuple[str, int] | None:
    """(lower-case name, port) of a `host[:port]`, or None when it is not one."""
    try:
        parts = urlsplit("//" + text)
        name, port = parts.hostname, parts.port
    except ValueError:  # a port that is not a number, or out of range
        return None
    if not name or parts.path or parts.query or parts.fragment or "@" in parts.netloc:
        return None
    return name, port if port is not None else default_port


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
