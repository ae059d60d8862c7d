from drf_spectacular.utils import extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from rbac.permissions import OrganizationAccess
from rbac.selectors import organizations_of

from .serializers import CurrentOrganizationOutput, OrganizationOutput


class OrganizationListView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: OrganizationOutput(many=True)}, tags=["organizations"])
    def get(self, request):
        return Response(OrganizationOutput(organizations_of(user=request.user), many=True).data)


class CurrentOrganizationView(APIView):
    permission_classes = [OrganizationAccess]

    @extend_schema(responses={200: CurrentOrganizationOutput}, tags=["organizations"])
    def get(self, request):
        context = {"membership": request.membership}
        return Response(CurrentOrganizationOutput(request.tenant, context=context).data)
