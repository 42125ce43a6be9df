"""Retraining: jobs, training data, the trainer's run and its lease; ``training.*``."""

from __future__ import annotations

from plinth.errors.base import NotFoundError, PlinthError


class TrainingError(PlinthError):
    """A retraining job cannot start, or its run failed; ``training.*`` (409)."""

    status = 409


class TrainingNotConfiguredError(TrainingError):
    """The model has no ``[models.NAME.training]`` section, so there is no recipe to run."""

    code = "training.not_configured"
    hint = (
        "Add [models.NAME.training] with an entrypoint (or command) to plinth.toml; "
        "docs/retraining.md shows one."
    )


class JobNotFoundError(TrainingError, NotFoundError):
    """No training job has this id."""

    code = "training.job_not_found"
    status = 404
    hint = "`plinth jobs` lists the jobs."


class JobActiveError(TrainingError):
    """A job for this model is already queued or running; a second one was not started."""

    code = "training.job_active"
    hint = "Wait for it: plinth job show ID (plinth jobs NAME lists them)."


class NoTrainingDataError(TrainingError):
    """The training set or the holdout came out empty (no labelled traffic, empty table)."""

    code = "training.no_data"
    status = 422
    hint = (
        "Send labels (plinth feedback) or widen [models.NAME.training] window / add a "
        "table source; plinth retrain NAME --dry-run shows the row counts."
    )


class TrainerFailedError(TrainingError):
    """The trainer raised, exited non-zero, was killed, or returned no usable model."""

    code = "training.trainer_failed"
    status = 500
    hint = "Read the job's error (plinth job show ID); the trainer's last output is kept."


class TrainerTimeoutError(TrainingError):
    """The trainer ran past its time limit and was killed."""

    code = "training.timeout"
    status = 500
    hint = "Raise [models.NAME.training] time_limit, or train on fewer rows (max_rows)."


class JobLeaseLostError(TrainingError):
    """The worker running the job stopped renewing its lease (killed, or cut off from the
    store); the job was failed and nothing was registered after that."""

    code = "training.lease_lost"
    status = 500
    hint = "Start it again: plinth retrain NAME."


class NotAwaitingApprovalError(TrainingError):
    """``plinth approve`` named a version no finished job is holding for approval."""

    code = "training.not_awaiting_approval"
    hint = "plinth jobs NAME shows which versions await approval (outcome awaiting_approval)."
