from rest_framework.routers import SimpleRouter

from . import mcp, views

router = SimpleRouter(trailing_slash=True)
router.register("assistant/conversations", views.ConversationViewSet, basename="assistant-conversation")
router.register("assistant", views.AssistantViewSet, basename="assistant")
router.register("", mcp.McpViewSet, basename="mcp")

urlpatterns = router.urls
