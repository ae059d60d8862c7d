"""What an organization defines for its records: tags and custom fields.

The event catalogue has no tag or custom field events (they describe the organization's setup, not its
customers' data), so these services record none.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import F, Func, JSONField, Value
from django.db.models.functions import Lower

from billing.features import Limit
from billing.services import enforce_limit
from integrations import outbox
from rbac.actor import Actor, require_actor
from tenants.selectors import current_organization

from ..choices import CustomFieldType
from ..errors import DuplicateCustomField, DuplicateTag, InvalidCustomFieldDefinition
from ..models import CustomField, Tag
from ..records import UNSET, given, record_model

# --- tags ---


def _check_tag_name_free(name: str, *, exclude_pk: int | None = None) -> None:
    taken = Tag.objects.annotate(lower=Lower("name")).filter(lower=name.lower())
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise DuplicateTag()


def _save_tag(tag: Tag, **kwargs) -> None:
    try:
        with transaction.atomic():
            tag.save(**kwargs)
    except IntegrityError:
        raise DuplicateTag() from None


@transaction.atomic
def tag_create(*, actor: Actor, name: str, color: str = "") -> Tag:
    require_actor(actor)
    name = name.strip()
    _check_tag_name_free(name)
    tag = Tag(name=name, color=color)
    _save_tag(tag)
    return tag


@transaction.atomic
def tag_update(*, tag: Tag, actor: Actor, name: str = UNSET, color: str = UNSET) -> Tag:
    """Rename or recolor a tag; every record tagged with it shows the new name."""
    require_actor(actor)
    tag = Tag.objects.select_for_update().get(pk=tag.pk)
    fields = given(name=name if name is UNSET else name.strip(), color=color)
    if "name" in fields:
        _check_tag_name_free(fields["name"], exclude_pk=tag.pk)
    change = outbox.apply_changes(tag, fields)
    if change:
        _save_tag(tag, update_fields=list(change))
    return tag


@transaction.atomic
def tag_delete(*, tag: Tag, actor: Actor) -> None:
    """Delete a tag; it is removed from every record."""
    require_actor(actor)
    tag.delete()


# --- custom fields ---


class _RemoveKey(Func):
    """PostgreSQL ``jsonb - key``."""

    arg_joiner = " - "
    template = "(%(expressions)s)"
    output_field = JSONField()


def _check_choices(field_type: str, choices: list) -> list:
    if field_type != CustomFieldType.CHOICE:
        if choices:
            raise InvalidCustomFieldDefinition("Only a single-choice field has choices.", field="choices")
        return []
    cleaned = [str(choice).strip() for choice in choices or [] if str(choice).strip()]
    if not cleaned:
        raise InvalidCustomFieldDefinition("A single-choice field needs at least one choice.", field="choices")
    if len(set(cleaned)) != len(cleaned):
        raise InvalidCustomFieldDefinition("The choices must differ.", field="choices")
    return cleaned


@transaction.atomic
def custom_field_create(
    *,
    actor: Actor,
    record_type: str,
    key: str,
    label: str,
    type: str,
    required: bool = False,
    choices: list | None = None,
    position: int = 0,
) -> CustomField:
    """Define a custom field. Counts against the plan's ``custom_fields`` limit; the key is unique per record
    type (409 ``duplicate_custom_field``)."""
    require_actor(actor)
    enforce_limit(organization=current_organization(), limit=Limit.CUSTOM_FIELDS)
    if CustomField.objects.filter(record_type=record_type, key=key).exists():
        raise DuplicateCustomField()
    return CustomField.objects.create(
        record_type=record_type,
        key=key,
        label=label.strip(),
        type=type,
        required=required,
        choices=_check_choices(type, choices or []),
        position=position,
    )


@transaction.atomic
def custom_field_update(
    *,
    field: CustomField,
    actor: Actor,
    label: str = UNSET,
    required: bool = UNSET,
    choices: list[str] = UNSET,
    position: int = UNSET,
) -> CustomField:
    """Change the label, whether it is required, the choices or the position. The record type, key and type
    are fixed: stored values depend on them."""
    require_actor(actor)
    field = CustomField.objects.select_for_update().get(pk=field.pk)
    fields = given(
        label=label if label is UNSET else label.strip(),
        required=required,
        choices=choices if choices is UNSET else _check_choices(field.type, choices),
        position=position,
    )
    change = outbox.apply_changes(field, fields)
    if change:
        field.save(update_fields=list(change))
    return field


@transaction.atomic
def custom_field_delete(*, field: CustomField, actor: Actor) -> int:
    """Delete the definition and its values from every record. Returns how many records had a value."""
    require_actor(actor)
    model = record_model(field.record_type)
    cleared = model.objects.filter(custom_fields__has_key=field.key).update(
        custom_fields=_RemoveKey(F("custom_fields"), Value(field.key))
    )
    field.delete()
    return cleared
