from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter(trailing_slash=True)
router.register("roles", views.RoleViewSet, basename="role")
router.register("members", views.MemberViewSet, basename="member")
router.register("invitations", views.InvitationViewSet, basename="invitation")
router.register("audit-log", views.AuditLogViewSet, basename="audit-log")

urlpatterns = [
    path("permissions/", views.PermissionCatalogueView.as_view(), name="permission-list"),
    *router.urls,
]
