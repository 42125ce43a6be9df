"""The ``plinth`` command line: thin Typer commands over the services, Rich output."""
