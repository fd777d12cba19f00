"""Pyramid: the app knows nothing of sign-in; ``pyramid.ini`` puts msal_wsgi in front of it."""

from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.router import Router


def todos(request: Request) -> dict:
    user = request.environ["msal_wsgi.user"]
    token = request.environ["msal_wsgi.token"]
    return {"user": user.username, "scopes": list(token.scopes), "expires_on": token.expires_on}


def main(global_config: dict, **settings: str) -> Router:
    with Configurator(settings=settings) as config:
        config.add_route("todos", "/todos")
        config.add_view(todos, route_name="todos", renderer="json")
        return config.make_wsgi_app()
