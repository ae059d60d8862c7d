from django.db import models


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending (first attempt or a retry is due)"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed (retries spent or the endpoint disabled)"


class DisabledReason(models.TextChoices):
    NONE = "", "Not disabled"
    MANUAL = "manual", "Switched off by a member"
    FAILING = "failing", "Switched off after failing continuously"
