from config.api.errors import Conflict, DomainError, ValidationFailed


class CampaignNotEditable(Conflict):
    code = "campaign_not_editable"
    title = "The campaign is sending or finished; it can no longer be edited."


class CampaignFinished(Conflict):
    code = "campaign_finished"
    title = "The campaign is completed or canceled; it cannot be sent again."


class InvalidCampaignTransition(Conflict):
    code = "invalid_campaign_transition"
    title = "The campaign cannot do that in its current status."


class EmptySegment(Conflict):
    code = "empty_segment"
    title = "The segment has no contact within your reach; nothing would be sent."


class SegmentInUse(Conflict):
    code = "segment_in_use"
    title = "Campaigns use this segment; it cannot be deleted."


class SegmentNotStatic(Conflict):
    code = "segment_not_static"
    title = "Only static segments have a list of contacts; dynamic ones are saved filters."


class ChannelNotConfigured(DomainError):
    code = "channel_not_configured"
    status = 409
    title = "This channel is not configured on the server."


class InvalidSegmentFilters(ValidationFailed):
    code = "invalid_filter"
    title = "The segment's filters are not the contacts list's filters."


class NoTestAddress(ValidationFailed):
    code = "no_test_address"
    title = "There is no address of yours to send a test to."
