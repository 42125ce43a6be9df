"""Services: small classes over the store and the core that do one job each.

The registry records versions, the predictor serves them, the log writer makes every
prediction durable with group commit, replay re-runs a logged prediction exactly.
Edges (HTTP, CLI) call these and only format the results.
"""
