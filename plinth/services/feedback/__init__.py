"""Ground truth: labels from callers and reviewers, and the live performance they measure."""
