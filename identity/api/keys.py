"""API keys of the organization: create (the secret is shown once), list, revoke, rotate."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from billing.features import Feature
from config.api.outputs import ModelOutput
from config.api.references import PersonReference
from config.api.viewsets import OrganizationViewSet
from config.permissions import Scope
from identity import apikeys
from identity.models import ApiKey
from identity.permissions import APIKEY_MANAGE


class ApiKeyOutput(ModelOutput):
    created_by = PersonReference(allow_null=True)
    is_active = serializers.SerializerMethodField()

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "prefix",
            "last_four",
            "scopes",
            "created_by",
            "created_at",
            "expires_at",
            "revoked_at",
            "last_used_at",
            "is_active",
        ]

    def get_is_active(self, obj) -> bool:
        return obj.is_usable()


class ApiKeySecretOutput(ApiKeyOutput):
    secret = serializers.SerializerMethodField(help_text="The full key. Shown once; store it now.")

    class Meta(ApiKeyOutput.Meta):
        fields = [*ApiKeyOutput.Meta.fields, "secret"]

    def get_secret(self, obj) -> str:
        return self.context["secret"]


class ApiKeyInput(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    scopes = serializers.DictField(
        child=serializers.ChoiceField(choices=[s.value for s in Scope]),
        help_text='Permission code → "own" or "all"; never more than you hold.',
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class ApiKeyViewSet(OrganizationViewSet):
    queryset = ApiKey.objects.all()
    required_feature = Feature.API_KEYS
    action_permissions = {
        "list": APIKEY_MANAGE,
        "retrieve": APIKEY_MANAGE,
        "create": APIKEY_MANAGE,
        "destroy": APIKEY_MANAGE,
        "rotate": APIKEY_MANAGE,
    }
    organization_field = "organization"
    ordering = ["-created_at", "-pk"]

    def prepare_queryset(self, queryset):
        return queryset.select_related("created_by")

    @extend_schema(responses={200: ApiKeyOutput(many=True)}, tags=["api keys"])
    def list(self, request):
        return self.paginated(self.get_queryset(), ApiKeyOutput)

    @extend_schema(responses={200: ApiKeyOutput}, tags=["api keys"])
    def retrieve(self, request, pk=None):
        return Response(ApiKeyOutput(self.get_object()).data)

    @extend_schema(request=ApiKeyInput, responses={201: ApiKeySecretOutput}, tags=["api keys"])
    def create(self, request):
        data = ApiKeyInput(data=request.data)
        data.is_valid(raise_exception=True)
        key, secret = apikeys.apikey_create(
            organization=request.tenant, actor=request.user, actor_grants=self.access.grants, **data.validated_data
        )
        body = ApiKeySecretOutput(key, context={"secret": secret}).data
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None}, tags=["api keys"], description="Revoke: refused from the next request.")
    def destroy(self, request, pk=None):
        apikeys.apikey_revoke(key=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=None,
        responses={201: ApiKeySecretOutput},
        tags=["api keys"],
        description="A new secret with the same scopes; the old one keeps working for 24 hours (configurable).",
    )
    @action(detail=True, methods=["post"])
    def rotate(self, request, pk=None):
        key, secret = apikeys.apikey_rotate(key=self.get_object(), actor=request.user, actor_grants=self.access.grants)
        body = ApiKeySecretOutput(key, context={"secret": secret}).data
        return Response(body, status=status.HTTP_201_CREATED)


router = SimpleRouter(trailing_slash=True)
router.register("api-keys", ApiKeyViewSet, basename="api-key")
urlpatterns = router.urls
