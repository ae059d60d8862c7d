from functools import partial

from rest_framework import serializers

from config.api.fields import MemberField, ScopedRecordField
from config.api.outputs import ModelOutput
from config.api.references import PersonReference, RecordReference
from crm import timeline
from crm.choices import (
    ActivityKind,
    CompanySize,
    ContactStatus,
    CustomFieldType,
    LeadSource,
    LeadStatus,
    LifecycleStage,
    Priority,
    RecordType,
)
from crm.models import Activity, Company, Contact, CustomField, Lead, Tag
from crm.permissions import COMPANY_VIEW, CONTACT_UPDATE, CONTACT_VIEW, LEAD_VIEW
from crm.records import record_model, record_view_permission
from crm.selectors import NONE_KEY

TAG_NAMES_HELP = (
    "Tag names (case-insensitive). A name that matches no tag creates it only with `crm.tag.manage`; "
    "otherwise 400 `validation_error` with an `unknown_tag` error per unknown name."
)


class TagNamesField(serializers.ListField):
    """A record's tag names, sorted: from its tags, or the names a list page's row carries (``selectors.lead_list``)."""

    child = serializers.CharField(max_length=50)

    def to_representation(self, data):
        if isinstance(data, list):
            return sorted(data)
        return sorted(tag.name for tag in data.all())


class RecordOutput(ModelOutput):
    owner = PersonReference(allow_null=True)
    tags = TagNamesField()


class LeadOutput(RecordOutput):
    converted_contact = RecordReference(allow_null=True)
    converted_company = RecordReference(allow_null=True)
    converted_deal = RecordReference(allow_null=True)

    class Meta:
        model = Lead
        fields = [
            "id",
            "name",
            "email",
            "phone",
            "company_name",
            "source",
            "status",
            "score",
            "priority",
            "estimated_value",
            "owner",
            "tags",
            "custom_fields",
            "disqualified_reason",
            "converted_at",
            "converted_contact",
            "converted_company",
            "converted_deal",
            "created_at",
            "updated_at",
        ]


class LeadInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    email = serializers.EmailField(max_length=254, required=False, allow_blank=True)
    phone = serializers.CharField(max_length=40, required=False, allow_blank=True)
    company_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    source = serializers.ChoiceField(choices=LeadSource.choices, required=False, allow_blank=True)  # type: ignore[assignment]  # a field named like Field's attribute, as DRF allows
    status = serializers.ChoiceField(choices=[LeadStatus.NEW, LeadStatus.CONTACTED], required=False)
    score = serializers.IntegerField(min_value=0, max_value=100, required=False)
    priority = serializers.ChoiceField(choices=Priority.choices, required=False)
    estimated_value = serializers.DecimalField(
        max_digits=14, decimal_places=2, min_value=0, required=False, allow_null=True
    )
    owner = MemberField(required=False, allow_null=True, source="owner_id")
    tags = serializers.ListField(
        child=serializers.CharField(max_length=50), required=False, max_length=50, help_text=TAG_NAMES_HELP
    )
    custom_fields = serializers.DictField(required=False, source="custom_fields_values")

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        if "owner_id" in values and values["owner_id"] is not None:
            values["owner_id"] = values["owner_id"].pk
        return values


class LeadDisqualifyInput(serializers.Serializer):
    reason = serializers.CharField(max_length=500)


class ReferencesInput(serializers.Serializer):
    """Turns resolved ``owner`` and related-record fields into ``<name>_id`` keyword arguments for services."""

    references: tuple[str, ...] = ()

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        if values.get("owner_id") is not None:
            values["owner_id"] = values["owner_id"].pk
        for name in self.references:
            if name in values:
                record = values.pop(name)
                values[f"{name}_id"] = record.pk if record is not None else None
        return values


# --- companies ---


class CompanyOutput(RecordOutput):
    class Meta:
        model = Company
        fields = [
            "id",
            "name",
            "domain",
            "industry",
            "size",
            "phone",
            "street",
            "city",
            "region",
            "postal_code",
            "country",
            "owner",
            "tags",
            "custom_fields",
            "created_at",
            "updated_at",
        ]


