"""PasteDeploy entry points: ``use = egg:msal_wsgi`` in a ``[filter:...]`` section."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Callable

from ._wsgi import WSGIApplication
from .middleware import MsalMiddleware
from .settings import Settings


def filter_app_factory(app: WSGIApplication, global_conf: Mapping[str, Any], **local_conf: str) -> MsalMiddleware:
    """``paste.filter_app_factory``: the section's keys are settings; ``MSAL_*`` variables override them."""
    return MsalMiddleware(app, Settings.from_mapping(local_conf, env=os.environ))


def filter_factory(global_conf: Mapping[str, Any], **local_conf: str) -> Callable[[WSGIApplication], MsalMiddleware]:
    """``paste.filter_factory``: as :func:`filter_app_factory`, settings validated before the app exists."""
    settings = Settings.from_mapping(local_conf, env=os.environ)
    return lambda app: MsalMiddleware(app, settings)
