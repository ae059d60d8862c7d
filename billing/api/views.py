from dataclasses import asdict

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.decorators import action
from rest_framework.response import Response

from billing import payments, provider, selectors
from billing import permissions as perms
from billing.entitlements import entitlements_for
from billing.models import Subscription
from config.api.pagination import paginated_response
from config.api.views import PublicAPIView
from config.api.viewsets import OrganizationViewSet

from .serializers import (
    ChangePlanInput,
    InvoiceOutput,
    PlanChangeOutput,
    PlanOutput,
    PortalOutput,
    ProviderWebhookOutput,
    SubscriptionOutput,
    UsageOutput,
)

PROBLEM_402 = OpenApiResponse(description="Paid plans need the payment provider (`payment_provider_not_configured`).")
PROBLEM_502 = OpenApiResponse(description="The payment provider refused the request (`payment_provider_error`).")


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
        "invoices": perms.SUBSCRIPTION_VIEW,
        "change_plan": perms.SUBSCRIPTION_MANAGE,
        "portal": perms.SUBSCRIPTION_MANAGE,
    }

    def _subscription_response(self, subscription, serializer=SubscriptionOutput, status=200, **extra):
        entitlements = entitlements_for(organization=subscription.organization)
        for name, value in extra.items():  # what a plan change did, beside the subscription
            setattr(subscription, name, value)
        return Response(serializer(subscription, context={"entitlements": entitlements}).data, status=status)

    @extend_schema(responses={200: SubscriptionOutput}, tags=["billing"])
    @action(detail=False, methods=["get"])
    def subscription(self, request):
        return self._subscription_response(selectors.subscription_or_free_plan(organization=request.tenant))

    @extend_schema(responses={200: UsageOutput(many=True)}, tags=["billing"])
    @action(detail=False, methods=["get"])
    def usage(self, request):
        limits = entitlements_for(organization=request.tenant).limits
        return self.page_of(selectors.usage_of(organization=request.tenant, limits=limits), UsageOutput)

    @extend_schema(responses={200: InvoiceOutput(many=True), 502: PROBLEM_502}, tags=["billing"])
    @action(detail=False, methods=["get"])
    def invoices(self, request):
        """The organization's invoices at the payment provider, newest first (none without a billing account)."""
        rows = [asdict(invoice) for invoice in payments.invoices_of(organization=request.tenant)]
        return self.page_of(rows, InvoiceOutput)

    @extend_schema(
        request=ChangePlanInput,
        responses={200: PlanChangeOutput, 202: PlanChangeOutput, 402: PROBLEM_402, 502: PROBLEM_502},
        tags=["billing"],
        description="Free and lower plans: now when nothing is paid at the provider, else at the end of the paid "
        "period (`scheduled`); 409 `downgrade_blocked` lists what usage must be reduced first. Paid plans: 202 "
        "with a checkout URL (`checkout`) or an invoiced upgrade (`pending`): the plan applies when the payment "
        "provider confirms the payment, never before.",
    )
    @action(detail=False, methods=["post"], url_path="subscription/change-plan")
    def change_plan(self, request):
        data = ChangePlanInput(data=request.data)
        data.is_valid(raise_exception=True)
        change = payments.subscription_request_change(
            organization=request.tenant,
            plan_code=data.validated_data["plan"],
            interval=data.validated_data.get("interval"),
            actor=request.user,
            email=getattr(request.user, "email", "") or "",
        )
        status = 202 if change.outcome in ("checkout", "pending") else 200
        return self._subscription_response(
            change.subscription, PlanChangeOutput, status, outcome=change.outcome, checkout_url=change.checkout_url
        )

    @extend_schema(request=None, responses={200: PortalOutput, 402: PROBLEM_402, 502: PROBLEM_502}, tags=["billing"])
    @action(detail=False, methods=["post"])
    def portal(self, request):
        """A customer-portal session at the payment provider: cards, invoices, cancellation."""
        return Response(PortalOutput({"url": payments.portal_url(organization=request.tenant)}).data)


class ProviderWebhookView(PublicAPIView):
    """The payment provider's events (Stripe), verified with its signature (``Stripe-Signature``)."""

    throttle_classes: list = []  # verified before anything is read; the provider retries in bursts

    @extend_schema(
        request={"application/json": OpenApiTypes.OBJECT},
        responses={200: ProviderWebhookOutput},
        tags=["billing"],
        auth=[],
        description="Called by the payment provider only. 400 `invalid_signature` unless the `Stripe-Signature` "
        "header verifies the raw body with the webhook secret; each event is applied once, in order.",
    )
    def post(self, request):
        event = provider.event_from_webhook(
            payload=request._request.body, signature=request.headers.get("Stripe-Signature", "")
        )
        outcome = payments.provider_event_process(event=event)
        return Response(ProviderWebhookOutput({"received": True, "outcome": outcome}).data)
