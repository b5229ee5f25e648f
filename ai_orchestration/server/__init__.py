"""The serving process."""

from ai_orchestration.server._server import Server, build_authenticator, llm_options, serve

__all__ = ["Server", "build_authenticator", "llm_options", "serve"]
