"""Where a person belongs: the organizations they are a member of (with their role), and joining one by
invitation. Endpoints about the person, not about one organization."""

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from config.api.pagination import paginated_response
from config.api.throttling import ClientRateThrottle, client_ip
from config.api.views import AccountAPIView
from identity import services
from rbac.api.serializers import OrganizationOfMemberOutput
from rbac.selectors import memberships_of

from .serializers import InvitationAcceptInput, SessionOutput
from .views import session_response


class OrganizationListView(AccountAPIView):
    """The organizations the caller belongs to, with their role in each. Needs a login, not an organization."""

    @extend_schema(responses={200: OrganizationOfMemberOutput(many=True)}, tags=["organizations"])
    def get(self, request):
        return paginated_response(self, memberships_of(user=request.user), OrganizationOfMemberOutput)


class InvitationAcceptView(APIView):
    """Accept an invitation: signs up a new user, or attaches an existing one (who proves it with a
    password or a bearer token), and answers with a session."""

    organization_scoped = False
    permission_classes = [AllowAny]
    throttle_classes = [ClientRateThrottle]
    throttle_scope = "auth"

    @extend_schema(request=InvitationAcceptInput, responses={200: SessionOutput}, tags=["members"], auth=[])
    def post(self, request):
        data = InvitationAcceptInput(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_join_by_invitation(
            token=data.validated_data["token"],
            password=data.validated_data.get("password"),
            first_name=data.validated_data["first_name"],
            last_name=data.validated_data["last_name"],
            signed_in=request.user,
            ip=client_ip(request),
        )
        return session_response(user)


urlpatterns = [
    path("organizations/", OrganizationListView.as_view(), name="organization-list"),
    path("invitations/accept/", InvitationAcceptView.as_view(), name="invitation-accept"),
]
