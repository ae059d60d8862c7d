"""What a warm list request costs, and the shortcuts that keep it cheap giving the results of the long way round:
filters prepared once per class, the owner serialized without DRF's generic loop, authorization decisions kept in
process under their versioned keys, rate-limit counters counted by one script, one Redis client per pool."""

from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.core.cache import caches
from django.db import connection, transaction
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context
from rest_framework import serializers

from billing import ratelimit
from billing.models import Override
from config import decision_cache
from config.api import filters as api_filters
from config.api.errors import ValidationFailed
from config.api.references import PersonReference
from crm import services
from crm.api import filters as crm_filters
from crm.api.serializers import LeadOutput
from crm.models import Activity, Lead, Tag
from pipelines.api.filters import DealFilter
from rbac import access as rbac_access
from tests.factories import SYSTEM

from ..factories import make_user

pytestmark = pytest.mark.django_db

LIST = "/api/v1/leads/?page_size=50&status=new&ordering=-created_at"


# --- the whole request ---------------------------------------------------------------------------------------


def test_a_warm_leads_list_runs_only_its_own_two_queries(as_owner_a, org_a, owner_a, in_tenant):
    with in_tenant(org_a):
        for i in range(3):
            services.lead_create(actor=SYSTEM, owner_id=owner_a.pk, name=f"Cost {i}", tags=["a", "b"])
    assert as_owner_a.get(LIST).status_code == 200
    with CaptureQueriesContext(connection) as queries:
        response = as_owner_a.get(LIST)
    assert response.status_code == 200
    sql = [q["sql"] for q in queries.captured_queries]
    # the count and the page (with its owners and tag names): no user, membership, plan or tenant lookup
    assert len(sql) == 2, sql
    assert sql[0].startswith("SELECT COUNT(*)")
    assert 'FROM "crm_lead"' in sql[1]
    assert '"crm_tag"' in sql[1]
    assert sorted(response.json()["results"][0]["tags"]) == ["a", "b"]


# --- filters -------------------------------------------------------------------------------------------------

FILTERSETS = [
    crm_filters.LeadFilter,
    crm_filters.CompanyFilter,
    crm_filters.ContactFilter,
    crm_filters.ActivityFilter,
    crm_filters.TagFilter,
    crm_filters.CustomFieldFilter,
    DealFilter,
]
QUERIES = [
    "",
    "status=new",
    "status=new&status=contacted",
    "status=bogus",
    "status=&owner=",
    "owner=3",
    "owner=abc",
    "unassigned=true",
    "unassigned=false",
    "unassigned=maybe",
    "tags=Alpha,%20beta",
    "tags=",
    "created_after=2025-01-01T00:00:00Z&created_before=2025-02-01",
    "created_after=garbage",
    "updated_after=2025-01-01T00:00:00%2B02:00&updated_before=2025-01-02T10:00",
    "score_min=5&score_max=x",
    "value_min=10.5&value_max=20",
    "priority=high&source=web&source=referral",
    "page_size=50&status=new&ordering=-created_at&search=foo",
    "name=acme&size=small&domain=Example.COM&industry=x&city=y&country=z",
    "email=A@B.C&has_email=true&do_not_contact=false&company=4&lifecycle_stage=lead",
    "mine=true&open=false&kind=call&kind=note&lead=1&due_after=2025-01-01T00:00:00Z",
    "record_type=lead&type=text&required=true",
    "pipeline=1&stage=2&status=open&close_after=2025-01-01&won_before=2025-01-01T00:00&amount_min=1",
    "cf_unknown=1",
]


def _outcome(filterset_class, query, request):
    filterset = filterset_class(QueryDict(query), filterset_class._meta.model.objects.all(), request=request)
    valid = filterset.is_valid()
    errors = {name: list(messages) for name, messages in filterset.errors.items()}
    try:
        sql = str(filterset.qs.query) if valid else None
    except ValidationFailed as error:
        sql = f"refused: {error.detail}"
    return valid, errors, sql


@pytest.mark.parametrize("filterset_class", FILTERSETS, ids=lambda c: c.__name__)
def test_prepared_filters_filter_like_django_filter(filterset_class, org_a, in_tenant):
    """The same validity, errors and SQL as django-filter's own way (every filter deep-copied, a form field per
    filter built on every request), for every query string."""
    reference = type(
        f"Reference{filterset_class.__name__}", (filterset_class,), {"_prepared": classmethod(lambda c: None)}
    )
    request = SimpleNamespace(access=SimpleNamespace(user_id=7))
    with in_tenant(org_a):
        for query in QUERIES:
            assert _outcome(filterset_class, query, request) == _outcome(reference, query, request), query
    assert filterset_class._prepared() is not None  # the fast way was the one compared