class CompanyInput(ReferencesInput):
    name = serializers.CharField(max_length=200)
    domain = serializers.CharField(max_length=253, required=False, allow_blank=True, help_text="e.g. example.com")
    industry = serializers.CharField(max_length=100, required=False, allow_blank=True)
    size = serializers.ChoiceField(choices=CompanySize.choices, required=False, allow_blank=True)
    phone = serializers.CharField(max_length=40, required=False, allow_blank=True)
    street = serializers.CharField(max_length=200, required=False, allow_blank=True)
    city = serializers.CharField(max_length=100, required=False, allow_blank=True)
    region = serializers.CharField(max_length=100, required=False, allow_blank=True)
    postal_code = serializers.CharField(max_length=20, required=False, allow_blank=True)
    country = serializers.RegexField(
        r"^[A-Za-z]{2}$", required=False, allow_blank=True, help_text="ISO 3166-1 alpha-2 code."
    )
    owner = MemberField(required=False, allow_null=True, source="owner_id")
    tags = serializers.ListField(
        child=serializers.CharField(max_length=50), required=False, max_length=50, help_text=TAG_NAMES_HELP
    )
    custom_fields = serializers.DictField(required=False, source="custom_fields_values")

    def validate_country(self, value: str) -> str:
        return value.upper()


# --- contacts ---


class ContactOutput(RecordOutput):
    company = RecordReference(allow_null=True)

    class Meta:
        model = Contact
        fields = [
            "id",
            "first_name",
            "last_name",
            "email",
            "phone",
            "job_title",
            "company",
            "status",
            "lifecycle_stage",
            "source",
            "do_not_contact",
            "owner",
            "tags",
            "custom_fields",
            "created_at",
            "updated_at",
        ]


class ContactInput(ReferencesInput):
    references = ("company",)

    first_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    last_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    email = serializers.EmailField(
        max_length=254, required=False, allow_blank=True, help_text="Stored lower-cased; unique in the organization."
    )
    phone = serializers.CharField(max_length=40, required=False, allow_blank=True)
    job_title = serializers.CharField(max_length=150, required=False, allow_blank=True)
    company = ScopedRecordField(model=Company, permission=COMPANY_VIEW, required=False, allow_null=True)
    lifecycle_stage = serializers.ChoiceField(choices=LifecycleStage.choices, required=False)
    source = serializers.ChoiceField(choices=LeadSource.choices, required=False, allow_blank=True)  # type: ignore[assignment]  # a field named like Field's attribute, as DRF allows
    do_not_contact = serializers.BooleanField(required=False)
    owner = MemberField(required=False, allow_null=True, source="owner_id")
    tags = serializers.ListField(
        child=serializers.CharField(max_length=50), required=False, max_length=50, help_text=TAG_NAMES_HELP
    )
    custom_fields = serializers.DictField(required=False, source="custom_fields_values")

    def validate(self, attrs):
        if not self.partial and not any(attrs.get(name) for name in ("first_name", "last_name", "email")):
            raise serializers.ValidationError({"last_name": "Give a name or an e-mail address."})
        return attrs


class MergeInput(serializers.Serializer):
    duplicate = serializers.IntegerField(help_text="The record merged into this one and then deleted.")


# --- activities ---


class ActivityOutput(ModelOutput):
    owner = PersonReference(allow_null=True)
    contact = RecordReference(allow_null=True)
    company = RecordReference(allow_null=True)
    lead = RecordReference(allow_null=True)
    deal = RecordReference(allow_null=True)

    class Meta:
        model = Activity
        fields = [
            "id",
            "kind",
            "subject",
            "body",
            "due_at",
            "completed_at",
            "owner",
            "contact",
            "company",
            "lead",
            "deal",
            "created_at",
            "updated_at",
        ]


