from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.tokens import RefreshToken

from config.api.errors import DomainError
from config.api.throttling import ClientRateThrottle, client_ip
from config.api.views import AccountAPIView, PublicAPIView
from identity import services
from identity.models import User
from rbac.selectors import memberships_of

from .serializers import (
    GoogleSignInInput,
    MeOutput,
    MeUpdateInput,
    PasswordChangeInput,
    PasswordResetConfirmInput,
    PasswordResetInput,
    RefreshInput,
    RegisterInput,
    RegisterOutput,
    SessionOutput,
    TokenInput,
    TokenPairOutput,
)


class InvalidToken(DomainError):
    code = "token_not_valid"
    status = status.HTTP_401_UNAUTHORIZED
    title = "The token is invalid, expired or revoked."


def session_response(user, *, status_code=status.HTTP_200_OK, **extra) -> Response:
    body = {**services.tokens_for(user=user), "user": user, "organizations": memberships_of(user=user), **extra}
    serializer = RegisterOutput if "organization" in extra else SessionOutput
    return Response(serializer(body).data, status=status_code)


class RegisterView(PublicAPIView):
    throttle_scope = "auth"

    @extend_schema(request=RegisterInput, responses={201: RegisterOutput}, tags=["auth"], auth=[])
    def post(self, request):
        serializer = RegisterInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        user, organization = services.user_register(
            email=data["email"],
            password=data["password"],
            first_name=data["first_name"],
            last_name=data["last_name"],
            organization_name=data["organization_name"],
        )
        return session_response(user, status_code=status.HTTP_201_CREATED, organization=organization)


class TokenView(PublicAPIView):
    """Sign in with e-mail and password. Repeated failures lock sign-in for the e-mail (or from the IP) for a
    while: 429 ``account_locked`` with ``Retry-After``."""

    throttle_scope = "auth"

    @extend_schema(request=TokenInput, responses={200: SessionOutput}, tags=["auth"], auth=[])
    def post(self, request):
        serializer = TokenInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.user_sign_in(
            email=serializer.validated_data["email"],
            password=serializer.validated_data["password"],
            ip=client_ip(request),
        )
        return session_response(user)


class TokenRefreshView(PublicAPIView):
    """Exchange a refresh token for a new pair; the old refresh token is blacklisted (rotation)."""

    @extend_schema(request=RefreshInput, responses={200: TokenPairOutput}, tags=["auth"], auth=[])
    def post(self, request):
        serializer = TokenRefreshSerializer(data=request.data)
        try:
            serializer.is_valid(raise_exception=True)
        except TokenError as exc:
            raise InvalidToken(str(exc)) from exc
        except User.DoesNotExist as exc:  # the account was deleted
            raise InvalidToken() from exc
        return Response(TokenPairOutput(serializer.validated_data).data)


class LogoutView(PublicAPIView):
    @extend_schema(request=RefreshInput, responses={204: None}, tags=["auth"], auth=[])
    def post(self, request):
        serializer = RefreshInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            RefreshToken(serializer.validated_data["refresh"]).blacklist()
        except TokenError as exc:
            raise InvalidToken(str(exc)) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(AccountAPIView):
    """The signed-in person, with the organizations they belong to and their role in each."""

    @extend_schema(responses={200: MeOutput}, tags=["auth"])
    def get(self, request):
        return Response(MeOutput(request.user).data)

    @extend_schema(request=MeUpdateInput, responses={200: MeOutput}, tags=["auth"])
    def patch(self, request):
        serializer = MeUpdateInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.user_update(user=request.user, **serializer.validated_data)
        return Response(MeOutput(user).data)


class PasswordChangeView(AccountAPIView):
    """Change the password (the current one is required). Every existing session ends; the answer is a new one."""

    throttle_classes = [ClientRateThrottle]
    throttle_scope = "auth"

    @extend_schema(request=PasswordChangeInput, responses={200: SessionOutput}, tags=["auth"])
    def post(self, request):
        serializer = PasswordChangeInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.password_change(
            user=request.user,
            current_password=serializer.validated_data["current_password"],
            new_password=serializer.validated_data["new_password"],
            ip=client_ip(request),
        )
        return session_response(user)


class PasswordResetView(PublicAPIView):
    """Ask for a password-reset code by e-mail. Always 202, whether or not an account has this address."""

    throttle_scope = "auth_code"

    @extend_schema(
        request=PasswordResetInput,
        responses={202: OpenApiResponse(description="If an account has this e-mail, a code is on its way.")},
        tags=["auth"],
        auth=[],
    )
    def post(self, request):
        serializer = PasswordResetInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.password_reset_request(email=serializer.validated_data["email"])
        return Response(status=status.HTTP_202_ACCEPTED)


class PasswordResetConfirmView(PublicAPIView):
    """Set a new password with the e-mailed code (400 ``invalid_code`` when it is wrong, expired, used or
    superseded). Every existing session ends; the answer is a new one."""

    throttle_scope = "auth_code"

    @extend_schema(request=PasswordResetConfirmInput, responses={200: SessionOutput}, tags=["auth"], auth=[])
    def post(self, request):
        serializer = PasswordResetConfirmInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.password_reset_confirm(
            email=serializer.validated_data["email"],
            code=serializer.validated_data["code"],
            new_password=serializer.validated_data["new_password"],
        )
        return session_response(user)


class GoogleSignInView(PublicAPIView):
    """Sign in with a Google ID token; the first sign-in creates the account (201), without an organization.
    404 ``google_sign_in_disabled`` when no Google client ID is configured."""

    throttle_scope = "auth"

    @extend_schema(
        request=GoogleSignInInput,
        responses={
            200: SessionOutput,
            201: SessionOutput,
            (503, "application/problem+json"): OpenApiResponse(
                response={"$ref": "#/components/schemas/Problem"},
                description="Google's signing certificates are unreachable (`google_unavailable`).",
            ),
        },
        tags=["auth"],
        auth=[],
    )
    def post(self, request):
        serializer = GoogleSignInInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        user, created = services.user_sign_in_with_google(id_token=serializer.validated_data["id_token"])
        return session_response(user, status_code=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
