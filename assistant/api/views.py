"""The co-pilot under ``/api/v1/assistant/``: the caller's own conversations (private from everyone, Owners
included), messages answered as one JSON document or as Server-Sent Events, and the proposed writes the user
confirms or rejects. Everything needs ``assistant.copilot.use`` and the plan feature ``assistant.copilot``.

A streamed answer holds one gunicorn thread (``config/gunicorn.py``: gthread), not the process: the other threads
keep answering the rest of the API (decision 0019 has the measurement)."""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from itertools import chain

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Prefetch
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from billing.features import Feature
from config.api.errors import DomainError, NotFound
from config.api.viewsets import OrganizationViewSet

from .. import engine, llm, selectors, services, tools
from ..models import Conversation, Message, Proposal
from ..permissions import COPILOT_USE, MODEL_SETTINGS_MANAGE
from .renderers import EventStreamRenderer
from .serializers import (
    ConversationInput,
    ConversationOutput,
    MessageInput,
    MessageOutput,
    ModelSettingsInput,
    ModelSettingsOutput,
    ProposalOutput,
    StreamQuery,
    ToolOutput,
)

TAGS = ["assistant"]
PROPOSAL_ID = OpenApiParameter("proposal_id", int, OpenApiParameter.PATH)
EVENT_STREAM = "text/event-stream"


def _messages():
    return Message.objects.prefetch_related(Prefetch("proposals", queryset=Proposal.objects.order_by("pk")))


def _event(kind: str, data) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, cls=DjangoJSONEncoder)}\n\n".encode()


def _stream(first: engine.Event, events: Generator[engine.Event]) -> Generator[bytes]:
    """The answer's events as Server-Sent Events; ``done`` carries the kept message, ``error`` the problem of an
    upstream failure after the answer began (the partial answer is kept, marked ``failed``)."""
    try:
        for event in chain([first], events):
            if event.kind == "done":
                yield _event("done", MessageOutput(event.data["message"]).data)
            else:
                yield _event(event.kind, event.data)
    except DomainError as error:
        yield _event("error", error.problem())


class _Holding(Iterator[bytes]):
    """The answer's stream, holding its answer slot: when the stream ends or is closed, the answer is closed too
    (a client gone mid-answer leaves it kept, ``interrupted``) and the slot given back. The server closes every
    response, even one never read, where a generator never started would not run its ``finally``."""

    def __init__(self, first: engine.Event, events: Generator[engine.Event], slot: engine.AnswerSlot) -> None:
        self.chunks, self.events, self.slot = _stream(first, events), events, slot

    def __next__(self) -> bytes:
        try:
            return next(self.chunks)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        try:
            self.chunks.close()
            self.events.close()
        finally:
            self.slot.release()


