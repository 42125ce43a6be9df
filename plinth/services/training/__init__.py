"""Retraining: triggers, point-in-time training sets, the trainer's process, the gate, and
shipping a passed candidate as a canary (docs/retraining.md).

Background work: nothing here is imported by the request path. ``jobs.Retraining`` is the
service the Runtime builds; ``dataset`` builds a job's rows, ``runner`` runs the trainer in
a child process (``child``, capped by ``limit``).
"""
