from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from config.api.viewsets import OrganizationViewSet
from config.permissions import MEMBER
from tenants.models import Organization

from .serializers import CurrentOrganizationOutput


class CurrentOrganizationViewSet(OrganizationViewSet):
    queryset = Organization.objects.all()
    organization_field = "pk"
    action_permissions = {"current": MEMBER}

    @extend_schema(responses={200: CurrentOrganizationOutput}, tags=["organizations"])
    def current(self, request):
        return Response(CurrentOrganizationOutput(request.tenant, context={"access": self.access}).data)
