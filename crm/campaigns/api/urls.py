from rest_framework.routers import SimpleRouter

from .views import (
    CampaignViewSet,
    ConsentStateViewSet,
    ConsentViewSet,
    DeliveryViewSet,
    SegmentViewSet,
    SuppressionViewSet,
)

router = SimpleRouter()
router.register("segments", SegmentViewSet, basename="segment")
router.register("campaigns", CampaignViewSet, basename="campaign")
router.register("campaign-deliveries", DeliveryViewSet, basename="campaign-delivery")
router.register("consents", ConsentViewSet, basename="consent")
router.register("consent-states", ConsentStateViewSet, basename="consent-state")
router.register("suppressions", SuppressionViewSet, basename="suppression")

urlpatterns = router.urls
