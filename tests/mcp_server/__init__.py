"""The service as an MCP server, driven by the official SDK's client."""
