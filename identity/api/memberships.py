"""Where a person belongs: the organizations they are a member of (with their role), and joining one by
invitation. Endpoints about the person, not about one organization."""

from django.urls import path
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.errors import ValidationFailed
from config.api.pagination import paginated_response
from config.api.throttling import ClientRateThrottle, client_ip
from config.api.views import AccountAPIView
from identity import services
from rbac.api.serializers import OrganizationOfMemberOutput
from rbac.selectors import invitation_for_invitee, memberships_of

from .serializers import InvitationAcceptInput, InvitationPreviewOutput, SessionOutput
from .views import session_response


class OrganizationListView(AccountAPIView):
    """The organizations the caller belongs to, with their role in each. Needs a login, not an organization."""

    @extend_schema(responses={200: OrganizationOfMemberOutput(many=True)}, tags=["organizations"])
    def get(self, request):
        return paginated_response(self, memberships_of(user=request.user), OrganizationOfMemberOutput)


PROBLEM = {"$ref": "#/components/schemas/Problem"}


class InvitationAcceptView(APIView):
    """An invitation, by the token its e-mail carries: look at it (GET), then accept it (POST). Rate-limited per
    client like sign-in (``THROTTLE_AUTH_RATE``)."""

    organization_scoped = False
    permission_classes = [AllowAny]
    throttle_classes = [ClientRateThrottle]
    throttle_scope = "auth"

    @extend_schema(
        summary="Look at an invitation before accepting it",
        description="The organization, the inviter, the role and the expiry of the pending invitation `token` "
        "names; no login needed. A token that names no pending invitation (never sent, revoked, replaced by a "
        "resend, its organization gone) is 404 `invitation_not_found`, the same answer byte for byte; an expired "
        "invitation is 410 `invitation_expired`, an accepted one 410 `invitation_accepted`.",
        parameters=[OpenApiParameter("token", str, required=True, description="The token of the invitation link.")],
        responses={
            200: InvitationPreviewOutput,
            404: OpenApiResponse(description="`invitation_not_found`"),
            (410, "application/problem+json"): OpenApiResponse(
                response=PROBLEM, description="`invitation_expired`, `invitation_accepted`"
            ),
        },
        tags=["members"],
        auth=[],
    )
    def get(self, request):
        token = request.query_params.get("token", "")
        if not token:
            raise ValidationFailed("The token of the invitation link is required.", field="token", code="required")
        invitation = invitation_for_invitee(token=token)
        return Response(InvitationPreviewOutput(invitation).data)

    @extend_schema(request=InvitationAcceptInput, responses={200: SessionOutput}, tags=["members"], auth=[])
    def post(self, request):
        """Accept an invitation: signs up a new user, or attaches an existing one (who proves it with a password or
        a bearer token), and answers with a session."""
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
