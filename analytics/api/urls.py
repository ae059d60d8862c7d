from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter(trailing_slash=True)
router.register("analytics", views.ReportViewSet, basename="analytics-report")
router.register("analytics", views.InsightViewSet, basename="analytics-insight")

urlpatterns = router.urls
