from django.db import models


class RecordType(models.TextChoices):
    COMPANY = "company", "Company"
    CONTACT = "contact", "Contact"
    LEAD = "lead", "Lead"
    DEAL = "deal", "Deal"


class LeadStatus(models.TextChoices):
    NEW = "new", "New"
    CONTACTED = "contacted", "Contacted"
    QUALIFIED = "qualified", "Qualified"
    UNQUALIFIED = "unqualified", "Unqualified"
    CONVERTED = "converted", "Converted"


class LeadSource(models.TextChoices):
    WEBSITE = "website", "Website"
    REFERRAL = "referral", "Referral"
    EVENT = "event", "Event"
    COLD_OUTREACH = "cold_outreach", "Cold outreach"
    ADVERTISING = "advertising", "Advertising"
    SOCIAL = "social", "Social media"
    PARTNER = "partner", "Partner"
    IMPORT = "import", "Import"
    API = "api", "API"
    OTHER = "other", "Other"


class Priority(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


class ContactStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    INACTIVE = "inactive", "Inactive"


class LifecycleStage(models.TextChoices):
    SUBSCRIBER = "subscriber", "Subscriber"
    LEAD = "lead", "Lead"
    OPPORTUNITY = "opportunity", "Opportunity"
    CUSTOMER = "customer", "Customer"
    EVANGELIST = "evangelist", "Evangelist"
    OTHER = "other", "Other"


class CompanySize(models.TextChoices):
    S1_10 = "1-10", "1–10"
    S11_50 = "11-50", "11–50"
    S51_200 = "51-200", "51–200"
    S201_1000 = "201-1000", "201–1,000"
    S1001_PLUS = "1001+", "1,001+"


class ActivityKind(models.TextChoices):
    NOTE = "note", "Note"
    CALL = "call", "Call"
    EMAIL = "email", "E-mail"
    MEETING = "meeting", "Meeting"
    TASK = "task", "Task"


class CustomFieldType(models.TextChoices):
    TEXT = "text", "Text"
    NUMBER = "number", "Number"
    DATE = "date", "Date"
    CHOICE = "choice", "Single choice"
    BOOLEAN = "boolean", "Yes/no"


class ImportStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


class DedupePolicy(models.TextChoices):
    SKIP = "skip", "Skip rows that match an existing record"
    UPDATE = "update", "Update the matching record"
    CREATE = "create", "Always create"


# The statuses a lead is created with or edited to directly; the others are reached through actions.
EDITABLE_LEAD_STATUSES = [LeadStatus.NEW.value, LeadStatus.CONTACTED.value]
