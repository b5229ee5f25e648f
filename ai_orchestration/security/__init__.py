"""Authentication (JWT bearer tokens), tenancy and the role table."""

from ai_orchestration.security._authenticator import Authenticator
from ai_orchestration.security._principal import Principal, current_principal, set_principal
from ai_orchestration.security._roles import REQUIRED_ROLE, effective_roles, is_public
from ai_orchestration.security._tokens import DEV_TENANT, TokenVerifier, dev_principal

__all__ = [
    "DEV_TENANT",
    "REQUIRED_ROLE",
    "Authenticator",
    "Principal",
    "TokenVerifier",
    "current_principal",
    "dev_principal",
    "effective_roles",
    "is_public",
    "set_principal",
]
