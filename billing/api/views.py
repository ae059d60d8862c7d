from drf_spectacular.utils import extend_schema
from rest_framework.decorators import action
from rest_framework.response import Response

from billing import permissions as perms
from billing import selectors, services
from billing.entitlements import entitlements_for
from billing.models import Subscription
from config.api.pagination import paginated_response
from config.api.views import PublicAPIView
from config.api.viewsets import OrganizationViewSet

from .serializers import ChangePlanInput, PlanOutput, SubscriptionOutput, UsageOutput


class PlanListView(PublicAPIView):
    """The public price list."""

    @extend_schema(responses={200: PlanOutput(many=True)}, tags=["billing"], auth=[])
    def get(self, request):
        return paginated_response(self, selectors.public_plans(), PlanOutput)


class BillingViewSet(OrganizationViewSet):
    queryset = Subscription.objects.all()
    organization_field = "organization"
    action_permissions = {
        "subscription": perms.SUBSCRIPTION_VIEW,
        "usage": perms.SUBSCRIPTION_VIEW,
        "change_plan": perms.SUBSCRIPTION_MANAGE,
    }

    def _subscription_response(self, subscription):
        entitlements = entitlements_for(organization=subscription.organization)
        return Response(SubscriptionOutput(subscription, context={"entitlements": entitlements}).data)

    @extend_schema(responses={200: SubscriptionOutput}, tags=["billing"])
    @action(detail=False, methods=["get"])
    def subscription(self, request):
        return self._subscription_response(selectors.subscription_or_free_plan(organization=request.tenant))

    @extend_schema(responses={200: UsageOutput(many=True)}, tags=["billing"])
    @action(detail=False, methods=["get"])
    def usage(self, request):
        limits = entitlements_for(organization=request.tenant).limits
        return self.page_of(selectors.usage_of(organization=request.tenant, limits=limits), UsageOutput)

    @extend_schema(request=ChangePlanInput, responses={200: SubscriptionOutput}, tags=["billing"])
    @action(detail=False, methods=["post"], url_path="subscription/change-plan")
    def change_plan(self, request):
        data = ChangePlanInput(data=request.data)
        data.is_valid(raise_exception=True)
        subscription = services.subscription_change_plan(
            organization=request.tenant,
            plan_code=data.validated_data["plan"],
            interval=data.validated_data.get("interval"),
            actor=request.user,
        )
        return self._subscription_response(subscription)
