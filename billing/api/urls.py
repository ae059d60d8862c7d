from django.urls import path

from . import views

urlpatterns = [
    path("plans/", views.PlanListView.as_view(), name="plan-list"),
    path("billing/subscription/", views.BillingViewSet.as_view({"get": "subscription"}), name="billing-subscription"),
    path("billing/usage/", views.BillingViewSet.as_view({"get": "usage"}), name="billing-usage"),
    path(
        "billing/subscription/change-plan/",
        views.BillingViewSet.as_view({"post": "change_plan"}),
        name="billing-change-plan",
    ),
]
