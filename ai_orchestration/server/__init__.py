"""The serving process."""

from ai_orchestration.server._server import Server, build_authenticator, serve

__all__ = ["Server", "build_authenticator", "serve"]
