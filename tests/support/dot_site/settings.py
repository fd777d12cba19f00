"""Django settings of the test provider; everything variable comes from ``DOT_*`` environment variables."""

from __future__ import annotations

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent

SECRET_KEY = os.environ.get("DOT_SECRET_KEY", "test-only-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "oauth2_provider",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "dot_site.urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [HERE / "templates"],
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
}]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ.get("DOT_DB", HERE / "db.sqlite3")}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True
LOGIN_URL = "/accounts/login/"
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True

ISSUER = os.environ.get("DOT_ISSUER", "https://127.0.0.1/o")
#: The audience of the JWT access tokens (the to-do API's identifier).
API_AUDIENCE = os.environ.get("DOT_API_AUDIENCE", "todo-api")

OAUTH2_PROVIDER = {
    "OIDC_ENABLED": True,
    "OIDC_ISS_ENDPOINT": ISSUER,
    "OIDC_RSA_PRIVATE_KEY": Path(os.environ["DOT_RSA_KEY"]).read_text() if "DOT_RSA_KEY" in os.environ else "",
    "OIDC_RP_INITIATED_LOGOUT_ENABLED": True,
    "PKCE_REQUIRED": True,
    "ROTATE_REFRESH_TOKEN": True,
    "ACCESS_TOKEN_EXPIRE_SECONDS": int(os.environ.get("DOT_AT_TTL", "3600")),
    "ALLOWED_REDIRECT_URI_SCHEMES": ["http", "https"],
    # Scopes a client may ask for; msal adds openid, profile and offline_access to every request.
    "SCOPES": {
        "openid": "Sign you in",
        "profile": "Know your name",
        "offline_access": "Keep you signed in",
        "todo.read": "Read your to-do list",
        "todo.write": "Change your to-do list",
    },
    "DEFAULT_SCOPES": ["openid"],
    "OAUTH2_VALIDATOR_CLASS": "dot_site.tokens.Validator",
    "ACCESS_TOKEN_GENERATOR": "dot_site.tokens.signed_access_token",
    "REFRESH_TOKEN_GENERATOR": "oauthlib.oauth2.rfc6749.tokens.random_token_generator",
}
