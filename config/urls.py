from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from config import monitoring  # noqa: F401  # registers the gauges /metrics reads
from config.api.views import healthz, readyz
from config.metrics import metrics_view

api_v1 = [
    path("auth/", include("identity.api.urls")),
    path("", include("tenants.api.urls")),
    path("", include("rbac.api.urls")),
    path("", include("billing.api.urls")),
    path("", include("crm.api.urls")),
    path("", include("crm.api.transfer_urls")),
    path("", include("crm.campaigns.api.urls")),
    path("", include("identity.api.keys")),
    path("", include("identity.api.memberships")),
    path("", include("pipelines.api.urls")),
    path("", include("integrations.api.urls")),
    path("", include("analytics.api.urls")),
    path("", include("assistant.api.urls")),
]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    # Unsubscribe pages and provider callbacks, on the organization's host (no login).
    path("campaigns/", include("crm.campaigns.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
]

handler400 = "config.api.errors.handler400"
handler403 = "config.api.errors.handler403"
handler404 = "config.api.errors.handler404"
handler500 = "config.api.errors.handler500"
