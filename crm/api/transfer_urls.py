from rest_framework.routers import SimpleRouter

from . import transfer_views as views

router = SimpleRouter(trailing_slash=True)
router.register("imports", views.ImportJobViewSet, basename="import")
router.register("exports/contacts", views.ContactExportViewSet, basename="contact-export")
router.register("exports/companies", views.CompanyExportViewSet, basename="company-export")
router.register("exports/leads", views.LeadExportViewSet, basename="lead-export")

urlpatterns = router.urls
