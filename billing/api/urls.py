from django.urls import path

from . import views

urlpatterns = [
    path("plans/", views.PlanListView.as_view(), name="plan-list"),
    path("billing/subscription/", views.BillingViewSet.as_view({"get": "subscription"}), name="billing-subscription"),
    path("billing/usage/", views.BillingViewSet.as_view({"get": "usage"}), name="billing-usage"),
    path("billing/invoices/", views.BillingViewSet.as_view({"get": "invoices"}), name="billing-invoices"),
    path(
        "billing/subscription/change-plan/",
        views.BillingViewSet.as_view({"post": "change_plan"}),
        name="billing-change-plan",
    ),
    path("billing/portal/", views.BillingViewSet.as_view({"post": "portal"}), name="billing-portal"),
    path("billing/provider/webhook/", views.ProviderWebhookView.as_view(), name="billing-provider-webhook"),
]
