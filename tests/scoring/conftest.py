"""One synthetic data set and one trained model shared by the scoring tests (training is slow)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import pytest

from ai_orchestration.scoring import SyntheticLeads, TrainedModel, generate_leads, to_matrix
from ai_orchestration.scoring import train_model as train


@dataclass(frozen=True)
class Trained:
    """A model with the data it was trained on."""

    data: SyntheticLeads
    x: npt.NDArray[np.float64]
    model: TrainedModel


@pytest.fixture(scope="session")
def synthetic() -> SyntheticLeads:
    """50k synthetic leads."""
    return generate_leads(50_000, seed=7)


@pytest.fixture(scope="session")
def trained(synthetic: SyntheticLeads) -> Trained:
    """A model trained on :func:`synthetic`."""
    x = to_matrix(synthetic.leads)
    model = train(
        x,
        synthetic.converted,
        synthetic.created_days,
        seed=1,
        trained_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    return Trained(data=synthetic, x=x, model=model)
