"""Services: small classes over the store and the core, each doing one job, in rooms.

- ``serving/`` — the request path: routing, batching, scoring, the review gate, the log.
  It never imports background work; the Runtime hands it observers and sinks instead.
- ``registry/`` — registering versions, loading them, editing contracts, lineage.
- ``rollout/`` — deployment revisions and automated canary analysis.
- ``monitoring/`` — interval profiles, roll-ups, reports and alert rules.
- ``feedback/`` — labels and live performance; ``review/`` — the human review queue.
- ``auth`` (tokens and roles), ``batch_scoring`` and ``replay`` (offline scoring),
  ``datasets`` (tables on disk), ``telemetry`` (Prometheus metrics), ``views`` (JSON views).
"""
