from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter(trailing_slash=True)
router.register("assistant/conversations", views.ConversationViewSet, basename="assistant-conversation")
router.register("assistant", views.AssistantViewSet, basename="assistant")

urlpatterns = router.urls
