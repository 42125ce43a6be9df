"""The command modules' tests run ``plinth`` as a real subprocess, as the e2e tests do."""

from tests.e2e.conftest import plinth_env  # noqa: F401  (a fixture, shared)
