"""The API docs pages load every asset from the service itself (no CDN): each ``src`` and
``href`` of every UI page is a local path the service answers with 200."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from litestar.testing import TestClient


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [value for name, value in attrs if name in {"src", "href"} and value]


def links_of(html: str) -> list[str]:
    parser = _Links()
    parser.feed(html)
    return parser.links


@pytest.mark.parametrize("page", ["/schema", "/schema/swagger"])
def test_every_asset_of_the_docs_page_is_served_locally(client: TestClient, page: str) -> None:
    response = client.get(page, headers={"Authorization": ""})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    links = links_of(response.text)
    assert len(links) >= 4  # stylesheet, bundle, standalone preset, icon
    assert not [link for link in links if "//" in link], links  # no other host
    types = set()
    for link in links:
        asset = client.get(link, headers={"Authorization": ""})
        assert asset.status_code == 200, link
        assert len(asset.content) > 0, link
        types.add(asset.headers["content-type"].split(";")[0])
    assert types == {"text/css", "text/javascript", "image/png"}


def test_the_openapi_document_is_served_and_the_assets_are_not_in_it(client: TestClient) -> None:
    document = client.get("/schema/openapi.json", headers={"Authorization": ""})
    assert document.status_code == 200
    paths = document.json()["paths"]
    assert "/v1/zones" in paths
    assert not [p for p in paths if p.startswith(("/schema", "/metrics"))]
    assert client.get("/schema/assets/swagger-ui/no-such.js").status_code == 404
    assert client.get("/schema/assets/swagger-ui/../../../etc/passwd").status_code == 404
