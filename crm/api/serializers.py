from rest_framework import serializers

from crm.choices import LeadSource, LeadStatus, Priority
from crm.models import Lead

from .fields import MemberField


class OwnerOutput(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    name = serializers.CharField(source="full_name")


class TagNamesField(serializers.ListField):
    child = serializers.CharField(max_length=50)

    def to_representation(self, data):
        return sorted(tag.name for tag in data.all())


class RecordOutput(serializers.ModelSerializer):
    owner = OwnerOutput(allow_null=True)
    tags = TagNamesField()


class LeadOutput(RecordOutput):
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
            "created_at",
            "updated_at",
        ]


class LeadInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    email = serializers.EmailField(max_length=254, required=False, allow_blank=True)
    phone = serializers.CharField(max_length=40, required=False, allow_blank=True)
    company_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    source = serializers.ChoiceField(choices=LeadSource.choices, required=False, allow_blank=True)
    status = serializers.ChoiceField(choices=[LeadStatus.NEW, LeadStatus.CONTACTED], required=False)
    score = serializers.IntegerField(min_value=0, max_value=100, required=False)
    priority = serializers.ChoiceField(choices=Priority.choices, required=False)
    estimated_value = serializers.DecimalField(
        max_digits=14, decimal_places=2, min_value=0, required=False, allow_null=True
    )
    owner = MemberField(required=False, allow_null=True, source="owner_id")
    tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False, max_length=50)
    custom_fields = serializers.DictField(required=False, source="custom_fields_values")

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        if "owner_id" in values and values["owner_id"] is not None:
            values["owner_id"] = values["owner_id"].pk
        return values


class LeadDisqualifyInput(serializers.Serializer):
    reason = serializers.CharField(max_length=500)
