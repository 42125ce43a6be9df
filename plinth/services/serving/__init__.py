"""The request path: a request's records go router -> batcher -> scoring -> log -> reply.

Nothing here imports background work (monitoring, alerts, canary analysis, review queue,
retraining); what the path reports to them goes through observers and sinks the Runtime
wires in, so the path stays short and can never be slowed by them.
"""
