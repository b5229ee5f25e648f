"""The lead a tool takes: the ``crm.ai.v1.Lead`` fields, as an input schema for MCP clients.

The limits here describe the schema to the model that fills it in; the protos' rules are
checked again on the built message, so both APIs refuse exactly the same leads.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from crm.ai.v1 import scoring_pb2
from pydantic import BaseModel, ConfigDict, Field

from ai_orchestration.mcp_server._messages import parsed

SeniorityName = Literal[
    "SENIORITY_INDIVIDUAL_CONTRIBUTOR",
    "SENIORITY_MANAGER",
    "SENIORITY_DIRECTOR",
    "SENIORITY_VP",
    "SENIORITY_C_LEVEL",
]
SourceName = Literal[
    "LEAD_SOURCE_WEB",
    "LEAD_SOURCE_PAID",
    "LEAD_SOURCE_OUTBOUND",
    "LEAD_SOURCE_EVENT",
    "LEAD_SOURCE_REFERRAL",
]


class LeadArgs(BaseModel):
    """A lead as the CRM knows it; leave out what it does not know."""

    model_config = ConfigDict(extra="forbid")

    lead_id: Annotated[
        str,
        Field(
            min_length=1,
            max_length=128,
            pattern=r"^[A-Za-z0-9._:-]+$",
            description="The CRM's id of the lead; scores and outcomes are keyed by it.",
        ),
    ]
    email: Annotated[
        str | None, Field(max_length=320, description="Contact e-mail (its domain counts).")
    ] = None
    company_name: Annotated[str | None, Field(max_length=256, description="Company name.")] = None
    industry: Annotated[
        str | None, Field(max_length=64, description="Industry, e.g. software, healthcare.")
    ] = None
    employee_count: Annotated[
        int | None, Field(ge=1, le=10_000_000, description="Employees of the company.")
    ] = None
    seniority: Annotated[SeniorityName | None, Field(description="Contact's seniority.")] = None
    source: Annotated[SourceName | None, Field(description="Where the lead came from.")] = None
    page_visits: Annotated[
        int | None, Field(ge=0, le=1_000_000, description="Website visits, last 30 days.")
    ] = None
    pricing_page_visits: Annotated[
        int | None, Field(ge=0, le=1_000_000, description="Pricing page visits, last 30 days.")
    ] = None
    demo_requested: Annotated[bool | None, Field(description="Whether a demo was asked.")] = None
    days_since_last_touch: Annotated[
        int | None, Field(ge=0, le=36_500, description="Days since the last touch.")
    ] = None
    country: Annotated[
        str | None, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2, e.g. DE.")
    ] = None
    job_title: Annotated[str | None, Field(max_length=256, description="Job title.")] = None
    estimated_deal_value: Annotated[
        float | None, Field(ge=0, description="Estimated deal value, tenant's currency.")
    ] = None
    create_time: Annotated[
        datetime | None, Field(description="When the lead was created (RFC 3339).")
    ] = None

    def message(self, *, field: str = "lead") -> scoring_pb2.Lead:
        """The ``Lead`` message (validated with the request that carries it)."""
        document: dict[str, Any] = self.model_dump(mode="json", exclude_none=True)
        return parsed(document, scoring_pb2.Lead(), field=field)
