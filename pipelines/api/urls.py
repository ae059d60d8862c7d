from rest_framework.routers import SimpleRouter

from . import export_views, views

router = SimpleRouter(trailing_slash=True)
router.register("pipelines", views.PipelineViewSet, basename="pipeline")
router.register("stages", views.StageViewSet, basename="stage")
router.register("deals", views.DealViewSet, basename="deal")
router.register("exports/deals", export_views.DealExportViewSet, basename="deal-export")

urlpatterns = router.urls
