"""SSRF defence: only public addresses, checked on save and again, pinned, before every request."""

from __future__ import annotations

import ipaddress

import pytest

from integrations import ssrf
from integrations.choices import DeliveryStatus
from integrations.errors import InvalidWebhookUrl, UnsafeUrl
from integrations.models import WebhookDelivery
from tests.factories import SYSTEM

from ..problems import field_error

pytestmark = pytest.mark.django_db

FORBIDDEN = {
    "loopback": "http://127.0.0.1/hook",
    "loopback elsewhere in 127/8": "http://127.8.9.10:8080/hook",
    "IPv6 loopback": "http://[::1]/hook",
    "private 10/8": "https://10.1.2.3/hook",
    "private 172.16/12": "https://172.20.0.5/hook",
    "private 192.168/16": "https://192.168.1.10/hook",
    "unique local fc00::/7": "https://[fd12:3456::1]/hook",
    "link-local": "http://169.254.10.20/hook",
    "cloud metadata": "http://169.254.169.254/latest/meta-data/",
    "IPv6 link-local": "http://[fe80::1]/hook",
    "CGNAT 100.64/10": "https://100.64.0.1/hook",
    "unspecified": "http://0.0.0.0/hook",
    "IPv6 unspecified": "http://[::]/hook",
    "multicast": "http://224.0.0.251/hook",
    "IPv6 multicast": "http://[ff02::1]/hook",
    "reserved 240/4": "http://240.0.0.1/hook",
    "broadcast": "http://255.255.255.255/hook",
    "documentation": "http://192.0.2.10/hook",
    "IPv4-mapped private": "http://[::ffff:10.0.0.1]/hook",
    "IPv4-mapped loopback": "http://[::ffff:127.0.0.1]/hook",
    "6to4 of private": "http://[2002:a00:1::]/hook",
    "NAT64 of metadata": "http://[64:ff9b::a9fe:a9fe]/hook",
    "decimal loopback": "http://2130706433/hook",
    "a name that resolves to loopback": "http://localhost:8000/hook",
}


@pytest.mark.parametrize("url", FORBIDDEN.values(), ids=FORBIDDEN.keys())
def test_forbidden_targets_are_refused_at_creation(as_owner_a, url):
    response = as_owner_a.post("/api/v1/webhooks/", {"url": url, "event_types": ["*"]}, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert (body["code"], body["errors"][0]["code"]) == ("validation_error", "unsafe_url")
    assert body["errors"][0]["field"] == "url"


def test_allow_loopback_allows_loopback_only(loopback):
    assert ssrf.check_url("http://127.0.0.1:9000/hook").port == 9000
    assert ssrf.check_url("http://localhost:9000/hook").host == "localhost"
    assert ssrf.check_url("http://[::1]/hook").host_header == "[::1]"
    for url in ("http://10.0.0.1/", "http://169.254.169.254/", "http://192.168.0.1/", "http://[::ffff:10.0.0.1]/"):
        with pytest.raises(UnsafeUrl):
            ssrf.check_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "gopher://x/",
        "https://user:pass@example.com/",
        "https:///x",
        "x",
    ],
)
def test_only_plain_http_urls(url):
    with pytest.raises(InvalidWebhookUrl):
        ssrf.check_url(url)


def test_a_host_that_does_not_resolve_is_refused(as_owner_a):
    response = as_owner_a.post(
        "/api/v1/webhooks/", {"url": "https://nothing-here.invalid/hook", "event_types": ["*"]}, format="json"
    )
    assert response.status_code == 400
    assert field_error(response)["code"] == "unresolvable_host"


def test_every_address_of_a_name_must_be_public(resolver):
    resolver({"mixed.example.test": ["93.184.216.34", "10.0.0.7"], "public.example.test": ["93.184.216.34"]})
    with pytest.raises(UnsafeUrl, match="10.0.0.7"):
        ssrf.check_url("https://mixed.example.test/hook")
    target = ssrf.check_url("https://public.example.test/hook?x=1")
    assert (target.host, target.port, target.path, target.host_header) == (
        "public.example.test",
        443,
        "/hook?x=1",
        "public.example.test",
    )


def test_public_addresses_pass():
    for address in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "8.8.8.8", "2002:5db8:d822::1"):
        assert ssrf.forbidden_reason(ipaddress.ip_address(address), allow_loopback=False) is None


def test_dns_rebinding_after_creation_is_refused_before_connecting(
    org_a, in_tenant, make_endpoint, resolver, django_capture_on_commit_callbacks, monkeypatch
):
    """Public when saved, private when sent: the attempt fails without any connection."""
    from crm import services as crm
    from integrations import delivery

    resolver({"rebind.example.test": ["93.184.216.34"]})
    make_endpoint(org_a, "https://rebind.example.test/hook")
    resolver({"rebind.example.test": ["10.0.0.1"]})
    monkeypatch.setattr(delivery, "post", lambda *a, **k: pytest.fail("must not connect"))
    with in_tenant(org_a), django_capture_on_commit_callbacks(execute=True):
        lead = crm.lead_create(actor=SYSTEM, name="Rebound")
    with in_tenant(org_a):
        found = WebhookDelivery.objects.get(event__subject_id=str(lead.pk))
    assert found.status == DeliveryStatus.PENDING
    assert found.last_error.startswith("Refused: rebind.example.test resolves to 10.0.0.1")


def test_the_request_goes_to_the_address_checked_with_the_original_host(
    org_a, in_tenant, loopback, receiver, make_endpoint, resolver, django_capture_on_commit_callbacks
):
    """The name is resolved once and the connection made to that address, with the name in Host."""
    from crm import services as crm

    resolver({"hooks.example.test": ["127.0.0.1"]})
    make_endpoint(org_a, f"http://hooks.example.test:{receiver.port}/in?via=crm")
    with in_tenant(org_a), django_capture_on_commit_callbacks(execute=True):
        crm.lead_create(actor=SYSTEM, name="Pinned")
    [request] = receiver.wait_for(1)
    assert request.headers["host"] == f"hooks.example.test:{receiver.port}"
    assert request.path == "/in?via=crm"


def test_https_is_verified_against_the_name_while_connecting_to_the_pinned_address(
    org_a, in_tenant, loopback, make_endpoint, resolver, django_capture_on_commit_callbacks, monkeypatch, tmp_path
):
    """TLS: SNI and certificate verification use the URL's host name, not the address connected to."""
    from crm import services as crm
    from integrations import delivery

    from .receiver import Receiver
    from .tls import certificate_for, serve_tls

    ca_file, cert_file, key_file = certificate_for("hooks.example.test", tmp_path)
    monkeypatch.setattr(delivery, "CA_BUNDLE", str(ca_file))
    receiver = serve_tls(Receiver(), cert_file, key_file)
    try:
        resolver({"hooks.example.test": ["127.0.0.1"], "other.example.test": ["127.0.0.1"]})
        make_endpoint(org_a, f"https://hooks.example.test:{receiver.port}/hooks", ["lead.created"])
        make_endpoint(org_a, f"https://other.example.test:{receiver.port}/hooks", ["lead.created"])
        with in_tenant(org_a), django_capture_on_commit_callbacks(execute=True):
            crm.lead_create(actor=SYSTEM, name="Secure")
        [request] = receiver.wait_for(1)
        assert request.headers["host"] == f"hooks.example.test:{receiver.port}"
        with in_tenant(org_a):
            mismatch = WebhookDelivery.objects.get(endpoint__url__contains="other.example.test")
        assert mismatch.status == DeliveryStatus.PENDING
        assert mismatch.last_error.startswith("TLS error")
    finally:
        receiver.stop()
