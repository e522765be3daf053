"""``WWW-Authenticate`` parsing (RFC 7235 section 4.1, RFC 6750 for Bearer; the token
flow of distribution's docs/spec/auth/token.md). One header may hold several challenges,
parameters may be quoted with backslash escapes; arbitrary input raises only our errors."""

from __future__ import annotations

from dataclasses import dataclass

from ocync.errors import RegistryError

_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_TOKEN68 = _TCHAR - frozenset("!#$%&'*^`|") | frozenset("/")
_MAX_HEADER = 16 * 1024


@dataclass(frozen=True, slots=True)
class Challenge:
    """One challenge: a lower-cased scheme and its parameters (names lower-cased)."""

    scheme: str
    params: tuple[tuple[str, str], ...] = ()
    token68: str | None = None

    def get(self, name: str) -> str | None:
        for key, value in self.params:
            if key == name:
                return value
        return None

    @property
    def realm(self) -> str | None:
        return self.get("realm")

    @property
    def service(self) -> str | None:
        return self.get("service")

    @property
    def scope(self) -> str | None:
        return self.get("scope")


def _malformed(header: str, why: str) -> RegistryError:
    return RegistryError(f"malformed WWW-Authenticate header ({why}): {header[:120]!r}")


class _Scanner:
    __slots__ = ("pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t":
            self.pos += 1

    def skip_ws_commas(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t,":
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def token(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _TCHAR:
            self.pos += 1
        return self.text[start : self.pos]

    def quoted(self) -> str:
        # assumes peek() == '"'
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == "\\" and self.pos + 1 < len(self.text):
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            if ch == '"':
                self.pos += 1
                return "".join(out)
            out.append(ch)
            self.pos += 1
        raise ValueError("unterminated quoted string")

    def at_param(self) -> bool:
        """Is the text at pos ``token [ws] = [ws] (token|quoted)`` (an auth-param)?"""
        save = self.pos
        try:
            name = self.token()
            if not name:
                return False
            self.skip_ws()
            if self.peek() != "=":
                return False
            self.pos += 1
            self.skip_ws()
            nxt = self.peek()
            return nxt == '"' or (nxt != "" and nxt in _TCHAR)
        finally:
            self.pos = save


def parse_www_authenticate(header: str) -> list[Challenge]:
    """All challenges of one header value, in order. Raises :class:`RegistryError` if malformed."""
    if len(header) > _MAX_HEADER:
        raise _malformed(header, "too long")
    scanner = _Scanner(header)
    challenges: list[Challenge] = []
    try:
        scanner.skip_ws_commas()
        while scanner.pos < len(header):
            scheme = scanner.token()
            if not scheme:
                raise _malformed(header, f"expected an auth scheme at offset {scanner.pos}")
            params: list[tuple[str, str]] = []
            token68: str | None = None
            scanner.skip_ws()
            if scanner.pos < len(header) and scanner.peek() != ",":
                if scanner.at_param():
                    params = _params(scanner, header)
                else:
                    token68 = _token68(scanner, header)
            challenges.append(Challenge(scheme.lower(), tuple(params), token68))
            scanner.skip_ws_commas()
    except ValueError as exc:
        raise _malformed(header, str(exc)) from None
    if not challenges:
        raise _malformed(header, "no challenge")
    return challenges


def _params(scanner: _Scanner, header: str) -> list[tuple[str, str]]:
    params: list[tuple[str, str]] = []
    while True:
        name = scanner.token().lower()
        scanner.skip_ws()
        scanner.pos += 1  # the '=' checked by at_param
        scanner.skip_ws()
        value = scanner.quoted() if scanner.peek() == '"' else scanner.token()
        params.append((name, value))
        scanner.skip_ws()
        if scanner.pos >= len(header):
            return params
        if scanner.peek() != ",":
            raise ValueError(f"expected ',' at offset {scanner.pos}")
        scanner.skip_ws_commas()
        if not scanner.at_param():
            return params  # the next challenge starts here


def _token68(scanner: _Scanner, header: str) -> str:
    start = scanner.pos
    while scanner.pos < len(header) and header[scanner.pos] in _TOKEN68:
        scanner.pos += 1
    while scanner.pos < len(header) and header[scanner.pos] == "=":
        scanner.pos += 1
    value = header[start : scanner.pos]
    scanner.skip_ws()
    if not value or (scanner.pos < len(header) and scanner.peek() != ","):
        raise ValueError(f"unexpected character at offset {scanner.pos}")
    return value


def find_challenge(challenges: list[Challenge], scheme: str) -> Challenge | None:
    for challenge in challenges:
        if challenge.scheme == scheme:
            return challenge
    return None


__all__ = ["Challenge", "find_challenge", "parse_www_authenticate"]
