"""Entry point of a scoring worker process: ``python -m ai_orchestration.scoring_rpc._worker_main``.

Apart from :mod:`._child` so that the job and outcome classes pickle under their module's name,
not ``__main__``.
"""

from ai_orchestration.scoring_rpc._child import serve

if __name__ == "__main__":
    serve()