def test_each_filterset_binds_its_own_filters(org_a, in_tenant):
    """Method filters resolve on the filterset of their own request, never on one built for another request."""
    first, second = (SimpleNamespace(access=SimpleNamespace(user_id=user_id)) for user_id in (101, 202))
    with in_tenant(org_a):
        one = crm_filters.ActivityFilter(QueryDict("mine=true"), Activity.objects.all(), request=first)
        two = crm_filters.ActivityFilter(QueryDict("mine=true"), Activity.objects.all(), request=second)
        assert one.filters["mine"] is not two.filters["mine"]
        assert '"owner_id" = 101' in str(one.qs.query)
        assert '"owner_id" = 202' in str(two.qs.query)


def test_the_rendered_filter_form_still_has_every_filter():
    filterset = crm_filters.LeadFilter(QueryDict("status=new"), Lead.objects.all())
    assert list(filterset.form.fields) == list(crm_filters.LeadFilter.base_filters)
    assert list(filterset.filtering_form.fields) == ["status"]


def test_a_filterset_with_choices_from_a_queryset_is_left_to_django_filter():
    from django_filters import rest_framework as filters

    class ByTag(api_filters.PreparedFilterSet):
        tag = filters.ModelChoiceFilter(queryset=lambda request: Tag.objects.all())

        class Meta:
            model = Lead
            fields = ["tag"]

    assert ByTag._prepared() is None
    assert list(ByTag(QueryDict(""), Lead.objects.all()).filtering_form.fields) == ["tag"]


# --- serializer ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "owner",
    [
        SimpleNamespace(id=5, email="Someone@Example.test", full_name="Some One"),
        SimpleNamespace(id=6, email="", full_name=""),
        SimpleNamespace(id=7, email=None, full_name=None),
    ],
)
def test_person_reference_gives_what_drf_gives(owner):
    assert PersonReference().to_representation(owner) == serializers.Serializer.to_representation(
        PersonReference(), owner
    )


def test_a_lead_with_and_without_owner_serializes_like_drf(org_a, owner_a, in_tenant, monkeypatch):
    with in_tenant(org_a):
        services.lead_create(actor=SYSTEM, owner_id=owner_a.pk, name="Owned", estimated_value=Decimal("12.5"))
        services.lead_create(actor=SYSTEM, owner_id=None, name="Nobody's")
        leads = list(Lead.objects.select_related("owner").prefetch_related("tags").order_by("pk"))
        fast = LeadOutput(leads, many=True).data
        monkeypatch.setattr(PersonReference, "to_representation", serializers.Serializer.to_representation)
        assert fast == LeadOutput(leads, many=True).data
    assert {lead["owner"]["email"] if lead["owner"] else None for lead in fast} == {owner_a.email, None}


# --- authorization decisions kept in process ------------------------------------------------------------------


class _Counting:
    def __init__(self, cache, monkeypatch):
        self.calls = []
        for name in ("get", "get_many", "set", "add"):
            original = getattr(cache, name)
            monkeypatch.setattr(cache, name, self._counted(name, original))

    def _counted(self, name, original):
        def call(*args, **kwargs):
            self.calls.append(name)
            return original(*args, **kwargs)

        return call


def test_a_warm_decision_reads_only_the_version_tokens(org_a, owner_a, monkeypatch):
    assert rbac_access.access_for(user=owner_a, organization=org_a) is not None
    counting = _Counting(caches["control"], monkeypatch)
    with CaptureQueriesContext(connection) as queries:
        access = rbac_access.access_for(user=owner_a, organization=org_a)
    assert access.role_key == "owner"
    assert counting.calls == ["get_many"]
    assert len(queries) == 0


def test_invalidated_decisions_are_decided_again(org_a, owner_a):
    before = rbac_access.access_for(user=owner_a, organization=org_a)
    assert rbac_access.access_for(user=owner_a, organization=org_a) is before  # kept
    decision_cache.invalidate_decisions(organization_id=org_a.pk)
    with CaptureQueriesContext(connection) as queries:
        after = rbac_access.access_for(user=owner_a, organization=org_a)
    assert after is not before
    assert len(queries) >= 1  # decided again from PostgreSQL


def test_nothing_is_kept_when_the_versions_cannot_be_read(org_a, owner_a, monkeypatch):
    rbac_access.access_for(user=owner_a, organization=org_a)  # kept under the versions read then
    monkeypatch.setattr(decision_cache, "_read_versions", lambda organization_id: None)  # the cache cannot tell them
    for _ in range(2):
        with CaptureQueriesContext(connection) as queries:
            assert rbac_access.access_for(user=owner_a, organization=org_a) is not None
        assert len(queries) >= 1


