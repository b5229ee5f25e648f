"""``ai-orchestration``: run the server (``serve``, ``migrate``) or operate one over gRPC
(``health``, ``score``, ``runs``, ``ask``, ``alerts``, ``usage``).

Client commands import only the published client package; the server is imported by ``serve``
and ``migrate`` when they run.
"""

from ai_orchestration.cli._app import app, main

__all__ = ["app", "main"]