class ConversationViewSet(OrganizationViewSet):
    queryset = Conversation.objects.all()
    required_feature = Feature.COPILOT
    action_permissions = {
        "list": COPILOT_USE,
        "create": COPILOT_USE,
        "retrieve": COPILOT_USE,
        "partial_update": COPILOT_USE,
        "destroy": COPILOT_USE,
        "messages": COPILOT_USE,
        "send_message": COPILOT_USE,
        "proposals": COPILOT_USE,
        "confirm_proposal": COPILOT_USE,
        "reject_proposal": COPILOT_USE,
    }
    ordering_fields = ["updated_at", "created_at"]
    ordering = ["-updated_at", "-pk"]
    search_fields = ["title"]

    def prepare_queryset(self, queryset):
        return selectors.conversations_of(self.access)

    @extend_schema(responses={200: ConversationOutput(many=True)}, tags=TAGS)
    def list(self, request):
        return self.paginated(self.get_queryset(), ConversationOutput)

    @extend_schema(request=ConversationInput, responses={201: ConversationOutput}, tags=TAGS)
    def create(self, request):
        data = ConversationInput(data=request.data)
        data.is_valid(raise_exception=True)
        conversation = services.conversation_create(actor=self.access, **data.validated_data)
        return Response(ConversationOutput(conversation).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: ConversationOutput}, tags=TAGS)
    def retrieve(self, request, pk=None):
        return Response(ConversationOutput(self.get_object()).data)

    @extend_schema(request=ConversationInput, responses={200: ConversationOutput}, tags=TAGS, description="Rename.")
    def partial_update(self, request, pk=None):
        conversation = self.get_object()
        data = ConversationInput(data=request.data)
        data.is_valid(raise_exception=True)
        conversation = services.conversation_rename(
            conversation=conversation, actor=self.access, title=data.validated_data.get("title", "")
        )
        return Response(ConversationOutput(conversation).data)

    @extend_schema(responses={204: None}, tags=TAGS, description="Delete it with its messages and proposals.")
    def destroy(self, request, pk=None):
        services.conversation_delete(conversation=self.get_object(), actor=self.access)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        responses={200: MessageOutput(many=True)},
        tags=TAGS,
        description="The conversation's messages, oldest first, each with the tool calls made, the records used "
        "and the writes proposed.",
    )
    @action(detail=True, methods=["get"], renderer_classes=[JSONRenderer, EventStreamRenderer])
    def messages(self, request, pk=None):
        conversation = self.get_object()
        return self.page_of(_messages().filter(conversation=conversation).order_by("pk"), MessageOutput)

    @extend_schema(
        request=MessageInput,
        parameters=[StreamQuery],
        responses={
            (201, "application/json"): MessageOutput,
            (200, EVENT_STREAM): OpenApiResponse(
                OpenApiTypes.STR,
                description="Server-Sent Events: `delta` {text}, `tool` {name, ok, code?}, `proposal` {id, tool, "
                "summary}, then `done` (the kept message, as the JSON answer) or `error` (a problem).",
            ),
        },
        tags=TAGS,
        description="Ask the co-pilot. It answers with the caller's tools and reach; a write it wants is kept as a "
        "proposal to confirm. One message counts against the plan's `copilot_messages_per_month` (403 "
        "`plan_limit_reached` past it). 503 `assistant_not_configured` without a model; upstream failures: 502 "
        "`assistant_upstream_error`, 503 `assistant_unavailable` / `assistant_rate_limited`, 504 "
        "`assistant_timeout`, with `Retry-After`; 503 `assistant_busy` with `Retry-After` when the server answers "
        "as many messages as it takes at once (`ASSISTANT_ANSWERS_PER_PROCESS`), nothing counted.",
    )
    @messages.mapping.post
    def send_message(self, request, pk=None):
        conversation = self.get_object()
        query = StreamQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = MessageInput(data=request.data)
        data.is_valid(raise_exception=True)
        own_key, own_model = (
            selectors.own_key() if self.access.entitlements.has(Feature.COPILOT_OWN_KEY) else (None, "")
        )
        model = llm.model_access(own_key=own_key, own_model=own_model)  # 503 before anything is counted
        slot = engine.answer_slot()  # 503 assistant_busy, before anything is counted
        streaming = False
        try:
            values = data.validated_data
            question, reply = services.question_record(
                conversation=conversation, actor=self.access, content=values["content"], skill=values["skill"]
            )
            events = engine.answer(
                conversation=conversation,
                question=question,
                reply=reply,
                access=self.access,
                model=model,
                skill=values["skill"],
                record=values.get("record"),
            )
            wants_stream = query.validated_data["stream"] or request.accepted_renderer.media_type == EVENT_STREAM
            if wants_stream:
                first = next(events)  # the model answered: an upstream failure before it is a plain problem response
                response = StreamingHttpResponse(_Holding(first, events, slot), content_type=EVENT_STREAM)
                streaming = True  # the stream gives the slot back
                response["Cache-Control"] = "no-cache"
                response["X-Accel-Buffering"] = "no"  # proxies must pass events through as they come
                return response
            kept = None
            for event in events:
                if event.kind == "done":
                    kept = event.data["message"]
            return Response(MessageOutput(kept).data, status=status.HTTP_201_CREATED)
        finally:
            if not streaming:
                slot.release()

    @extend_schema(responses={200: ProposalOutput(many=True)}, tags=TAGS, description="The writes proposed here.")
    @action(detail=True, methods=["get"])
    def proposals(self, request, pk=None):
        return self.page_of(selectors.proposals_of(self.get_object()), ProposalOutput)

    def _proposal(self, proposal_id) -> Proposal:
        proposal = selectors.proposals_of(self.get_object()).filter(pk=int(proposal_id)).first()
        if proposal is None:
            raise NotFound()
        return proposal

    @extend_schema(
        request=None,
        parameters=[PROPOSAL_ID],
        responses={200: ProposalOutput},
        tags=TAGS,
        description="Do the proposed write now, as you, through the co-pilot (audited so). Your permissions and "
        "reach are checked again: refused as the API refuses it, the proposal is then `failed`. 409 "
        "`proposal_not_pending` when already decided.",
    )
    @action(detail=True, methods=["post"], url_path=r"proposals/(?P<proposal_id>\d{1,18})/confirm")
    def confirm_proposal(self, request, pk=None, proposal_id=None):
        proposal = services.proposal_confirm(proposal=self._proposal(proposal_id), actor=self.access)
        return Response(ProposalOutput(proposal).data)

    @extend_schema(
        request=None,
        parameters=[PROPOSAL_ID],
        responses={200: ProposalOutput},
        tags=TAGS,
        description="Drop the proposed write. 409 `proposal_not_pending` when already decided.",
    )
    @action(detail=True, methods=["post"], url_path=r"proposals/(?P<proposal_id>\d{1,18})/reject")
    def reject_proposal(self, request, pk=None, proposal_id=None):
        proposal = services.proposal_reject(proposal=self._proposal(proposal_id), actor=self.access)
        return Response(ProposalOutput(proposal).data)


