"""Human review: per-model gate policies, storing items with context, and the queue."""
