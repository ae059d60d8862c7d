from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter(trailing_slash=True)
router.register("leads", views.LeadViewSet, basename="lead")

urlpatterns = router.urls
