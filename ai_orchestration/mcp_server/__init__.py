"""The service as an MCP server: its CRM tools over Streamable HTTP on their own port.

Each tool calls the same core as the gRPC servicer of the RPC it stands for, with that RPC's
role, request rules and tenant scoping; the endpoint verifies the same bearer tokens.
"""

from ai_orchestration.mcp_server._build import build_endpoint
from ai_orchestration.mcp_server._crm import CrmTools
from ai_orchestration.mcp_server._customers import AlertBus, CustomerTools
from ai_orchestration.mcp_server._endpoint import PATH, McpEndpoint

__all__ = ["PATH", "AlertBus", "CrmTools", "CustomerTools", "McpEndpoint", "build_endpoint"]
