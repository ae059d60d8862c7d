"""Pages and provider callbacks outside the API (views.py); the API is api/urls.py."""

from django.urls import path

from . import views

urlpatterns = [
    path("unsubscribe/<str:token>/", views.unsubscribe, name="campaign-unsubscribe"),
    path("hooks/<str:token>/email/<slug:provider>/tracking/", views.email_tracking, name="campaign-email-tracking"),
    path("hooks/<str:token>/twilio/status/", views.twilio_status, name="campaign-twilio-status"),
    path("hooks/<str:token>/twilio/inbound/", views.twilio_inbound, name="campaign-twilio-inbound"),
]