def _model_settings_output():
    row = selectors.model_settings()
    return ModelSettingsOutput(
        {
            "has_key": bool(row and row.api_key_encrypted),
            "model": row.model if row else "",
            "updated_at": row.updated_at if row else None,
        }
    ).data


class AssistantViewSet(OrganizationViewSet):
    queryset = None
    required_feature = Feature.COPILOT
    action_permissions = {
        "tools": COPILOT_USE,
        "model_settings": MODEL_SETTINGS_MANAGE,
        "set_model_settings": MODEL_SETTINGS_MANAGE,
        "clear_model_settings": MODEL_SETTINGS_MANAGE,
    }
    action_features = dict.fromkeys(
        ["model_settings", "set_model_settings", "clear_model_settings"], Feature.COPILOT_OWN_KEY
    )

    @extend_schema(
        responses={200: ModelSettingsOutput},
        tags=TAGS,
        description="Whether the organization brings its own model key (never shown) and which model it asks.",
    )
    @action(detail=False, methods=["get"], url_path="model-settings")
    def model_settings(self, request):
        return Response(_model_settings_output())

    @extend_schema(
        request=ModelSettingsInput,
        responses={200: ModelSettingsOutput},
        tags=TAGS,
        description="Use the organization's own key (stored encrypted, audited without it) instead of the "
        "deployment's.",
    )
    @model_settings.mapping.put
    def set_model_settings(self, request):
        data = ModelSettingsInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.model_settings_save(
            actor=self.access, api_key=data.validated_data["api_key"], model=data.validated_data.get("model", "")
        )
        return Response(_model_settings_output())

    @extend_schema(responses={204: None}, tags=TAGS, description="Go back to the deployment's key.")
    @model_settings.mapping.delete
    def clear_model_settings(self, request):
        services.model_settings_save(actor=self.access, api_key=None)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        responses={200: ToolOutput(many=True)},
        tags=TAGS,
        description="The tools the co-pilot offers you: only those your role and plan allow.",
    )
    @action(detail=False, methods=["get"])
    def tools(self, request):
        offered = [
            {"name": t.name, "description": t.description, "writes": t.writes, "parameters": t.json_schema()}
            for t in tools.offered(self.access)
        ]
        return self.page_of(offered, ToolOutput)
