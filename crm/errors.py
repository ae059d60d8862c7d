from config.api.errors import Conflict, DomainError, Duplicate, ValidationFailed
from rbac.errors import OutOfReach as OutOfReach  # the scope rule is rbac.actor's; crm's errors name it too


class LeadAlreadyConverted(Conflict):
    code = "lead_already_converted"
    title = "The lead has already been converted."


class InvalidLeadTransition(Conflict):
    code = "invalid_lead_transition"
    title = "The lead cannot move to that status from its current one."


class InvalidCustomField(ValidationFailed):
    code = "invalid_custom_field"
    title = "A custom field value is invalid."


class DuplicateEmail(Duplicate):
    code = "duplicate_email"
    title = "Another contact already has this e-mail address."
    field = "email"


class DuplicateDomain(Duplicate):
    """A company domain is unique among companies, whatever the case."""

    code = "duplicate_domain"
    title = "Another company already has this domain."
    field = "domain"


class LeadNotConvertible(Conflict):
    code = "lead_not_convertible"
    title = "A disqualified lead cannot be converted; qualify it first."


class ActivityAlreadyCompleted(Conflict):
    code = "activity_already_completed"
    title = "The activity is already completed."


class ActivityNotCompletable(ValidationFailed):
    code = "activity_not_completable"
    title = "Only tasks and meetings are completed; notes, calls and e-mails are logged as done."


class ActivityTargetRequired(ValidationFailed):
    code = "activity_target_required"
    title = "Attach the activity to a contact, company, lead or deal."


class MergeSameRecord(ValidationFailed):
    code = "merge_same_record"
    title = "A record cannot be merged into itself."


class DuplicateTag(Duplicate):
    code = "duplicate_tag"
    title = "A tag with this name already exists."
    field = "name"


class UnknownTags(ValidationFailed):
    """Tag names that match no tag, from someone who may not create tags (``crm.tag.manage``): one ``unknown_tag``
    error per name in ``errors``, under the request field that named them."""

    field_code = "unknown_tag"

    def __init__(self, names: list[str], *, field: str = "tags"):
        listed = ", ".join(repr(name) for name in names)
        errors = [
            {"field": field, "code": self.field_code, "detail": f"No tag is named {name!r}; you may not create tags."}
            for name in names
        ]
        super().__init__(f"Unknown tags: {listed}. Only existing tags may be attached.", extra={"errors": errors})


class DuplicateCustomField(Duplicate):
    code = "duplicate_custom_field"
    title = "A custom field with this key already exists for this record type."
    field = "key"


class InvalidCustomFieldDefinition(ValidationFailed):
    code = "invalid_custom_field_definition"
    title = "The custom field definition is invalid."


class BulkFailed(DomainError):
    """Nothing was changed: ``errors`` lists each refused item as ``{field, id, code, detail}``."""

    code = "bulk_failed"
    status = 400
    title = "Some items could not be changed; nothing was changed."

    def __init__(self, errors: list[dict], detail: str | None = None):
        super().__init__(detail, extra={"errors": errors})
