from config.api.errors import Conflict, NotFound, ValidationFailed


class OrganizationNotFound(NotFound):
    code = "organization_not_found"
    title = "Organization not found."


class OrganizationRequired(ValidationFailed):
    code = "organization_required"
    title = "This endpoint needs an organization: send the X-Organization header or use its domain."


class SlugTaken(Conflict):
    code = "slug_taken"
    title = "That organization address is already taken."


class ConfirmationRequired(ValidationFailed):
    code = "confirmation_required"
    title = "Confirm by sending the organization's slug as `confirm`."
