"""Digest-pinned sources: digest syntax and the ``tag_template`` a pinned image may also be
tagged under (fields ``{alg}``, ``{hex}``, ``{hex12}``). Pure: no I/O.

distribution-spec 1.1 "Referrers tag schema": a registry without the referrers API keeps an
image's referrers in an index tagged ``<alg>-<hex>`` of that image's digest, so a template
rendering to that name would overwrite the fallback index of the very image it pins.
"""

from __future__ import annotations

import re
import string

DIGEST = re.compile(r"sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}")
# distribution-spec 1.1 "Referrers tag schema": <alg>-<hex digest>.
REFERRERS_TAG = re.compile(r"sha256-[0-9a-f]{64}|sha512-[0-9a-f]{128}")
# distribution-spec "Pulling manifests": a tag is [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}.
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
TEMPLATE_FIELDS = ("alg", "hex", "hex12")


def is_digest(text: str) -> bool:
    return DIGEST.fullmatch(text) is not None


def render_tag(template: str, digest: str) -> str:
    alg, _, hex_ = digest.partition(":")
    return template.format(alg=alg, hex=hex_, hex12=hex_[:12])


def template_problem(template: str) -> str | None:
    """Why ``template`` cannot name pinned images (None: it can)."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        return f"tag_template {template!r}: {exc}"
    unknown = [f for f in fields if f not in TEMPLATE_FIELDS]
    if unknown:
        return (f"tag_template {template!r}: unknown field {{{unknown[0]}}} "
                f"(fields: {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)})")
    if "hex" not in fields and "hex12" not in fields:
        return f"tag_template {template!r}: needs {{hex}} or {{hex12}} (else every pin gets one tag)"
    for sample in ("sha256:" + "0" * 64, "sha512:" + "0" * 128):
        tag = render_tag(template, sample)
        if REFERRERS_TAG.fullmatch(tag):
            return (
                f"tag_template {template!r} renders {tag[:19]}..., the distribution-spec 1.1 "
                "referrers tag schema (<alg>-<hex>): it would overwrite the referrers fallback "
                'index of the pinned image; use another name such as "pin-{hex12}"'
            )
    return tag_problem(template, "sha256:" + "0" * 64)


def tag_problem(template: str, digest: str) -> str | None:
    """Why ``template`` cannot tag ``digest`` (e.g. a sha512 ``{hex}`` is too long)."""
    tag = render_tag(template, digest)
    if not TAG.fullmatch(tag):
        return f"tag_template {template!r} renders {tag[:40]!r} for {digest[:19]}..., not a valid tag"
    return None


__all__ = [
    "DIGEST",
    "REFERRERS_TAG",
    "TAG",
    "TEMPLATE_FIELDS",
    "is_digest",
    "render_tag",
    "tag_problem",
    "template_problem",
]
