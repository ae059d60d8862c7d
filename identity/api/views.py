from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.tokens import RefreshToken

from config.api.errors import DomainError
from config.api.views import AccountAPIView, PublicAPIView
from identity import services
from identity.errors import InvalidCredentials
from rbac.selectors import organizations_of

from .serializers import (
    MeUpdateInput,
    RefreshInput,
    RegisterInput,
    RegisterOutput,
    SessionOutput,
    TokenInput,
    TokenPairOutput,
    UserOutput,
)


class InvalidToken(DomainError):
    code = "token_not_valid"
    status = status.HTTP_401_UNAUTHORIZED
    title = "The token is invalid, expired or revoked."


def session_response(user, *, status_code=status.HTTP_200_OK, **extra) -> Response:
    body = {**services.tokens_for(user=user), "user": user, "organizations": organizations_of(user=user), **extra}
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
    throttle_scope = "auth"

    @extend_schema(request=TokenInput, responses={200: SessionOutput}, tags=["auth"], auth=[])
    def post(self, request):
        serializer = TokenInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.user_sign_in(
            email=serializer.validated_data["email"],
            password=serializer.validated_data["password"],
            ip=request.META.get("REMOTE_ADDR", ""),
        )
        if user is None:
            raise InvalidCredentials()
        return session_response(user)


class TokenRefreshView(PublicAPIView):
    @extend_schema(request=RefreshInput, responses={200: TokenPairOutput}, tags=["auth"], auth=[])
    def post(self, request):
        serializer = TokenRefreshSerializer(data=request.data)
        try:
            serializer.is_valid(raise_exception=True)
        except TokenError as exc:
            raise InvalidToken(str(exc)) from exc
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
    @extend_schema(responses={200: UserOutput}, tags=["auth"])
    def get(self, request):
        return Response(UserOutput(request.user).data)

    @extend_schema(request=MeUpdateInput, responses={200: UserOutput}, tags=["auth"])
    def patch(self, request):
        serializer = MeUpdateInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.user_update(user=request.user, **serializer.validated_data)
        return Response(UserOutput(user).data)
