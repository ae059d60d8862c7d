from __future__ import annotations

import pytest
from django.test import override_settings

from .fake_model import FakeModel


@pytest.fixture
def model():
    """The scripted model on loopback, and the co-pilot pointed at it."""
    fake = FakeModel()
    with override_settings(
        ASSISTANT_BASE_URL=fake.base_url,
        ASSISTANT_MODEL="scripted",
        ASSISTANT_API_KEY="test-key",
        ASSISTANT_TIMEOUT_SECONDS=1.0,
        ASSISTANT_MAX_TOOL_ROUNDS=3,
    ):
        yield fake
    fake.close()


@pytest.fixture
def conversation(as_owner_a):
    def make(client=None, title=""):
        response = (client or as_owner_a).post("/api/v1/assistant/conversations/", {"title": title}, format="json")
        assert response.status_code == 201, response.content
        return response.json()["id"]

    return make
