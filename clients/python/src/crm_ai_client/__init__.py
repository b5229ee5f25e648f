"""Client helper for the CRM AI Orchestration Service.

The generated stubs live in ``crm.ai.v1``; this package adds a channel factory with bearer-token
credentials and a retry policy, and a typed error that decodes ``google.rpc.Status`` details.
"""

from crm_ai_client._channel import DEFAULT_SERVICE_CONFIG, aio_channel, channel
from crm_ai_client._errors import FieldViolation, ServiceError

__all__ = [
    "DEFAULT_SERVICE_CONFIG",
    "FieldViolation",
    "ServiceError",
    "aio_channel",
    "channel",
]
