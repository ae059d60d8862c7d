from config.api.errors import Conflict, ValidationFailed


class LeadAlreadyConverted(Conflict):
    code = "lead_already_converted"
    title = "The lead has already been converted."


class InvalidLeadTransition(Conflict):
    code = "invalid_lead_transition"
    title = "The lead cannot move to that status from its current one."


class InvalidCustomField(ValidationFailed):
    code = "invalid_custom_field"
    title = "A custom field value is invalid."


class DuplicateEmail(Conflict):
    code = "duplicate_email"
    title = "Another contact already has this e-mail address."


class OutOfReach(ValidationFailed):
    code = "out_of_scope"
    title = "The change would move the record outside what you may edit."
