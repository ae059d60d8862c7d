"""An Enterprise organization's own model key: stored encrypted, never shown, used instead of the deployment's."""

from __future__ import annotations

import pytest

from assistant.models import ModelSettings
from billing.services import subscription_change_plan
from rbac.models import AuditEntry

pytestmark = pytest.mark.django_db

URL = "/api/v1/assistant/model-settings/"


def test_the_own_key_is_encrypted_never_shown_and_used(org_a, in_tenant, as_owner_a, conversation, model, settings):
    assert as_owner_a.get(URL).json() == {"has_key": False, "model": "", "updated_at": None}
    response = as_owner_a.put(URL, {"api_key": "sk-org-secret", "model": "org-model"}, format="json")
    assert response.status_code == 200
    assert response.json()["has_key"] is True
    assert "sk-org-secret" not in response.content.decode()
    assert "sk-org-secret" not in as_owner_a.get(URL).content.decode()
    with in_tenant(org_a):
        stored = ModelSettings.objects.get().api_key_encrypted
    assert stored
    assert "sk-org-secret" not in stored
    entry = AuditEntry.objects.get(action="assistant.model_key.set", organization=org_a)
    assert "sk-org-secret" not in str(entry.after)

    pk = conversation()
    sent = as_owner_a.post(f"/api/v1/assistant/conversations/{pk}/messages/", {"content": "hi"}, format="json")
    assert sent.status_code == 201
    assert model.authorizations[-1] == "Bearer sk-org-secret"
    assert model.requests[-1]["model"] == "org-model"

    settings.ASSISTANT_ENCRYPTION_KEY = "rotated"  # the stored key no longer decrypts: the deployment's is used
    as_owner_a.post(f"/api/v1/assistant/conversations/{pk}/messages/", {"content": "hi"}, format="json")
    assert model.authorizations[-1] == "Bearer test-key"

    assert as_owner_a.delete(URL).status_code == 204
    assert as_owner_a.get(URL).json()["has_key"] is False


def test_own_key_without_a_deployment_model(org_a, as_owner_a, conversation, model, settings):
    settings.ASSISTANT_API_KEY = ""
    pk = conversation()
    url = f"/api/v1/assistant/conversations/{pk}/messages/"
    assert as_owner_a.post(url, {"content": "hi"}, format="json").status_code == 503
    as_owner_a.put(URL, {"api_key": "sk-org"}, format="json")
    assert as_owner_a.post(url, {"content": "hi"}, format="json").status_code == 201


def test_only_enterprise_and_managers_of_it(org_a, member, as_owner_a):
    _rep, rep = member(org_a, "sales_rep")
    refused = rep.put(URL, {"api_key": "x"}, format="json")
    assert refused.status_code == 403
    assert refused.json()["code"] == "permission_denied"
    subscription_change_plan(organization=org_a, plan_code="pro", actor=None)
    response = as_owner_a.get(URL)
    assert response.status_code == 403
    assert response.json()["code"] == "feature_not_in_plan"
    assert response.json()["plan"]["code"] == "enterprise"
