"""What the registry serves to browsers: the console, its assets, and API docs that work
without the internet (docs/web.md, "Who serves what")."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from http.client import HTTPConnection
from pathlib import Path

import httpx
import pytest

import web
from tests.stack import Stack

WEB = Path(web.__file__).parent
ROOT = WEB.parent
EXPECTED_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}


def files_of(section: str) -> list[Path]:
    return sorted(
        p
        for p in (WEB / section).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith(".")
    )


@pytest.fixture
def http(registry: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=registry.registry_url, timeout=10) as client:
        yield client


def test_console_index_and_redirect(http: httpx.Client) -> None:
    index = http.get("/console/")
    assert index.status_code == 200, index.text
    assert index.headers["content-type"].startswith("text/html")
    assert index.headers["cache-control"] == "no-cache"
    assert index.content == (WEB / "console" / "index.html").read_bytes()
    moved = http.get("/console")
    assert moved.status_code == 308
    assert moved.headers["location"] == "/console/"
    head = http.head("/console/")
    assert head.status_code == 200 and head.content == b""


@pytest.mark.parametrize(("prefix", "section"), [("/console/", "console"), ("/static/", "common")])
def test_every_file_is_served_with_its_content_type(
    http: httpx.Client, prefix: str, section: str
) -> None:
    found = files_of(section)
    assert any(p.suffix == ".js" for p in found), f"web/{section} has no script"
    for path in found:
        relative = path.relative_to(WEB / section).as_posix()
        answer = http.get(prefix + relative)
        assert answer.status_code == 200, (relative, answer.text)
        assert answer.content == path.read_bytes(), relative
        assert answer.headers["cache-control"] == "no-cache"
        assert answer.headers["x-content-type-options"] == "nosniff"
        expected = EXPECTED_TYPES.get(path.suffix)
        if expected is not None:
            assert answer.headers["content-type"].split(";")[0] == expected, relative


def test_revalidation(http: httpx.Client) -> None:
    script = next(p for p in files_of("common") if p.suffix == ".js")
    url = f"/static/{script.relative_to(WEB / 'common').as_posix()}"
    first = http.get(url)
    etag = first.headers["etag"]
    again = http.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    changed = http.get(url, headers={"If-None-Match": '"something-else"'})
    assert changed.status_code == 200 and changed.content == first.content


def test_missing_files_are_404_json(http: httpx.Client) -> None:
    for path in ("/console/nope.js", "/static/nope.css", "/static/", "/console/sub/"):
        missing = http.get(path)
        assert missing.status_code == 404, path
        assert missing.json()["error"]["code"] == "not_found"


def test_console_config(registry: Stack, http: httpx.Client) -> None:
    config = http.get("/console/config.json")
    assert config.status_code == 200
    assert config.headers["content-type"] == "application/json"
    assert config.headers["cache-control"] == "no-cache"
    # the session's registries are not told where the gateway is: the default
    assert config.json() == {"gateway_url": "http://127.0.0.1:8000"}


TRAVERSALS = [
    "/console/../pyproject.toml",
    "/console/../../pyproject.toml",
    "/console/%2e%2e/%2e%2e/pyproject.toml",
    "/console/%2E%2E%2F%2E%2E%2Fpyproject.toml",
    "/console/..%2f..%2fpyproject.toml",
    "/console/%5c..%5c..%5cpyproject.toml",
    "/console/..\\..\\pyproject.toml",
    "/console//etc/passwd",
    "/console/%2fetc%2fpasswd",
    "/static/../__init__.py",
    "/static/%2e%2e/__init__.py",
    "/static/../console/index.html",
    "/static/./api.js",
    "/static/.hidden",
    "/static/api.js%00.png",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_no_directory_traversal(registry: Stack, path: str) -> None:
    """Sent as raw request lines: clients would normalise the dots away."""
    connection = HTTPConnection("127.0.0.1", registry.registry_port, timeout=10)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.endheaders()
        answer = connection.getresponse()
        body = answer.read()
    finally:
        connection.close()
    assert answer.status == 404, (path, answer.status, body[:200])
    assert b"[project]" not in body and b"root:" not in body
    assert b"importlib" not in body and b"<html" not in body.lower()


def test_docs_work_offline(http: httpx.Client) -> None:
    """Swagger UI and ReDoc load nothing from another host: every script, style and icon
    they name is served by the registry itself."""
    for page in ("/docs", "/redoc"):
        html = http.get(page)
        assert html.status_code == 200, page
        assert "http://" not in html.text and "https://" not in html.text, page
        urls = re.findall(r'(?:src|href)="([^"]+)"', html.text)
        assert any(u.endswith(".js") for u in urls), page
        for url in urls:
            assert url.startswith("/"), url
            asset = http.get(url)
            assert asset.status_code == 200, url
            assert len(asset.content) > 1000, url
            expected = EXPECTED_TYPES.get(Path(url).suffix)
            if expected is not None:
                assert asset.headers["content-type"].split(";")[0] == expected, url
        assert "/openapi.json" in html.text
    assert http.get("/docs/assets/nope.js").status_code == 404
    assert http.get("/docs/assets/core.py").status_code == 404


def test_openapi_documents_views(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for name in ("ViewDefinition", "Component", "Handler", "Binding", "View", "ViewList"):
        assert name in schemas, name
    assert "text_input" in schemas["Component"]["properties"]["type"]["enum"]
    create = spec["paths"]["/v1/applications/{app_id}/views"]["post"]
    body = create["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/ViewDefinition"}
    assert "/v1/me" in spec["paths"]
    # the console and the assets are not part of the API
    assert not [p for p in spec["paths"] if p.startswith(("/console", "/static", "/docs"))]


def test_openapi_references_resolve(http: httpx.Client) -> None:
    """ReDoc refuses a document with a dangling reference (Swagger UI shows it anyway)."""
    spec = http.get("/openapi.json").json()
    text = json.dumps(spec)
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', text))
    assert refs
    assert refs <= set(spec["components"]["schemas"]), refs - set(spec["components"]["schemas"])
