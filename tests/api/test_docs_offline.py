"""The API documentation pages work offline: everything they load comes from this server."""

import re

import pytest
from django.contrib.staticfiles import finders

pytestmark = pytest.mark.django_db

# Any absolute or protocol-relative URL in the page: a host other than this server's.
EXTERNAL = re.compile(r"""(?:https?:)?//[A-Za-z0-9.-]+""")
LOADED = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


@pytest.mark.parametrize("url", ["/api/redoc/", "/api/docs/"])
def test_the_docs_page_references_no_external_host(api, url):
    """ReDoc's page linked Google Fonts (fonts.googleapis.com, fonts.gstatic.com)."""
    response = api.get(url)

    assert response.status_code == 200
    html = response.content.decode()
    assert EXTERNAL.findall(html) == []
    loaded = LOADED.findall(html)
    assert loaded, "the page loads its scripts from somewhere"
    for path in loaded:
        assert path.startswith("/static/"), path
        assert finders.find(path.removeprefix("/static/")), f"{path} is not a static file of this server"
