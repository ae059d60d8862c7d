from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter(trailing_slash=True)
router.register("webhooks", views.WebhookEndpointViewSet, basename="webhook")
router.register(r"webhooks/(?P<endpoint_pk>\d+)/deliveries", views.WebhookDeliveryViewSet, basename="webhook-delivery")
router.register("events", views.EventViewSet, basename="event")

urlpatterns = router.urls
