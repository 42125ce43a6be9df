"""Settings and policy files: the fix is on the operator's side (500; the CLI exits 2)."""

from __future__ import annotations

from plinth.errors.base import PlinthError, problem_code


class ConfigError(PlinthError):
    """A setting or the policy file is wrong; codes ``config.*``."""

    status = 500


class InvalidConfigError(ConfigError):
    """A setting has a value Plinth cannot use; the problems list every bad one."""

    code = "config.invalid"
    hint = "Fix each listed setting in plinth.toml; docs/configuration.md lists every one."


class CanaryPolicyError(ConfigError):
    """A canary analysis policy has unknown keys or bad values; every one is listed."""

    code = "config.canary"
    hint = "See docs/rollout.md, 'Automated canary analysis', for every setting."


class DriftMethodError(ConfigError):
    """A drift method is unknown, or does not apply to the kind of feature it was given."""

    code = "config.drift_method"
    hint = "See docs/monitoring.md for the drift methods and the features each applies to."


class DatabaseUrlError(ConfigError):
    """PLINTH_DATABASE_URL cannot be parsed or names a database Plinth does not support."""

    code = "config.database_url"
    hint = (
        "Use sqlite:////absolute/path/plinth.db or "
        "postgresql+psycopg://user:password@host:5432/dbname in PLINTH_DATABASE_URL."
    )


class SqliteSynchronousError(ConfigError):
    """PLINTH_SQLITE_SYNCHRONOUS is not a SQLite synchronous mode."""

    code = "config.sqlite_synchronous"
    hint = "Use OFF, NORMAL, FULL or EXTRA; FULL is the safe default."


class TokensSettingError(ConfigError):
    """An entry of PLINTH_TOKENS is not ``ROLE:TOKEN`` with a known role."""

    code = "config.tokens"
    hint = "Write role:token pairs separated by commas; roles: predict, reviewer, admin."


UNREADABLE = problem_code(ConfigError, "config.unreadable", "The policy file cannot be read.")
SYNTAX = problem_code(ConfigError, "config.syntax", "The policy file is not valid TOML.")
UNKNOWN_SETTING = problem_code(
    ConfigError, "config.unknown_setting", "plinth.toml names a setting that does not exist."
)
INVALID_SETTING = problem_code(
    ConfigError,
    "config.invalid_setting",
    "A setting in plinth.toml has a value of the wrong type or range.",
)
CANARY_UNKNOWN_SETTING = problem_code(
    ConfigError, "canary.unknown_setting", "A canary policy names a setting that does not exist."
)
CANARY_INVALID_SETTING = problem_code(
    ConfigError,
    "canary.invalid_setting",
    "A canary policy setting has a value of the wrong type or range.",
)
LOG_HASH_KEY = problem_code(
    ConfigError,
    "config.log_hash_key",
    "A log policy hashes fields but PLINTH_LOG_HASH_KEY is not set.",
)
LOG_REDACT_AND_HASH = problem_code(
    ConfigError,
    "config.log_redact_and_hash",
    "A log policy lists one field under both redact and hash.",
)
