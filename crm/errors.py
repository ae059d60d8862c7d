from config.api.errors import Conflict, DomainError, Duplicate, ValidationFailed


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


class OutOfReach(ValidationFailed):
    code = "out_of_scope"
    title = "The change would move the record outside what you may edit."


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
