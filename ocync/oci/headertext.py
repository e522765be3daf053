"""What a credential may contain to travel in an HTTP header field (RFC 9110 section 5.5).

Pure text checks shared by the config (``token``, ``password``) and the registry's auth flow
(docker config entries, credential helpers, token endpoint answers). The value is never shown.
"""

from __future__ import annotations

import unicodedata

# A CR left by a token file saved with CRLF, a newline from ``$(cat file)``: no registry issues
# credentials like that, and in a header they make the request illegal (RFC 9110 section 5.5).
CONTROL_CHARACTER_PROBLEM = "contains a control character (a line break or CR?); the value is not shown"
# A static token is sent as is in ``Authorization: Bearer``: RFC 6750 section 2.1 b64token.
NON_ASCII_TOKEN_PROBLEM = "contains a non-ASCII character (a bearer token is ASCII); the value is not shown"


def has_control_character(value: str) -> bool:
    """C0/C1 controls and DEL (Unicode Cc), and the line/paragraph separators (Zl, Zp)."""
    return any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in value)


__all__ = ["CONTROL_CHARACTER_PROBLEM", "NON_ASCII_TOKEN_PROBLEM", "has_control_character"]
