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


class PaymentProviderNotConfigured(DomainError):
    code = "payment_provider_not_configured"
    status = status.HTTP_402_PAYMENT_REQUIRED
    title = "Paid plans need the payment provider, which is not configured here: ask for a trial or an operator."


class PlanNotPurchasable(Conflict):
    code = "plan_not_purchasable"
    title = "This plan has no price at the payment provider for this interval; an operator can grant it."


class NoBillingAccount(Conflict):
    code = "no_billing_account"
    title = "The organization has no billing account at the payment provider yet: subscribe to a paid plan first."


class PaymentProviderUnavailable(DomainError):
    code = "payment_provider_unavailable"
    status = status.HTTP_503_SERVICE_UNAVAILABLE
    title = "The payment provider is unreachable for a moment; nothing was changed. Retry later."


class PaymentProviderError(DomainError):
    code = "payment_provider_error"
    status = status.HTTP_502_BAD_GATEWAY
    title = "The payment provider refused the request; nothing was changed."


class InvalidProviderSignature(DomainError):
    code = "invalid_signature"
    status = status.HTTP_400_BAD_REQUEST
    title = "The request signature does not verify."


class SubscriptionPastDue(Conflict):
    code = "subscription_past_due"
    title = "The last payment failed: update the card in the billing portal before changing the plan."
