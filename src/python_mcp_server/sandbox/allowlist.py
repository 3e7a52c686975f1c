"""Which hosts a sandboxed kernel may reach: the `--kernel-allow-host` patterns, parsed and matched.

Pure: no DNS, no sockets. The egress proxy asks `AllowList.match(host, port)` for the host a
request names (the CONNECT target, or the URL and Host header of a plain-HTTP request), before it
resolves anything; then `address_refusal(rule, address)` for each address the name resolved to
(a name must not lead to this machine, nor through a wildcard to a private address; the reasons
are in `egress.py`).

The rules, and why:

- `pypi.org` matches that name only; `*.pythonhosted.org` matches every name *below*
  `pythonhosted.org` (`files.pythonhosted.org`, `a.b.pythonhosted.org`) but not the bare
  `pythonhosted.org`, as in TLS certificates and most proxies' allow-lists: a wildcard that also
  took its own suffix would hide an entry the reader of the flags cannot see. List both to allow
  both. A bare `*` or a wildcard over one label (`*.org`) is refused: that is
  `--kernel-network full`, said plainly.
- A pattern without a port allows ports 80 and 443 (HTTP and HTTPS, what package indexes and
  APIs use); `host:PORT` allows that port only.
- Names compare case-insensitively, a trailing dot is dropped (`PyPI.org.` is `pypi.org`), and a
  non-ASCII pattern is turned into its IDNA (`xn--`) form, which is what clients put on the wire.
  Labels are letters, digits and inner hyphens; anything else (`_`, `%`, `/`, `@`, spaces) is
  refused, and so is a name whose last label is all digits (`127.1`, `2130706433`), which
  resolvers read as an IP address.
- IP literals match literally and only IP literals: `10.0.0.5` or `[fd00::5]:8080` (IPv6 in
  brackets, so its colons are not taken for a port). A name never matches an IP rule or the
  reverse; the proxy still checks, after resolving a name, where it points (see `egress.py`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from python_mcp_server.errors import ConfigError

DEFAULT_PORTS = frozenset({80, 443})
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
_PORT = re.compile(r"[0-9]{1,5}\Z")
_MAX_NAME = 253
_LOOPBACK_NAMES = frozenset({"localhost"})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class HostSyntaxError(ValueError):
    """A host or authority that is not a valid name, IP literal or port."""


def parse_port(text: str) -> int:
    """A decimal port 1-65535 (ASCII digits only: `int()` would also take `+80` and `٨٠`)."""
    if not _PORT.match(text) or not 0 < int(text) < 65536:
        raise HostSyntaxError(f"{text!r} is not a port (1-65535)")
    return int(text)


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def normalize_name(text: str, *, idna: bool = False) -> str:
    """`text` as a lowercase DNS name without its trailing dot; `idna=True` first turns a
    non-ASCII name into its `xn--` form (patterns may be typed in Unicode; the wire is ASCII)."""
    name = text.removesuffix(".")
    if idna and not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            raise HostSyntaxError(f"{text!r} is not a valid internationalised name") from None
    name = name.lower()
    labels = name.split(".")
    if not name or len(name) > _MAX_NAME or not all(_LABEL.match(label) for label in labels):
        raise HostSyntaxError(
            f"{text!r} is not a host name (letters, digits, inner hyphens, dot-separated)"
        )
    if labels[-1].isdigit():
        raise HostSyntaxError(f"{text!r} looks like an IP address; write it in full (1.2.3.4)")
    return name


def split_authority(text: str) -> tuple[str, str | None]:
    """`host[:port]` or `[v6][:port]` -> (host, port text or None); the brackets are removed."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise HostSyntaxError(f"{text!r} opens a '[' it does not close")
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise HostSyntaxError(f"{text!r} has text after ']' that is not ':PORT'")
        if not isinstance(_ip(host), ipaddress.IPv6Address):
            raise HostSyntaxError(f"{text!r}: only an IPv6 address goes in brackets")
        return host, rest[1:] if rest else None
    host, colon, port = text.partition(":")
    if ":" in port:
        raise HostSyntaxError(f"{text!r} has several ':'; write an IPv6 address in brackets")
    return host, port if colon else None


def parse_host(text: str) -> str | IPAddress:
    """A host as the wire gives it (no brackets): an IP address, or a normalised ASCII name."""
    address = _ip(text)
    if address is not None:
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
            raise HostSyntaxError(f"{text!r}: IPv6 zone ids are not allowed")
        return address
    return normalize_name(text)


