"""Lead scoring domain core: features, synthetic data, training and explanation.

Works on plain dataclasses, numpy arrays and the storage repositories, and never imports grpc
or generated protobuf code; the gRPC servicer adapts ``crm.ai.v1`` messages onto
:class:`LeadFeatures` and calls :class:`ScoringEngine`.
"""

from ai_orchestration.scoring._engine import ArmStats, ModelView, ScoringEngine
from ai_orchestration.scoring._explain import (
    CHALLENGER_ARM,
    CONTROL_ARM,
    MAX_FACTORS,
    Explanation,
    Factor,
    GradeCutoffs,
    confidence_of,
    experiment_arm,
    explain,
    input_digest,
    to_score,
)
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
    features_from_json,
    features_to_json,
    is_personal_email,
    normalise_industry,
    to_matrix,
)
from ai_orchestration.scoring._model import (
    ModelFormatError,
    ModelMetrics,
    TimeSplit,
    TrainedModel,
    TrainingStep,
    auc_of,
    time_split,
    train_model,
)
from ai_orchestration.scoring._registry import (
    BOOTSTRAP_SEED,
    Deployment,
    ModelRegistry,
    ServingModel,
    bootstrap_version,
)
from ai_orchestration.scoring._scorer import LeadInput, LeadScorer, compute_scores
from ai_orchestration.scoring._settings import (
    ScoringSettings,
    ScoringSettingsStore,
    checked_settings,
)
from ai_orchestration.scoring._synthetic import DRIVERS, TOP_DRIVERS, SyntheticLeads, generate_leads
from ai_orchestration.scoring._training import (
    MIN_OUTCOMES,
    MIN_TENANT_CONVERSIONS,
    MIN_TENANT_LEADS,
    Loading,
    ModelTrainer,
    TrainingResult,
)

__all__ = [
    "BOOTSTRAP_SEED",
    "CATEGORICAL_FEATURES",
    "CHALLENGER_ARM",
    "CONTROL_ARM",
    "DRIVERS",
    "FEATURES",
    "INDUSTRIES",
    "MAX_FACTORS",
    "MIN_OUTCOMES",
    "MIN_TENANT_CONVERSIONS",
    "MIN_TENANT_LEADS",
    "PERSONAL_EMAIL_DOMAINS",
    "SENIORITY_LEVELS",
    "SOURCES",
    "TOP_DRIVERS",
    "ArmStats",
    "Deployment",
    "Explanation",
    "Factor",
    "GradeCutoffs",
    "LeadFeatures",
    "LeadInput",
    "LeadScorer",
    "LeadSource",
    "Loading",
    "ModelFormatError",
    "ModelMetrics",
    "ModelRegistry",
    "ModelTrainer",
    "ModelView",
    "ScoringEngine",
    "ScoringSettings",
    "ScoringSettingsStore",
    "Seniority",
    "ServingModel",
    "SyntheticLeads",
    "TimeSplit",
    "TrainedModel",
    "TrainingResult",
    "TrainingStep",
    "auc_of",
    "bootstrap_version",
    "checked_settings",
    "compute_scores",
    "confidence_of",
    "experiment_arm",
    "explain",
    "features_from_json",
    "features_to_json",
    "generate_leads",
    "input_digest",
    "is_personal_email",
    "normalise_industry",
    "time_split",
    "to_matrix",
    "to_score",
    "train_model",
]
