"""Test doubles shared by the engine tests."""

from __future__ import annotations

from ai_orchestration.workflows import WorkflowDefinition


def workflow_definition(name: str, description: str) -> WorkflowDefinition:
    """A one-version, non-interruptible workflow with the content workflow's message types."""
    return WorkflowDefinition(
        name=name,
        description=description,
        version="1",
        input_type="crm.ai.v1.ContentGenerationInput",
        output_type="crm.ai.v1.ContentGenerationOutput",
        interruptible=False,
    )
