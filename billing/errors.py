from rest_framework import status

from config.api.errors import Conflict, DomainError, NotFound


class FeatureNotInPlan(DomainError):
    code = "feature_not_in_plan"
    status = status.HTTP_403_FORBIDDEN
    title = "Your plan does not include this feature."


class PlanLimitReached(DomainError):
    code = "plan_limit_reached"
    status = status.HTTP_403_FORBIDDEN
    title = "Your plan's limit is reached."


class DowngradeBlocked(Conflict):
    code = "downgrade_blocked"
    title = "Current usage exceeds the new plan's limits."


class PlanNotFound(NotFound):
    code = "plan_not_found"
    title = "No such plan."


class SamePlan(Conflict):
    code = "same_plan"
    title = "The organization is already on this plan."


class InvalidTransition(Conflict):
    code = "invalid_subscription_transition"
    title = "The subscription cannot move to this status."


class NoTrialToExtend(Conflict):
    code = "no_trial_to_extend"
    title = "The organization pays for its plan; there is no trial to extend."
