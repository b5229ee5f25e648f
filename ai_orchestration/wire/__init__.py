"""The wire: conversions between ``crm.ai.v1`` messages and the domain's types, and times.

One module per service, each importing the protobuf messages and its domain, never grpc:

- :mod:`.scoring`: leads, scores, models, settings, training events;
- :mod:`.workflows`: runs, events, inputs and outputs (proto3 JSON documents), interrupts,
  answers, settings;
- :mod:`.insights`: interactions, insights, alerts, answers, settings, erasures;
- :mod:`.times`: ``Timestamp`` and ``Duration`` to and from aware datetimes.

The servicers (:mod:`ai_orchestration.api`) use them, and so do BatchScoreLeads' worker
processes (:mod:`ai_orchestration.batch_scoring`), which must not import the workflow or
insight stacks. That is why this package re-exports nothing: a worker importing
``ai_orchestration.wire.scoring`` loads that module alone.
"""
