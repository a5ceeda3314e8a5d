"""API docs: the bearer scheme in OpenAPI, Swagger UI and ReDoc served with local assets only,
and pages that other sites may not frame."""

from __future__ import annotations

import re

import pytest

from tests.api.conftest import Api

pytestmark = pytest.mark.anyio


async def test_openapi_declares_the_bearer_scheme_on_the_ocr_routes(api: Api):
    spec = (await api.http.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["HTTPBearer"] == {"type": "http", "scheme": "bearer", "description": schemes["HTTPBearer"]["description"]}
    assert schemes["APIKeyQuery"]["in"] == "query" and schemes["APIKeyQuery"]["name"] == "key"
    for path in ("/v1/ocr", "/v1/ocr/batch", "/v1/ocr/upload", "/ocr"):
        assert spec["paths"][path]["post"]["security"] == [{"HTTPBearer": []}], path
    assert spec["paths"]["/image_label"]["post"]["security"] == [{"APIKeyQuery": []}]
    assert "security" not in spec["paths"]["/healthz"]["get"]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_their_assets_from_the_service_itself(api: Api, page):
    r = await api.http.get(page, headers={"Authorization": ""})
    assert r.status_code == 200
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", r.text) + re.findall(r"""url: ?['"]([^'"]+)['"]""", r.text)
    assert urls and not [u for u in urls if u.startswith(("http:", "https:", "//"))], urls
    for url in urls:
        if url.startswith("/docs-assets/"):
            asset = await api.http.get(url, headers={"Authorization": ""})
            assert asset.status_code == 200 and len(asset.content) > 1000, url
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"] and r.headers["x-frame-options"] == "DENY"


async def test_the_demo_page_may_not_be_framed(api: Api):
    r = await api.http.get("/", headers={"Authorization": ""})
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"] and r.headers["x-frame-options"] == "DENY"
