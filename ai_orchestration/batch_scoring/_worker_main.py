"""A scoring worker process: ``python -m ai_orchestration.batch_scoring._worker_main``.

Apart from :mod:`._child` so that the job and outcome classes pickle under their module's name,
not ``__main__``.
"""

from ai_orchestration.batch_scoring._child import serve

if __name__ == "__main__":
    serve()
