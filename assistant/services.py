"""The co-pilot's writes: conversations, the month's usage, proposals confirmed or rejected, the organization's key.

Every function takes the caller's :class:`rbac.access.Access`; a conversation is its author's alone (the viewset
only ever loads the caller's own, :func:`assistant.selectors.conversations_of`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import cast

from django.db import connection, transaction
from django.utils import timezone

from billing.choices import Meter
from billing.metering import usage_consume
from config.api.errors import DomainError
from rbac import audit
from rbac.access import Access
from tenants.selectors import current_organization

from . import secrets, tools
from .choices import MessageRole, MessageStatus, ProposalStatus, Skill
from .errors import ProposalNotPending
from .models import Conversation, Message, ModelSettings, MonthlyUsage, Proposal
from .selectors import month_start

TITLE_LENGTH = 80


def conversation_create(*, actor: Access, title: str = "") -> Conversation:
    return Conversation.objects.create(author_id=cast(int, actor.user_id), title=title.strip()[:200])


def conversation_rename(*, conversation: Conversation, actor: Access, title: str) -> Conversation:
    conversation.title = title.strip()[:200]
    conversation.save(update_fields=["title", "updated_at"])
    return conversation


def conversation_delete(*, conversation: Conversation, actor: Access) -> None:
    """The conversation, its messages and proposals go; the month's usage stays counted."""
    conversation.delete()


@transaction.atomic
def question_record(
    *, conversation: Conversation, actor: Access, content: str, skill: str = Skill.CHAT
) -> tuple[Message, Message]:
    """Count one co-pilot message against the plan's monthly limit (403 ``plan_limit_reached`` past it), keep the
    question and its answer's row, ``interrupted`` until the answer completes it (:func:`assistant.engine.answer`).
    Committed before the model is asked, so an answer cut short, or a server that stops, still leaves the question
    and a marked answer."""
    usage_consume(organization=current_organization(), meter=Meter.COPILOT_MESSAGES)
    question, reply = Message.objects.bulk_create(
        [
            Message(conversation=conversation, role=MessageRole.USER, content=content, skill=skill),
            Message(
                conversation=conversation, role=MessageRole.ASSISTANT, skill=skill, status=MessageStatus.INTERRUPTED
            ),
        ]
    )
    fields = ["updated_at"]
    if not conversation.title:
        conversation.title = " ".join(content.split())[:TITLE_LENGTH]
        fields.append("title")
    conversation.save(update_fields=fields)
    return question, reply


_TOKENS_UPSERT = f"""
INSERT INTO {MonthlyUsage._meta.db_table} AS usage (month, prompt_tokens, completion_tokens) VALUES (%s, %s, %s)
ON CONFLICT (month) DO UPDATE SET prompt_tokens = usage.prompt_tokens + EXCLUDED.prompt_tokens,
    completion_tokens = usage.completion_tokens + EXCLUDED.completion_tokens
"""


def tokens_record(*, prompt_tokens: int, completion_tokens: int) -> None:
    """Add an answer's tokens to the month's (one statement: concurrent answers never lose a count)."""
    if prompt_tokens or completion_tokens:
        with connection.cursor() as cursor:
            cursor.execute(_TOKENS_UPSERT, [month_start(), prompt_tokens, completion_tokens])


def copilot_actor(actor: Access) -> Access:
    """The caller, marked as acting through the co-pilot: events and the audit trail say so."""
    return replace(actor, label=f"{actor.label} via co-pilot"[:254])


def mcp_actor(actor: Access) -> Access:
    """An API key, marked as acting through the MCP server: events and the audit trail say ``<key name> via MCP``."""
    return replace(actor, label=f"{actor.label.removeprefix('API key ')} via MCP"[:254])


def mcp_write(*, actor: Access, tool: str, arguments: dict) -> dict:
    """Carry out a write tool an MCP client called, directly as the key (no person is there to confirm a
    proposal): the tool's service runs with the key's access, and the audit trail keeps what was done. A refusal
    raises the API's error; nothing is written then."""
    acting = mcp_actor(actor)
    with transaction.atomic():
        result = tools.perform(acting, tool, arguments)
        audit.record(
            organization=current_organization(),
            actor=acting,
            action="assistant.mcp.write",
            target_type="assistant.tool",
            target_id=tool,
            after={"tool": tool, "arguments": arguments, "result": result},
        )
    return result


def proposal_confirm(*, proposal: Proposal, actor: Access) -> Proposal:
    """Carry out a proposed write as the caller, through the co-pilot: the tool's service runs with his access
    now (a permission or record lost since the proposal refuses it, with the API's code). 409
    ``proposal_not_pending`` the second time. A refused write leaves the proposal ``failed`` with the problem."""
    failure: DomainError | None = None
    acting = copilot_actor(actor)
    with transaction.atomic():
        locked = Proposal.objects.select_for_update().get(pk=proposal.pk)
        if locked.status != ProposalStatus.PENDING:
            raise ProposalNotPending()
        try:
            with transaction.atomic():
                result = tools.perform(acting, locked.tool, locked.arguments)
        except DomainError as error:
            failure = error
            locked.status, locked.result = ProposalStatus.FAILED, {"error": error.problem()}
        else:
            locked.status, locked.result = ProposalStatus.CONFIRMED, result
            audit.record(
                organization=current_organization(),
                actor=acting,
                action="assistant.proposal.confirmed",
                target_type="assistant.proposal",
                target_id=locked.pk,
                after={"tool": locked.tool, "arguments": locked.arguments, "result": result},
            )
        locked.decided_at = timezone.now()
        locked.save(update_fields=["status", "result", "decided_at"])
    if failure is not None:
        raise failure
    return locked


@transaction.atomic
def proposal_reject(*, proposal: Proposal, actor: Access) -> Proposal:
    locked = Proposal.objects.select_for_update().get(pk=proposal.pk)
    if locked.status != ProposalStatus.PENDING:
        raise ProposalNotPending()
    locked.status, locked.decided_at = ProposalStatus.REJECTED, timezone.now()
    locked.save(update_fields=["status", "decided_at"])
    return locked


@transaction.atomic
def model_settings_save(*, actor: Access, api_key: str | None, model: str = "") -> ModelSettings:
    """Set (or with an empty key, clear) the organization's own model key, encrypted; audited without the key."""
    row = ModelSettings.objects.select_for_update().first() or ModelSettings()
    row.api_key_encrypted = secrets.encrypt(api_key) if api_key else ""
    row.model = model.strip()[:100]
    row.save()
    audit.record(
        organization=current_organization(),
        actor=actor,
        action="assistant.model_key.set" if api_key else "assistant.model_key.cleared",
        target_type="assistant.model_settings",
        target_id=row.pk,
        after={"model": row.model, "has_key": bool(api_key)},
    )
    return row
