"""Times generating, featurising and training on 50k synthetic leads; prints seconds and AUC."""

from __future__ import annotations

import time

from ai_orchestration.scoring import generate_leads, to_matrix, train_model

ROWS = 50_000
EXPLAINED_ROWS = 5_000


def main() -> None:
    """Runs the benchmark once and prints the figures."""
    start = time.perf_counter()
    data = generate_leads(ROWS, seed=0)
    generated = time.perf_counter()
    x = to_matrix(data.leads)
    featurised = time.perf_counter()
    model = train_model(x, data.converted, data.created_days, seed=0)
    trained = time.perf_counter()
    model.predict(x[:EXPLAINED_ROWS])
    scored = time.perf_counter()
    print(f"rows                 {ROWS}")
    print(f"generate_leads       {generated - start:.3f} s")
    print(f"to_matrix            {featurised - generated:.3f} s")
    print(f"train_model          {trained - featurised:.3f} s")
    per_row_ms = (scored - trained) / EXPLAINED_ROWS * 1000
    print(f"predict+explain      {per_row_ms:.3f} ms/row ({EXPLAINED_ROWS} rows)")
    print(f"train / generate     {(trained - featurised) / (generated - start):.2f}x")
    print(f"held-out AUC         {model.metrics.auc:.4f}")
    metrics = model.metrics
    print(f"Brier (calibrated)   {metrics.brier:.4f} vs base rate {metrics.baseline_brier:.4f}")
    print(f"best iteration       {model.metrics.best_iteration}")


if __name__ == "__main__":
    main()