class ActivityInput(ReferencesInput):
    references = ("contact", "company", "lead", "deal")

    kind = serializers.ChoiceField(choices=ActivityKind.choices)
    subject = serializers.CharField(max_length=200)
    body = serializers.CharField(required=False, allow_blank=True, max_length=20000)
    due_at = serializers.DateTimeField(required=False, allow_null=True)
    owner = MemberField(required=False, allow_null=True, source="owner_id")
    contact = ScopedRecordField(model=Contact, permission=CONTACT_VIEW, required=False, allow_null=True)
    company = ScopedRecordField(model=Company, permission=COMPANY_VIEW, required=False, allow_null=True)
    lead = ScopedRecordField(model=Lead, permission=LEAD_VIEW, required=False, allow_null=True)
    deal = ScopedRecordField(  # deals belong to pipelines, above crm: named through the record registry
        model=partial(record_model, RecordType.DEAL),
        permission=partial(record_view_permission, RecordType.DEAL),
        required=False,
        allow_null=True,
    )


class ActivityUpdateInput(ActivityInput):
    """The kind is fixed once logged."""

    kind = None  # type: ignore[assignment]  # DRF drops a declared field set to None


# --- lead conversion ---


class LeadConvertInput(serializers.Serializer):
    contact = ScopedRecordField(
        model=Contact,
        permission=CONTACT_UPDATE,
        required=False,
        allow_null=True,
        help_text="Use this contact (one you may edit). Default: the contact with the lead's e-mail if you may edit "
        "it (if you may not: 400 `out_of_scope`), else a new one.",
    )
    company = ScopedRecordField(
        model=Company,
        permission=COMPANY_VIEW,
        required=False,
        allow_null=True,
        help_text="Use this company (one you may see). Default: the contact's, else one matching the e-mail's domain "
        "or the lead's company name, among the companies you may see; else a new one named after the lead's company "
        "name.",
    )
    create_deal = serializers.BooleanField(default=False, help_text="Also open a deal in the default pipeline.")


