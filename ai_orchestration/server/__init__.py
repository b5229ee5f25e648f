"""The serving process: builds every part (scoring, the LLM stack, the run engine and the
graphs' runner, the insight core), joins them, registers the servicers and serves."""

from ai_orchestration.server._server import Server, build_authenticator, llm_options, serve

__all__ = ["Server", "build_authenticator", "llm_options", "serve"]
