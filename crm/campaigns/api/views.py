"""The campaigns API: segments, campaigns, their deliveries and statistics, the consent ledger, suppressions.

Views are glue: validate input, call a service or selector, serialize output. Every endpoint needs the plan
feature ``crm.campaigns``; reading needs ``crm.campaign.view``, changing ``crm.campaign.manage``. Contacts are
reached only within the caller's scope on ``crm.contact.view`` (audiences, previews, ids in bodies, deliveries)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from billing.features import Feature
from config.api.viewsets import OrganizationViewSet
from crm.permissions import CAMPAIGN_MANAGE, CAMPAIGN_VIEW

from .. import selectors, services
from ..choices import STATS_INTERVALS
from ..models import Campaign, ConsentEvent, ConsentState, Delivery, Segment, Suppression
from .filters import (
    CampaignFilter,
    ConsentEventFilter,
    ConsentStateFilter,
    DeliveryFilter,
    SegmentFilter,
    SuppressionFilter,
)
from .serializers import (
    AudienceContactOutput,
    CampaignInput,
    CampaignOutput,
    CampaignStatsOutput,
    CampaignUpdateInput,
    ConsentEventOutput,
    ConsentInput,
    ConsentStateOutput,
    ContactIdsInput,
    CountOutput,
    DeliveryOutput,
    PreviewInput,
    RenderedOutput,
    ScheduleInput,
    SegmentInput,
    SegmentOutput,
    SegmentUpdateInput,
    SuppressionOutput,
    TemplateVariablesOutput,
    TestSendInput,
    TestSentOutput,
)

CONFLICT = OpenApiResponse(
    description="The campaign's status refuses it (`campaign_not_editable`, `campaign_finished`, "
    "`invalid_campaign_transition`, `empty_segment`, `channel_not_configured`)."
)
NOT_IN_REACH = OpenApiResponse(
    description="`bulk_failed`: nothing changed; `errors` lists `{field, id, code: not_found}` per contact outside "
    "your reach."
)


@extend_schema_view(
    list=extend_schema(responses={200: SegmentOutput(many=True)}, tags=["campaigns"]),
)
class SegmentViewSet(OrganizationViewSet):
    """Static lists and dynamic segments (saved filters of the contacts list)."""

    queryset = Segment.objects.all()
    required_feature = Feature.CAMPAIGNS
    action_permissions = {
        "list": CAMPAIGN_VIEW,
        "retrieve": CAMPAIGN_VIEW,
        "count": CAMPAIGN_VIEW,
        "contacts": CAMPAIGN_VIEW,
        "create": CAMPAIGN_MANAGE,
        "partial_update": CAMPAIGN_MANAGE,
        "destroy": CAMPAIGN_MANAGE,
        "add_contacts": CAMPAIGN_MANAGE,
        "remove_contacts": CAMPAIGN_MANAGE,
    }
    filterset_class = SegmentFilter
    search_fields = ["name"]
    ordering_fields = ["name", "created_at", "updated_at"]
    ordering = ["-created_at", "-pk"]

    def prepare_queryset(self, queryset):
        return selectors.segments()

    def list(self, request):
        return self.paginated(self.get_queryset(), SegmentOutput)

    def _output(self, segment: Segment, **kwargs) -> Response:
        return Response(SegmentOutput(selectors.segments().get(pk=segment.pk)).data, **kwargs)

    @extend_schema(responses={200: SegmentOutput}, tags=["campaigns"])
    def retrieve(self, request, pk=None):
        return Response(SegmentOutput(self.get_object()).data)

    @extend_schema(
        request=SegmentInput,
        responses={201: SegmentOutput, 400: NOT_IN_REACH},
        tags=["campaigns"],
        description="A static list (`contacts`: ids within your reach) or a dynamic segment (`filters`: the contacts "
        "list's query parameters, validated now: an unknown or invalid one is 400 naming it).",
    )
    def create(self, request):
        data = SegmentInput(data=request.data)
        data.is_valid(raise_exception=True)
        segment = services.segment_create(actor=self.access, **data.validated_data)
        return self._output(segment, status=status.HTTP_201_CREATED)

    @extend_schema(request=SegmentUpdateInput, responses={200: SegmentOutput}, tags=["campaigns"])
    def partial_update(self, request, pk=None):
        segment = self.get_object()
        data = SegmentUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        return self._output(services.segment_update(segment=segment, actor=self.access, **data.validated_data))

    @extend_schema(responses={204: None, 409: OpenApiResponse(description="`segment_in_use`")}, tags=["campaigns"])
    def destroy(self, request, pk=None):
        services.segment_delete(segment=self.get_object(), actor=self.access)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        responses={200: CountOutput},
        tags=["campaigns"],
        description="How many contacts the segment holds now, within your reach (a live count).",
    )
    @action(detail=True, methods=["get"])
    def count(self, request, pk=None):
        return Response({"count": selectors.audience(self.get_object(), self.access).count()})

    @extend_schema(
        responses={200: AudienceContactOutput(many=True)},
        tags=["campaigns"],
        description="The segment's contacts now, within your reach (a live preview), paginated.",
    )
    @action(detail=True, methods=["get"])
    def contacts(self, request, pk=None):
        audience = selectors.audience(self.get_object(), self.access).order_by("pk")
        return self.page_of(audience, AudienceContactOutput)

    @extend_schema(request=ContactIdsInput, responses={200: CountOutput, 400: NOT_IN_REACH}, tags=["campaigns"])
    @action(detail=True, methods=["post"], url_path="add-contacts")
    def add_contacts(self, request, pk=None):
        segment = self.get_object()
        data = ContactIdsInput(data=request.data)
        data.is_valid(raise_exception=True)
        added = services.segment_add_contacts(segment=segment, actor=self.access, ids=data.validated_data["ids"])
        return Response({"count": added})

    @extend_schema(request=ContactIdsInput, responses={200: CountOutput, 400: NOT_IN_REACH}, tags=["campaigns"])
    @action(detail=True, methods=["post"], url_path="remove-contacts")
    def remove_contacts(self, request, pk=None):
        segment = self.get_object()
        data = ContactIdsInput(data=request.data)
        data.is_valid(raise_exception=True)
        removed = services.segment_remove_contacts(segment=segment, actor=self.access, ids=data.validated_data["ids"])
        return Response({"count": removed})


@extend_schema_view(list=extend_schema(responses={200: CampaignOutput(many=True)}, tags=["campaigns"]))
class CampaignViewSet(OrganizationViewSet):
    queryset = Campaign.objects.all()
    required_feature = Feature.CAMPAIGNS
    action_permissions = {
        "list": CAMPAIGN_VIEW,
        "retrieve": CAMPAIGN_VIEW,
        "stats": CAMPAIGN_VIEW,
        "preview": CAMPAIGN_VIEW,
        "template_variables": CAMPAIGN_VIEW,
        "create": CAMPAIGN_MANAGE,
        "partial_update": CAMPAIGN_MANAGE,
        "destroy": CAMPAIGN_MANAGE,
        "schedule": CAMPAIGN_MANAGE,
        "pause": CAMPAIGN_MANAGE,
        "resume": CAMPAIGN_MANAGE,
        "cancel": CAMPAIGN_MANAGE,
        "test_send": CAMPAIGN_MANAGE,
    }
    filterset_class = CampaignFilter
    search_fields = ["name"]
    ordering_fields = ["name", "created_at", "scheduled_at", "status"]
    ordering = ["-created_at", "-pk"]

    def prepare_queryset(self, queryset):
        return selectors.campaigns()

    def list(self, request):
        return self.paginated(self.get_queryset(), CampaignOutput)

    def _output(self, campaign: Campaign, **kwargs) -> Response:
        return Response(CampaignOutput(selectors.campaigns().get(pk=campaign.pk)).data, **kwargs)

    @extend_schema(responses={200: CampaignOutput}, tags=["campaigns"])
    def retrieve(self, request, pk=None):
        return Response(CampaignOutput(self.get_object()).data)

    @extend_schema(
        request=CampaignInput,
        responses={201: CampaignOutput},
        tags=["campaigns"],
        description="Subject (e-mail) and body are templates: `{{ contact.first_name }}` and the other declared "
        "variables (`GET /campaigns/template-variables/`). A syntax error is 400 `template_syntax_error` with "
        "`line`, `column` and `offset`; unknown variables are 400 `unknown_variable` naming them.",
    )
    def create(self, request):
        data = CampaignInput(data=request.data)
        data.is_valid(raise_exception=True)
        campaign = services.campaign_create(actor=self.access, **data.validated_data)
        return self._output(campaign, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=CampaignUpdateInput,
        responses={200: CampaignOutput, 409: CONFLICT},
        tags=["campaigns"],
        description="Only a draft or scheduled campaign is edited; a sending, paused or finished one is 409 "
        "`campaign_not_editable`.",
    )
    def partial_update(self, request, pk=None):
        campaign = self.get_object()
        data = CampaignUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        return self._output(services.campaign_update(campaign=campaign, actor=self.access, **data.validated_data))

    @extend_schema(responses={204: None, 409: CONFLICT}, tags=["campaigns"])
    def destroy(self, request, pk=None):
        services.campaign_delete(campaign=self.get_object(), actor=self.access)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=ScheduleInput,
        responses={200: CampaignOutput, 409: CONFLICT},
        tags=["campaigns"],
        description="Send now (no `scheduled_at`) or at a time; a time without an offset, and the optional "
        "`send_window`, are in the organization's time zone (recipients have none). The audience is the segment "
        "within your reach, evaluated when sending starts. 409 `empty_segment` when nobody is in it, "
        "`campaign_finished` for a completed or canceled campaign; 403 `plan_limit_reached` past the plan's "
        "messages per month.",
    )
    @action(detail=True, methods=["post"])
    def schedule(self, request, pk=None):
        campaign = self.get_object()
        data = ScheduleInput(data=request.data)
        data.is_valid(raise_exception=True)
        window = data.validated_data.get("send_window") or {}
        campaign = services.campaign_schedule(
            campaign=campaign,
            actor=self.access,
            scheduled_at=data.validated_data.get("scheduled_at"),
            window_days=window.get("days"),
            window_start=window.get("start"),
            window_end=window.get("end"),
        )
        return self._output(campaign)

    @extend_schema(request=None, responses={200: CampaignOutput, 409: CONFLICT}, tags=["campaigns"])
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        return self._output(services.campaign_pause(campaign=self.get_object(), actor=self.access))

    @extend_schema(request=None, responses={200: CampaignOutput, 409: CONFLICT}, tags=["campaigns"])
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return self._output(services.campaign_resume(campaign=self.get_object(), actor=self.access))

    @extend_schema(
        request=None,
        responses={200: CampaignOutput, 409: CONFLICT},
        tags=["campaigns"],
        description="Nothing more is sent: queued messages are skipped with the reason `canceled`.",
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._output(services.campaign_cancel(campaign=self.get_object(), actor=self.access))

    @extend_schema(
        request=PreviewInput,
        responses={200: RenderedOutput},
        tags=["campaigns"],
        description="The subject and body as `contact` (within your reach) would get them; sample values without.",
    )
    @action(detail=True, methods=["post"])
    def preview(self, request, pk=None):
        campaign = self.get_object()
        data = PreviewInput(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        return Response(services.campaign_preview(campaign=campaign, contact=data.validated_data.get("contact")))

    @extend_schema(
        request=TestSendInput,
        responses={200: TestSentOutput, 409: CONFLICT},
        tags=["campaigns"],
        description="Send the campaign once to yourself: to your e-mail address, or for SMS and WhatsApp to `to`. "
        "Rendered for `contact` or with sample values; nothing is recorded.",
    )
    @action(detail=True, methods=["post"], url_path="test-send")
    def test_send(self, request, pk=None):
        campaign = self.get_object()
        data = TestSendInput(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        sent = services.campaign_test_send(
            campaign=campaign,
            actor=self.access,
            contact=data.validated_data.get("contact"),
            to=data.validated_data.get("to", ""),
        )
        return Response(sent)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "interval", str, enum=[value for value, _label in STATS_INTERVALS], description="Buckets of `by_time`."
            )
        ],
        responses={200: CampaignStatsOutput},
        tags=["campaigns"],
        description="Sent, delivered, bounced, opened, clicked, unsubscribed and failed messages, in total and by "
        "hour or day (UTC); skipped ones by reason.",
    )
    @action(detail=True, methods=["get"])
    def stats(self, request, pk=None):
        interval = request.query_params.get("interval", "hour")
        if interval not in dict(STATS_INTERVALS):
            raise ValidationError({"interval": ["Choose hour or day."]})
        return Response(CampaignStatsOutput(selectors.campaign_stats(self.get_object(), interval=interval)).data)

    @extend_schema(
        responses={200: TemplateVariablesOutput},
        tags=["campaigns"],
        description="The variables and filters templates may use.",
    )
    @action(detail=False, methods=["get"], url_path="template-variables")
    def template_variables(self, request):
        return Response(TemplateVariablesOutput(TemplateVariablesOutput.declared()).data)


class DeliveryViewSet(OrganizationViewSet):
    """Campaign messages, one per recipient; only those to contacts within your reach are listed."""

    queryset = Delivery.objects.all()
    required_feature = Feature.CAMPAIGNS
    action_permissions = {"list": CAMPAIGN_VIEW, "retrieve": CAMPAIGN_VIEW}
    filterset_class = DeliveryFilter
    search_fields = ["address"]
    ordering_fields = ["id", "sent_at", "status"]
    ordering = ["pk"]

    def prepare_queryset(self, queryset):
        return Delivery.objects.filter(contact__in=selectors.contacts_within(self.access).values("pk"))

    @extend_schema(responses={200: DeliveryOutput(many=True)}, tags=["campaigns"])
    def list(self, request):
        return self.paginated(self.get_queryset(), DeliveryOutput)

    @extend_schema(responses={200: DeliveryOutput}, tags=["campaigns"])
    def retrieve(self, request, pk=None):
        return Response(DeliveryOutput(self.get_object()).data)


class ConsentViewSet(OrganizationViewSet):
    """The consent ledger: every opt-in and opt-out, of contacts within your reach."""

    queryset = ConsentEvent.objects.all()
    required_feature = Feature.CAMPAIGNS
    action_permissions = {"list": CAMPAIGN_VIEW, "retrieve": CAMPAIGN_VIEW, "create": CAMPAIGN_MANAGE}
    filterset_class = ConsentEventFilter
    ordering_fields = ["occurred_at"]
    ordering = ["-occurred_at", "-pk"]

    def prepare_queryset(self, queryset):
        return ConsentEvent.objects.filter(contact__in=selectors.contacts_within(self.access).values("pk"))

    @extend_schema(responses={200: ConsentEventOutput(many=True)}, tags=["campaigns"])
    def list(self, request):
        return self.paginated(self.get_queryset(), ConsentEventOutput)

    @extend_schema(responses={200: ConsentEventOutput}, tags=["campaigns"])
    def retrieve(self, request, pk=None):
        return Response(ConsentEventOutput(self.get_object()).data)

    @extend_schema(
        request=ConsentInput,
        responses={201: ConsentEventOutput},
        tags=["campaigns"],
        description="Record an opt-in or opt-out with its source and proof; it applies to every message claimed "
        "from now on.",
    )
    def create(self, request):
        data = ConsentInput(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        event = services.consent_record(actor=self.access, **data.validated_data)
        return Response(ConsentEventOutput(event).data, status=status.HTTP_201_CREATED)


class ConsentStateViewSet(OrganizationViewSet):
    """Each contact's current consent per channel (the latest ledger entry)."""

    queryset = ConsentState.objects.all()
    required_feature = Feature.CAMPAIGNS
    action_permissions = {"list": CAMPAIGN_VIEW}
    filterset_class = ConsentStateFilter
    ordering_fields = ["updated_at"]
    ordering = ["-updated_at", "-pk"]

    def prepare_queryset(self, queryset):
        return ConsentState.objects.filter(contact__in=selectors.contacts_within(self.access).values("pk"))

    @extend_schema(responses={200: ConsentStateOutput(many=True)}, tags=["campaigns"])
    def list(self, request):
        return self.paginated(self.get_queryset(), ConsentStateOutput)


class SuppressionViewSet(OrganizationViewSet):
    """Addresses no campaign message goes to (hard bounces, complaints); removing one allows it again."""

    queryset = Suppression.objects.all()
    required_feature = Feature.CAMPAIGNS
    action_permissions = {"list": CAMPAIGN_VIEW, "retrieve": CAMPAIGN_VIEW, "destroy": CAMPAIGN_MANAGE}
    filterset_class = SuppressionFilter
    ordering_fields = ["created_at"]
    ordering = ["-created_at", "-pk"]

    @extend_schema(responses={200: SuppressionOutput(many=True)}, tags=["campaigns"])
    def list(self, request):
        return self.paginated(self.get_queryset(), SuppressionOutput)

    @extend_schema(responses={200: SuppressionOutput}, tags=["campaigns"])
    def retrieve(self, request, pk=None):
        return Response(SuppressionOutput(self.get_object()).data)

    @extend_schema(responses={204: None}, tags=["campaigns"])
    def destroy(self, request, pk=None):
        services.suppression_remove(suppression=self.get_object(), actor=self.access)
        return Response(status=status.HTTP_204_NO_CONTENT)
