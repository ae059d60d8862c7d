"""The event catalogue: every domain event type the product records, with what it means.

Services record events with :func:`integrations.outbox.record`; an unknown type is a programming error.
Webhook subscriptions and the published catalogue (``GET /api/v1/webhooks/event-types/``) read this.
"""

EVENTS: dict[str, str] = {
    "company.created": "A company was created",
    "company.updated": "A company was edited",
    "company.deleted": "A company was deleted",
    "company.merged": "Two companies were merged into one",
    "contact.created": "A contact was created",
    "contact.updated": "A contact was edited",
    "contact.deleted": "A contact was deleted",
    "contact.merged": "Two contacts were merged into one",
    "contact.activated": "A contact was activated",
    "contact.deactivated": "A contact was deactivated",
    "lead.created": "A lead was created",
    "lead.updated": "A lead was edited",
    "lead.deleted": "A lead was deleted",
    "lead.qualified": "A lead was qualified",
    "lead.disqualified": "A lead was disqualified",
    "lead.converted": "A lead was converted into a contact, company and possibly a deal",
    "activity.created": "An activity (note, call, e-mail, meeting, task) was logged",
    "activity.updated": "An activity was edited",
    "activity.deleted": "An activity was deleted",
    "activity.completed": "A task or meeting was completed",
    "deal.created": "A deal was created",
    "deal.updated": "A deal was edited",
    "deal.stage_changed": "A deal moved to another stage",
    "deal.won": "A deal was won",
    "deal.lost": "A deal was lost",
    "deal.reopened": "A closed deal was reopened",
    "deal.deleted": "A deal was deleted",
}
