from django.urls import path
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from relay_django import views

urlpatterns = [
    path("relay/authorize", views.authorize),
    path("relay/webhook", views.webhook),
    path("api/token/", TokenObtainPairView.as_view()),
    path("api/token/refresh/", TokenRefreshView.as_view()),
]
