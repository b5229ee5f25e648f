"""Lead scoring domain core: features, synthetic data, training and explanation.

Works on plain dataclasses and numpy arrays and never imports grpc or generated protobuf code;
the gRPC servicer adapts ``crm.ai.v1`` messages onto :class:`LeadFeatures`.
"""

from ai_orchestration.scoring._features import (
    CATEGORICAL_FEATURES,
    FEATURES,
    INDUSTRIES,
    PERSONAL_EMAIL_DOMAINS,
    SENIORITY_LEVELS,
    SOURCES,
    LeadFeatures,
    LeadSource,
    Seniority,
    is_personal_email,
    normalise_industry,
    to_matrix,
)
from ai_orchestration.scoring._model import (
    ModelFormatError,
    ModelMetrics,
    TrainedModel,
    train_model,
)
from ai_orchestration.scoring._synthetic import DRIVERS, TOP_DRIVERS, SyntheticLeads, generate_leads

__all__ = [
    "CATEGORICAL_FEATURES",
    "DRIVERS",
    "FEATURES",
    "INDUSTRIES",
    "PERSONAL_EMAIL_DOMAINS",
    "SENIORITY_LEVELS",
    "SOURCES",
    "TOP_DRIVERS",
    "LeadFeatures",
    "LeadSource",
    "ModelFormatError",
    "ModelMetrics",
    "Seniority",
    "SyntheticLeads",
    "TrainedModel",
    "generate_leads",
    "is_personal_email",
    "normalise_industry",
    "to_matrix",
    "train_model",
]
