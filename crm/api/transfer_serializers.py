from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api.outputs import ModelOutput
from config.api.references import PersonReference
from crm.choices import DedupePolicy, ImportStatus
from crm.imports import IMPORTABLE
from crm.models import ImportJob


@extend_schema_field(
    {
        "type": "string",
        "description": 'JSON object of column header to field, e.g. {"E-mail": "email", "Tier": '
        '"custom_fields.tier"}; a header mapped to "" or null is ignored. Without a mapping, columns named '
        "like a field are imported into it.",
        "example": '{"E-mail": "email", "First name": "first_name"}',
    }
)
class MappingField(serializers.JSONField):
    def __init__(self, **kwargs):
        super().__init__(binary=True, **kwargs)

    def to_internal_value(self, data):
        value: object = data if isinstance(data, dict) else super().to_internal_value(data)  # dict: a JSON body
        if not isinstance(value, dict) or not all(
            isinstance(key, str) and (target is None or isinstance(target, str)) for key, target in value.items()
        ):
            raise serializers.ValidationError("Give an object of column header to field name.", code="invalid")
        return value


class ImportCreateInput(serializers.Serializer):
    file = serializers.FileField(
        allow_empty_file=True, help_text="A CSV (UTF-8) or XLSX file; the first row names the columns."
    )
    record_type = serializers.ChoiceField(choices=list(IMPORTABLE))
    mapping = MappingField(required=False)
    dedupe_policy = serializers.ChoiceField(choices=DedupePolicy.choices, default=DedupePolicy.SKIP)


class ImportJobOutput(ModelOutput):
    created_by = PersonReference(allow_null=True)
    progress = serializers.SerializerMethodField(help_text="Percentage of rows processed.")
    errors_url = serializers.SerializerMethodField(help_text="The per-row errors as CSV, once the import finished.")

    class Meta:
        model = ImportJob
        fields = [
            "id",
            "record_type",
            "status",
            "original_filename",
            "file_format",
            "mapping",
            "dedupe_policy",
            "total_rows",
            "processed_rows",
            "progress",
            "created_count",
            "updated_count",
            "skipped_count",
            "error_count",
            "errors_url",
            "failure_reason",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]

    @extend_schema_field(OpenApiTypes.FLOAT)
    def get_progress(self, job: ImportJob) -> float:
        if not job.total_rows:
            return 100.0 if job.status == ImportStatus.COMPLETED else 0.0
        return round(100.0 * min(job.processed_rows, job.total_rows) / job.total_rows, 1)

    @extend_schema_field(OpenApiTypes.URI)
    def get_errors_url(self, job: ImportJob) -> str | None:
        if job.status not in (ImportStatus.COMPLETED, ImportStatus.FAILED):
            return None
        path = reverse("import-errors", kwargs={"pk": str(job.pk)})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path
