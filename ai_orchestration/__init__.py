"""CRM AI Orchestration Service: lead scoring, durable workflows and customer insights over gRPC.

Layout: ``api`` (thin servicers and the interceptor), ``security``, ``storage``, ``server``,
domain cores (``scoring``, ...) that never import grpc. See README.md.
"""

__version__ = "0.1.0"
