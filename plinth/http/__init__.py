"""The HTTP edge: a thin FastAPI app that parses, calls a service and formats the reply."""
