"""The project's URLs and one view that fails, for the error-report test."""

from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from config.urls import urlpatterns as project_urlpatterns


class Boom(Exception):
    pass


class FailingView(APIView):
    permission_classes = [AllowAny]

    def post(self, request):
        raise Boom("the failing view failed")


urlpatterns = [*project_urlpatterns, path("boom/", FailingView.as_view())]

handler500 = "config.api.errors.handler500"
