from __future__ import annotations

from rest_framework import serializers

from config.api.outputs import ModelOutput
from crm.choices import RecordType

from ..choices import Skill
from ..models import Conversation, Message, Proposal


class ConversationOutput(ModelOutput):
    class Meta:
        model = Conversation
        fields = ["id", "title", "created_at", "updated_at"]


class ConversationInput(serializers.Serializer):
    title = serializers.CharField(max_length=200, required=False, allow_blank=True)


class AssistantReferenceOutput(serializers.Serializer):
    type = serializers.ChoiceField(choices=RecordType.choices)
    id = serializers.IntegerField()
    name = serializers.CharField()


class ToolCallOutput(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    arguments = serializers.JSONField()
    ok = serializers.BooleanField()
    code = serializers.CharField(required=False, help_text="Why the call was refused (as the API's codes).")
    proposal_id = serializers.IntegerField(required=False)


class ProposalOutput(ModelOutput):
    class Meta:
        model = Proposal
        fields = ["id", "tool", "arguments", "summary", "status", "result", "created_at", "decided_at"]


class MessageOutput(ModelOutput):
    tool_calls = ToolCallOutput(many=True)
    references = AssistantReferenceOutput(many=True)
    proposals = ProposalOutput(many=True)

    class Meta:
        model = Message
        fields = [
            "id",
            "role",
            "content",
            "skill",
            "status",
            "error_code",
            "tool_calls",
            "references",
            "proposals",
            "prompt_tokens",
            "completion_tokens",
            "created_at",
        ]


class RecordInput(serializers.Serializer):
    type = serializers.ChoiceField(choices=RecordType.choices)
    id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)


class MessageInput(serializers.Serializer):
    content = serializers.CharField(max_length=4000)
    skill = serializers.ChoiceField(choices=Skill.choices, default=Skill.CHAT)
    record = RecordInput(required=False, help_text="The record a skill works on (summarize, follow_up).")

    def validate(self, attrs):
        if attrs.get("skill") in (Skill.SUMMARIZE, Skill.FOLLOW_UP) and "record" not in attrs:
            raise serializers.ValidationError({"record": ["This skill needs a record."]}, code="required")
        return attrs


class StreamQuery(serializers.Serializer):
    stream = serializers.BooleanField(
        required=False, default=False, help_text="Answer as Server-Sent Events (or send Accept: text/event-stream)."
    )


class ToolOutput(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    writes = serializers.BooleanField(help_text="A write is proposed, and done only when the user confirms it.")
    parameters = serializers.JSONField()


class ModelSettingsOutput(serializers.Serializer):
    has_key = serializers.BooleanField(help_text="The organization's own key is set (it is never shown).")
    model = serializers.CharField(help_text="The model asked with it; empty: the deployment's.")
    updated_at = serializers.DateTimeField(allow_null=True)


class ModelSettingsInput(serializers.Serializer):
    api_key = serializers.CharField(max_length=500, write_only=True, help_text="Stored encrypted; never returned.")
    model = serializers.CharField(max_length=100, required=False, allow_blank=True)
