from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter(trailing_slash=True)
router.register("pipelines", views.PipelineViewSet, basename="pipeline")
router.register("stages", views.StageViewSet, basename="stage")
router.register("deals", views.DealViewSet, basename="deal")

urlpatterns = router.urls
