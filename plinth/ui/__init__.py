"""The web console at ``/ui``: what the CLI shows, for the on-call engineer and the reviewer.

Server-rendered pages (Jinja2 templates and a stylesheet inside this package, inline SVG
charts, a few lines of optional JavaScript), mounted into the same app as the API by
``plinth.http.app`` — one process, nothing to build or fetch. It is an edge: it asks the
Runtime for the same services the CLI and the API call (``plinth.ui.data``), and the core
never imports it. Sign-in, roles and CSRF live in ``plinth.ui.session``.
"""
