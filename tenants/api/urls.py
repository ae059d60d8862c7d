from django.urls import path

from . import views

urlpatterns = [
    path(
        "organizations/current/",
        views.CurrentOrganizationViewSet.as_view({"get": "current", "patch": "partial_update", "delete": "destroy"}),
        name="organization-current",
    ),
]
