from django.urls import path

from . import views

urlpatterns = [
    path(
        "organizations/current/",
        views.CurrentOrganizationViewSet.as_view({"get": "current"}),
        name="organization-current",
    ),
]