def test_a_request_reads_the_version_tokens_once(as_owner_a, org_a, monkeypatch):
    """The member's access and the plan's entitlements are two decisions about one organization: one round trip."""
    assert as_owner_a.get(LIST).status_code == 200
    reads, real = [], decision_cache._read_versions
    monkeypatch.setattr(
        decision_cache, "_read_versions", lambda organization_id: reads.append(1) or real(organization_id)
    )
    for _ in range(2):
        assert as_owner_a.get(LIST).status_code == 200
    assert len(reads) == 2
    assert decision_cache._READ.get() is None  # nothing is left behind for the thread's next request


def test_within_a_request_a_change_made_elsewhere_waits_for_the_next_unless_read_fresh(org_a):
    from billing.entitlements import entitlements_for

    with decision_cache.versions_read_once():
        before = entitlements_for(organization=org_a)
        caches["control"].set(decision_cache._version_key(org_a.pk), "changed-by-another-process", None)
        assert entitlements_for(organization=org_a) is before  # the versions this request read
        fresh = entitlements_for(organization=org_a, fresh=True)
        assert fresh is not before
        assert entitlements_for(organization=org_a) is fresh  # the request now reads the newer versions
        decision_cache.invalidate_decisions(organization_id=org_a.pk)  # a change made within the request
        assert entitlements_for(organization=org_a) is not fresh
    outside = entitlements_for(organization=org_a)
    assert entitlements_for(organization=org_a) is outside


def test_a_limit_is_read_again_fresh_under_its_lock(org_a, monkeypatch):
    """A plan change that held the limit's lock has committed when the lock is granted: the value read under it
    must be the new one, even if the request read the entitlements before."""
    from billing import services as billing_services
    from billing.features import Limit

    reads = []
    real = billing_services.entitlements_for
    monkeypatch.setattr(
        billing_services,
        "entitlements_for",
        lambda **kwargs: reads.append(kwargs.get("fresh", False)) or real(**kwargs),
    )
    Override.objects.create(organization=org_a, limit="contacts", limit_value=3)
    with decision_cache.versions_read_once(), transaction.atomic(), tenant_context(org_a):
        billing_services.locked_limit(organization=org_a, limit=Limit.CONTACTS)
    assert reads == [False, True]


def test_a_kept_decision_ends_with_its_shared_entry(org_a, owner_a, monkeypatch):
    rbac_access.access_for(user=owner_a, organization=org_a)
    later = decision_cache.clock() + decision_cache.CACHE_TTL_SECONDS + 1
    monkeypatch.setattr(decision_cache, "clock", lambda: later)
    counting = _Counting(caches["control"], monkeypatch)
    rbac_access.access_for(user=owner_a, organization=org_a)
    assert "get" in counting.calls  # past its end, the decision is no longer taken from this process


# --- rate-limit counters -------------------------------------------------------------------------------------


def test_counters_count_per_window_and_expire_with_it():
    user = make_user()
    principal = f"user:0:{user.pk}"
    limits = {"api_calls_per_minute": 100, "api_calls_per_day": 1000}
    first = ratelimit.hit(principal=principal, limits=limits, now=1_000_000.0)
    second = ratelimit.hit(principal=principal, limits=limits, now=1_000_001.0)
    assert [w.count for w in first] == [1, 1]
    assert [w.count for w in second] == [2, 2]
    cache = caches["control"]
    client = cache._cache.get_client(write=True)
    for window in second:
        start = int(1_000_001 // window.seconds) * window.seconds
        ttl = client.ttl(cache.make_and_validate_key(f"ratelimit:{principal}:{window.seconds}:{start}"))
        assert 0 < ttl <= window.seconds + 5


def test_a_counter_left_without_expiry_gets_one():
    principal = "user:0:stray"
    cache = caches["control"]
    client = cache._cache.get_client(write=True)
    key = cache.make_and_validate_key(f"ratelimit:{principal}:60:{int(2_000_000 // 60) * 60}")
    client.set(key, 5)
    [window] = ratelimit.hit(principal=principal, limits={"api_calls_per_minute": 10}, now=2_000_000.0)
    assert window.count == 6
    assert 0 < client.ttl(key) <= 65


# --- the cache's Redis client ----------------------------------------------------------------------------------


def test_the_cache_reuses_one_redis_client_per_pool():
    backend = caches["control"]._cache
    assert backend.get_client("a") is backend.get_client("b", write=True)
    caches["control"].set("reuse-check", {"x": 1}, 5)
    assert caches["control"].get("reuse-check") == {"x": 1}
