"""Webhook endpoints, their delivery log, and the organization's event feed."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from billing.features import Feature
from config.api.viewsets import OrganizationViewSet
from integrations import selectors, services
from integrations.events import EVENTS, payload_schema
from integrations.models import OutboxEvent, WebhookDelivery, WebhookEndpoint
from integrations.permissions import EVENT_VIEW, WEBHOOK_MANAGE

from .filters import EventFilter, WebhookDeliveryFilter, WebhookEndpointFilter
from .serializers import (
    EventOutput,
    EventTypeOutput,
    ReplayInput,
    ReplayOutput,
    WebhookDeliveryOutput,
    WebhookEndpointInput,
    WebhookEndpointOutput,
    WebhookEndpointSecretOutput,
)

TAGS = ["webhooks"]


class WebhookEndpointViewSet(OrganizationViewSet):
    queryset = WebhookEndpoint.objects.all()
    required_feature = Feature.WEBHOOKS
    action_permissions = {
        "list": WEBHOOK_MANAGE,
        "retrieve": WEBHOOK_MANAGE,
        "create": WEBHOOK_MANAGE,
        "partial_update": WEBHOOK_MANAGE,
        "destroy": WEBHOOK_MANAGE,
        "event_types": WEBHOOK_MANAGE,
        "ping": WEBHOOK_MANAGE,
        "replay": WEBHOOK_MANAGE,
        "rotate_secret": WEBHOOK_MANAGE,
    }
    filterset_class = WebhookEndpointFilter
    search_fields = ["url", "description"]
    ordering_fields = ["created_at", "url"]
    ordering = ["-created_at", "-pk"]

    def prepare_queryset(self, queryset):
        return selectors.webhook_endpoints()

    @extend_schema(responses={200: WebhookEndpointOutput(many=True)}, tags=TAGS)
    def list(self, request):
        return self.paginated(self.get_queryset(), WebhookEndpointOutput)

    @extend_schema(responses={200: WebhookEndpointOutput}, tags=TAGS)
    def retrieve(self, request, pk=None):
        return Response(WebhookEndpointOutput(self.get_object()).data)

    @extend_schema(
        request=WebhookEndpointInput,
        responses={201: WebhookEndpointSecretOutput},
        tags=TAGS,
        description="Create an endpoint (counted against the plan's `webhook_endpoints` limit). The answer holds "
        "the signing secret, shown this once. A URL that is not on a public address is refused: 400 `unsafe_url`.",
    )
    def create(self, request):
        data = WebhookEndpointInput(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint, secret = services.webhook_endpoint_create(actor=self.access, **data.validated_data)
        body = WebhookEndpointSecretOutput(endpoint, context={"secret": secret}).data
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=WebhookEndpointInput(partial=True),
        responses={200: WebhookEndpointOutput},
        tags=TAGS,
        description="Change the endpoint. Enabling a disabled endpoint clears its failure record.",
    )
    def partial_update(self, request, pk=None):
        data = WebhookEndpointInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        endpoint = services.webhook_endpoint_update(
            endpoint=self.get_object(), actor=self.access, **data.validated_data
        )
        return Response(WebhookEndpointOutput(endpoint).data)

    @extend_schema(responses={204: None}, tags=TAGS, description="Delete the endpoint and its delivery log.")
    def destroy(self, request, pk=None):
        services.webhook_endpoint_delete(endpoint=self.get_object(), actor=self.access)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        responses={200: EventTypeOutput(many=True)},
        tags=TAGS,
        description="Every event type, with the JSON Schema of its `data`. Every webhook body is an object "
        "`{id, type, timestamp, subject, actor, data}` whose `data` follows the event type's schema.",
    )
    @action(detail=False, methods=["get"], url_path="event-types")
    def event_types(self, request):
        body = [{"name": name, "description": text, "schema": payload_schema(name)} for name, text in EVENTS.items()]
        return self.page_of(body, EventTypeOutput)

    @extend_schema(
        request=None,
        responses={202: WebhookDeliveryOutput},
        tags=TAGS,
        description="Send a `webhook.ping` test event to this endpoint (whatever it subscribes to).",
    )
    @action(detail=True, methods=["post"])
    def ping(self, request, pk=None):
        delivery = services.webhook_endpoint_ping(endpoint=self.get_object(), actor=self.access)
        delivery = selectors.webhook_deliveries(endpoint=delivery.endpoint).get(pk=delivery.pk)
        return Response(WebhookDeliveryOutput(delivery).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        request=ReplayInput,
        responses={202: ReplayOutput},
        tags=TAGS,
        description="Deliver again every subscribed event since `since`, with their original webhook-ids.",
    )
    @action(detail=True, methods=["post"])
    def replay(self, request, pk=None):
        data = ReplayInput(data=request.data)
        data.is_valid(raise_exception=True)
        count = services.webhook_endpoint_replay(
            endpoint=self.get_object(), since=data.validated_data["since"], actor=self.access
        )
        return Response(ReplayOutput({"deliveries": count}).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        request=None,
        responses={201: WebhookEndpointSecretOutput},
        tags=TAGS,
        description="A new signing secret, shown this once. For 24 hours (configurable) requests carry a "
        "second signature made with the previous secret, so receivers can switch without missing events.",
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, pk=None):
        endpoint, secret = services.webhook_endpoint_rotate_secret(endpoint=self.get_object(), actor=self.access)
        body = WebhookEndpointSecretOutput(endpoint, context={"secret": secret}).data
        return Response(body, status=status.HTTP_201_CREATED)


class WebhookDeliveryViewSet(OrganizationViewSet):
    """The delivery log of one endpoint: ``/webhooks/{endpoint_pk}/deliveries/``."""

    queryset = WebhookDelivery.objects.all()
    required_feature = Feature.WEBHOOKS
    action_permissions = {"list": WEBHOOK_MANAGE, "retrieve": WEBHOOK_MANAGE, "retry": WEBHOOK_MANAGE}
    filterset_class = WebhookDeliveryFilter
    ordering_fields = ["created_at", "last_attempt_at"]
    ordering = ["-created_at", "-pk"]

    def prepare_queryset(self, queryset):
        endpoint = get_object_or_404(selectors.webhook_endpoints(), pk=self.kwargs["endpoint_pk"])
        return selectors.webhook_deliveries(endpoint=endpoint).select_related("endpoint")

    @extend_schema(responses={200: WebhookDeliveryOutput(many=True)}, tags=TAGS)
    def list(self, request, endpoint_pk=None):
        return self.paginated(self.get_queryset(), WebhookDeliveryOutput)

    @extend_schema(responses={200: WebhookDeliveryOutput}, tags=TAGS)
    def retrieve(self, request, endpoint_pk=None, pk=None):
        return Response(WebhookDeliveryOutput(self.get_object()).data)

    @extend_schema(
        request=None,
        responses={202: WebhookDeliveryOutput, 409: OpenApiResponse(description="`webhook_endpoint_disabled`")},
        tags=TAGS,
        description="Attempt again now, with a fresh retry schedule and the same webhook-id.",
    )
    @action(detail=True, methods=["post"])
    def retry(self, request, endpoint_pk=None, pk=None):
        delivery = services.webhook_delivery_retry(delivery=self.get_object(), actor=self.access)
        delivery = self.get_queryset().get(pk=delivery.pk)
        return Response(WebhookDeliveryOutput(delivery).data, status=status.HTTP_202_ACCEPTED)


class EventViewSet(OrganizationViewSet):
    """The organization's event log: every domain event recorded, newest first."""

    queryset = OutboxEvent.objects.all()
    action_permissions = {"list": EVENT_VIEW, "retrieve": EVENT_VIEW}
    lookup_value_regex = r"[0-9a-fA-F-]+"
    filterset_class = EventFilter
    ordering_fields = ["occurred_at"]
    ordering = ["-occurred_at", "-id"]

    def prepare_queryset(self, queryset):
        return selectors.events()

    @extend_schema(responses={200: EventOutput(many=True)}, tags=["events"])
    def list(self, request):
        return self.paginated(self.get_queryset(), EventOutput)

    @extend_schema(responses={200: EventOutput}, tags=["events"])
    def retrieve(self, request, pk=None):
        return Response(EventOutput(self.get_object()).data)