class ConvertedRefOutput(serializers.Serializer):
    """A record the conversion used: its reference (``{id, name}``) and whether the conversion made it."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    created = serializers.BooleanField(help_text="False when an existing record was matched.")


class LeadConversionOutput(serializers.Serializer):
    lead = LeadOutput()
    contact = ConvertedRefOutput()
    company = ConvertedRefOutput(allow_null=True)
    deal = ConvertedRefOutput(allow_null=True)


# --- bulk ---


class BulkIdsInput(serializers.Serializer):
    ids = serializers.ListField(child=serializers.IntegerField(min_value=1), min_length=1, max_length=500)


class BulkUpdateInput(BulkIdsInput):
    owner = MemberField(required=False, allow_null=True, source="owner_id")
    tags = serializers.ListField(
        child=serializers.CharField(max_length=50),
        required=False,
        max_length=50,
        help_text=f"Replace the tags. {TAG_NAMES_HELP}",
    )
    add_tags = serializers.ListField(
        child=serializers.CharField(max_length=50), required=False, max_length=50, help_text=TAG_NAMES_HELP
    )
    remove_tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False, max_length=50)

    status_choices: list = []

    def get_fields(self):
        fields = super().get_fields()
        if self.status_choices:
            fields["status"] = serializers.ChoiceField(choices=self.status_choices, required=False)
        return fields

    def validate(self, attrs):
        if not set(attrs) - {"ids"}:
            raise serializers.ValidationError({"non_field_errors": "Say what to change."})
        if "owner_id" in attrs and attrs["owner_id"] is not None:
            attrs["owner_id"] = attrs["owner_id"].pk
        return attrs

    def service_arguments(self) -> dict:
        data = dict(self.validated_data)
        fields = {name: data.pop(name) for name in ("owner_id", "status") if name in data}
        return {"ids": data.pop("ids"), "fields": fields, **data}


class LeadBulkUpdateInput(BulkUpdateInput):
    status_choices = [LeadStatus.NEW, LeadStatus.CONTACTED]


class ContactBulkUpdateInput(BulkUpdateInput):
    status_choices = ContactStatus.choices


class BulkResultOutput(serializers.Serializer):
    ids = serializers.ListField(child=serializers.IntegerField(), help_text="The records changed or deleted.")
    count = serializers.IntegerField()


# --- statistics ---


class OwnerCountOutput(serializers.Serializer):
    owner = PersonReference(allow_null=True, help_text="Null for unassigned records.")
    count = serializers.IntegerField()


def _counts(what: str, *, blank: str | None = None) -> serializers.DictField:
    """A statistics object: ``{value: count}``; ``blank`` says what ``NONE_KEY`` counts."""
    text = f"Records per {what}."
    if blank:
        text += f' `"{NONE_KEY}"` counts {blank} (always present).'
    return serializers.DictField(child=serializers.IntegerField(), help_text=text)


class LeadStatsOutput(serializers.Serializer):
    total = serializers.IntegerField()
    by_status = _counts("status, every status included")
    by_source = _counts("source, every source included", blank="leads without a source")
    by_owner = OwnerCountOutput(many=True)
    conversion_rate = serializers.FloatField(allow_null=True, help_text="converted / total")


class ContactStatsOutput(serializers.Serializer):
    total = serializers.IntegerField()
    by_status = _counts("status, every status included")
    by_source = _counts("source, every source included", blank="contacts without a source")
    by_lifecycle_stage = _counts("lifecycle stage, every stage included")
    by_owner = OwnerCountOutput(many=True)


class CompanyStatsOutput(serializers.Serializer):
    total = serializers.IntegerField()
    by_industry = _counts("industry found, alphabetically", blank="companies without an industry")
    by_size = _counts("size, every size included", blank="companies without a size")
    by_owner = OwnerCountOutput(many=True)


# --- timeline ---


class RecordTimelineItemOutput(serializers.Serializer):
    type = serializers.ChoiceField(choices=["activity", "event", *timeline.TYPES])
    at = serializers.DateTimeField()
    data = serializers.JSONField(  # type: ignore[assignment]  # a field named like Field's attribute, as DRF allows
        help_text="An activity, a domain event (`event`, `actor`, `payload`), or a campaign message sent to the "
        "record (`message`: campaign, channel, status)."
    )


# --- tags and custom fields ---


class TagOutput(ModelOutput):
    class Meta:
        model = Tag
        fields = ["id", "name", "color", "created_at"]


class TagInput(serializers.Serializer):
    name = serializers.CharField(max_length=50)
    color = serializers.RegexField(r"^#[0-9A-Fa-f]{6}$", required=False, allow_blank=True, help_text="e.g. #3366ff")


class CustomFieldOutput(ModelOutput):
    class Meta:
        model = CustomField
        fields = ["id", "record_type", "key", "label", "type", "required", "choices", "position", "created_at"]


class CustomFieldInput(serializers.Serializer):
    record_type = serializers.ChoiceField(choices=RecordType.choices)
    key = serializers.RegexField(
        r"^[a-z][a-z0-9_]{0,63}$", help_text="Lower-case letters, digits and _, starting with a letter."
    )
    label = serializers.CharField(max_length=100)  # type: ignore[assignment]  # a field named like Field's attribute, as DRF allows
    type = serializers.ChoiceField(choices=CustomFieldType.choices)
    required = serializers.BooleanField(default=False)  # type: ignore[assignment]  # a field named like Field's attribute, as DRF allows
    choices = serializers.ListField(child=serializers.CharField(max_length=100), required=False, max_length=200)
    position = serializers.IntegerField(min_value=0, default=0)


class CustomFieldUpdateInput(serializers.Serializer):
    """The record type, key and type are fixed once defined."""

    label = serializers.CharField(max_length=100, required=False)  # type: ignore[assignment]  # a field named like Field's attribute, as DRF allows
    required = serializers.BooleanField(required=False)  # type: ignore[assignment]  # a field named like Field's attribute, as DRF allows
    choices = serializers.ListField(child=serializers.CharField(max_length=100), required=False, max_length=200)
    position = serializers.IntegerField(min_value=0, required=False)
