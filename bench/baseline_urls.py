"""The baseline of ``bench/api.py``: a bare DRF ``ListAPIView`` over the leads table, with a plain
``ModelSerializer`` of the product's fields, DRF's page-number pagination (``COUNT(*)`` included), the status
filter and the ordering; no tenancy, authentication, permissions or rate limits. Served with
``bench/baseline_settings.py``."""

from django.urls import path
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import filters, generics, pagination, serializers

from crm.api.serializers import LeadOutput
from crm.models import Lead


class LeadBaselineOutput(serializers.ModelSerializer):
    class Meta:
        model = Lead
        fields = LeadOutput.Meta.fields  # owner and tags as ids


class Pagination(pagination.PageNumberPagination):
    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 100


class LeadBaselineList(generics.ListAPIView):
    queryset = Lead.objects.prefetch_related("tags")
    serializer_class = LeadBaselineOutput
    authentication_classes = []
    permission_classes = []
    throttle_classes = []
    pagination_class = Pagination
    filter_backends = [DjangoFilterBackend, filters.OrderingFilter]
    filterset_fields = ["status"]
    ordering_fields = ["created_at"]
    ordering = ["-created_at", "-pk"]


urlpatterns = [path("api/v1/leads/", LeadBaselineList.as_view())]
