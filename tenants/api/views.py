from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from config.api.pagination import paginated_response
from config.api.views import AccountAPIView
from config.api.viewsets import OrganizationViewSet
from config.permissions import MEMBER
from rbac.selectors import organizations_of
from tenants.models import Organization

from .serializers import CurrentOrganizationOutput, OrganizationOutput


class OrganizationListView(AccountAPIView):
    """The organizations the caller belongs to. Needs a login, not an organization."""

    @extend_schema(responses={200: OrganizationOutput(many=True)}, tags=["organizations"])
    def get(self, request):
        return paginated_response(self, organizations_of(user=request.user), OrganizationOutput)


class CurrentOrganizationViewSet(OrganizationViewSet):
    queryset = Organization.objects.all()
    organization_field = "pk"
    action_permissions = {"current": MEMBER}

    @extend_schema(responses={200: CurrentOrganizationOutput}, tags=["organizations"])
    def current(self, request):
        return Response(CurrentOrganizationOutput(request.tenant, context={"access": self.access}).data)
