"""Rollout: deployment revisions (champion, canary, shadows, fallback) and canary analysis."""
