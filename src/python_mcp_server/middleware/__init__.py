"""Middleware we own: domain errors, timing and logging, links for older clients, HTTP bearer auth,
body limit, header whitespace."""

from python_mcp_server.middleware.auth import BearerAuthMiddleware
from python_mcp_server.middleware.body_limit import BodyLimitMiddleware
from python_mcp_server.middleware.content import LinksAsTextMiddleware
from python_mcp_server.middleware.errors import DomainErrorMiddleware
from python_mcp_server.middleware.headers import HeaderWhitespaceMiddleware
from python_mcp_server.middleware.timing import TimingMiddleware

__all__ = [
    "BearerAuthMiddleware",
    "BodyLimitMiddleware",
    "DomainErrorMiddleware",
    "HeaderWhitespaceMiddleware",
    "LinksAsTextMiddleware",
    "TimingMiddleware",
]
