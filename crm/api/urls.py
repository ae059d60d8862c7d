from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter(trailing_slash=True)
router.register("leads", views.LeadViewSet, basename="lead")
router.register("contacts", views.ContactViewSet, basename="contact")
router.register("companies", views.CompanyViewSet, basename="company")
router.register("activities", views.ActivityViewSet, basename="activity")
router.register("tags", views.TagViewSet, basename="tag")
router.register("custom-fields", views.CustomFieldViewSet, basename="custom-field")

urlpatterns = router.urls