def is_loopback_host(host: str | IPAddress) -> bool:
    """Whether `host` names this machine itself: `localhost` or a loopback address."""
    if isinstance(host, str):
        return host in _LOOPBACK_NAMES or host.endswith(".localhost")
    mapped = getattr(host, "ipv4_mapped", None)
    return bool(host.is_loopback or (mapped is not None and mapped.is_loopback))


@dataclass(frozen=True)
class Rule:
    """One allow-list entry. `host` is a name, the suffix of a wildcard (`wildcard=True`, without
    the `*.`), or an IP address; `ports` are the ports it allows."""

    pattern: str
    host: str | IPAddress
    wildcard: bool
    ports: frozenset[int]

    @property
    def names_loopback(self) -> bool:
        """Whether this entry explicitly names a loopback host (it may then reach one)."""
        return not self.wildcard and is_loopback_host(self.host)

    def matches(self, host: str | IPAddress, port: int) -> bool:
        if port not in self.ports:
            return False
        if isinstance(host, str) != isinstance(self.host, str):
            return False
        if self.wildcard:
            return str(host).endswith("." + str(self.host))
        return host == self.host


def _bad(pattern: str, why: str) -> ConfigError:
    return ConfigError(
        f"--kernel-allow-host {pattern!r}: {why}. Write HOST, HOST:PORT, *.DOMAIN[:PORT], "
        "an IPv4 address or [IPv6] (with an optional :PORT), for example pypi.org, "
        "*.pythonhosted.org:443, localhost:8123 or [::1]:8080."
    )


def parse_rule(pattern: str) -> Rule:
    """One `--kernel-allow-host` value as a `Rule`; a `ConfigError` naming the pattern if bad."""
    text = pattern.strip()
    if "://" in text:
        raise _bad(pattern, "give the host, not a URL (pypi.org, not https://pypi.org/simple)")
    if not text or any(c in text for c in "/@?#%\\ \t\r\n"):
        raise _bad(pattern, "it is empty or holds a character no host has (/ @ ? # % \\ space)")
    try:
        host_text, port_text = split_authority(text)
        ports = DEFAULT_PORTS if port_text is None else frozenset({parse_port(port_text)})
        if host_text == "*":
            raise HostSyntaxError("a bare '*' allows every host; use --kernel-network full")
        wildcard = host_text.startswith("*.")
        if "*" in (host_text[2:] if wildcard else host_text):
            raise HostSyntaxError("'*' may only open a pattern, as in *.example.org")
        if wildcard:
            suffix = normalize_name(host_text[2:], idna=True)
            if "." not in suffix:
                raise HostSyntaxError(
                    f"*.{suffix} would allow a whole top-level domain; use --kernel-network full "
                    "if that is meant"
                )
            return Rule(pattern, suffix, True, ports)
        if text.startswith("[") or _ip(host_text) is not None:
            return Rule(pattern, parse_host(host_text), False, ports)
        return Rule(pattern, normalize_name(host_text, idna=True), False, ports)
    except HostSyntaxError as exc:
        raise _bad(pattern, str(exc)) from None


@dataclass(frozen=True)
class AllowList:
    """The hosts and ports a sandboxed kernel may reach through the egress proxy."""

    rules: tuple[Rule, ...] = ()

    @classmethod
    def parse(cls, patterns: Iterable[str]) -> AllowList:
        """Parse `--kernel-allow-host` values.

        Raises:
            ConfigError: a pattern is not a host, wildcard or IP literal with an optional port;
                the message names the pattern and the accepted forms.
        """
        return cls(tuple(parse_rule(p) for p in patterns))

    def match(self, host: str | IPAddress, port: int) -> Rule | None:
        """The first rule that allows `host` (as `parse_host` returns it) on `port`, or None."""
        return next((rule for rule in self.rules if rule.matches(host, port)), None)

    def allows(self, host: str, port: int) -> bool:
        """Whether the host text of a request (no brackets) may be reached on `port`."""
        try:
            return self.match(parse_host(host), port) is not None
        except HostSyntaxError:
            return False


def _is_local(address: IPAddress) -> bool:
    return (
        is_loopback_host(address)
        or address.is_unspecified
        or (
            isinstance(address, ipaddress.IPv6Address)
            and address.ipv4_mapped is not None
            and address.ipv4_mapped.is_unspecified
        )
    )


def address_refusal(rule: Rule, address: IPAddress) -> str | None:
    """Why `rule` may not lead to `address`, or None if it may (see `egress.py` for the policy)."""
    if _is_local(address):
        return None if rule.names_loopback else f"resolves to {address}, this machine"
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    public = (mapped or address).is_global
    if not public and rule.wildcard:
        return f"resolves to {address}, a non-public address, through the wildcard {rule.pattern}"
    return None
