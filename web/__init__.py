"""The web console and the view pages: plain HTML, CSS and ES modules (docs/web.md).

This package holds no code of the front end; it makes its files package data, read with
``importlib.resources`` by the services that serve them (the registry: ``console/`` and
``common/``; the gateway: ``view/`` and ``common/``). ``asset`` finds one file of one section
for a URL path, refusing anything that could leave the section.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Literal

Section = Literal["common", "console", "view"]

# Content types by extension; anything else is served as bytes.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".ico": "image/x-icon",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"

# One path segment: no hidden files, no '..', no separators or control characters.
_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+~-]{0,127}$")


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str  # a strong validator of the content


def section_root(section: Section) -> Traversable:
    return files(__name__).joinpath(section)


def content_type(name: str) -> str:
    _, dot, extension = name.rpartition(".")
    if not dot:
        return DEFAULT_CONTENT_TYPE
    return CONTENT_TYPES.get(f".{extension.lower()}", DEFAULT_CONTENT_TYPE)


def asset(section: Section, path: str) -> Asset | None:
    """The file at ``path`` (``a/b.js``, as in a URL, already percent-decoded) under
    ``section``, or None when there is none or the path could name anything outside it: every
    segment must be a plain name (not ``..``, not hidden, no backslash or control character),
    and Python files and caches are never served."""
    segments = path.split("/")
    if not path or not all(_SEGMENT.fullmatch(s) for s in segments):
        return None
    if segments[-1].endswith((".py", ".pyc")) or "__pycache__" in segments:
        return None
    root = section_root(section)
    node = root
    for segment in segments:
        node = node.joinpath(segment)
    try:
        if not node.is_file():
            return None
        if _outside(node, root):  # a symbolic link out of the section
            return None
        body = node.read_bytes()
    except OSError:
        return None
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return Asset(body=body, content_type=content_type(segments[-1]), etag=etag)


def _outside(node: Traversable, root: Traversable) -> bool:
    if isinstance(node, Path) and isinstance(root, Path):
        return not node.resolve().is_relative_to(root.resolve())
    return False  # not on a file system: no links


def headers(found: Asset) -> dict[str, str]:
    """The headers of an asset's answer: revalidated on every use, so an edited file shows
    at the next load (a 304 when ``If-None-Match`` has the ETag)."""
    return {
        "Content-Type": found.content_type,
        "Cache-Control": "no-cache",
        "ETag": found.etag,
        "X-Content-Type-Options": "nosniff",
    }


def not_modified(found: Asset, if_none_match: str | None) -> bool:
    """Whether the client's ``If-None-Match`` names this asset's content."""
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return found.etag in tags or "*" in tags
