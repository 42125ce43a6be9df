"""A caller's malformed request, command-line arguments or data files (4xx)."""

from __future__ import annotations

from plinth.errors.base import NotFoundError, PlinthError, Problem, problem_code


class RequestError(PlinthError):
    """The request itself is malformed (not JSON, wrong shape, too large); ``request.*``."""

    status = 400


class InvalidParametersError(RequestError):
    """A path or query parameter has the wrong type; the problems name each one."""

    code = "request.invalid"
    status = 422
    hint = "See the OpenAPI document at /docs."


class InvalidBodyError(RequestError):
    """The JSON body does not have the shape the route takes."""

    code = "request.invalid_body"
    status = 422
    hint = "See the OpenAPI document at /docs for the body each route takes."


class MalformedJsonError(RequestError):
    """The body is not valid JSON."""

    code = "request.malformed_json"
    status = 422
    hint = "Send a JSON document with Content-Type: application/json."

    def __init__(self, reason: str, *, hint: str | None = None) -> None:
        super().__init__(f"The body is not valid JSON: {reason}.", hint=hint)


class BodyTooLargeError(RequestError):
    """The body is larger than the server's limit (PLINTH_MAX_BODY_BYTES)."""

    code = "request.too_large"
    status = 413
    hint = "Split the records over several requests."

    def __init__(self, size: int, limit: int, *, hint: str | None = None) -> None:
        super().__init__(f"The body is {size} bytes; the limit is {limit}.", hint=hint)


class TooManyRecordsError(RequestError):
    """More records (or labels) in one request than the server takes."""

    code = "request.too_many_records"
    status = 413
    hint = "Split the records over several requests."

    def __init__(
        self, count: int, limit: int, *, noun: str = "records", hint: str | None = None
    ) -> None:
        super().__init__(f"{count} {noun} in one request; the limit is {limit}.", hint=hint)


class OverLimitError(RequestError):
    """The body is within the byte limit but past a shape limit: nesting depth, a string's
    or an array's length, an object's keys (``PLINTH_MAX_JSON_DEPTH`` and its siblings)."""

    code = "request.over_limit"
    status = 413
    hint = "Send flat records of plain values, in several requests if there are many."

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(
            f"The body is past the server's limits ({len(problems)} problem"
            f"{'s' if len(problems) != 1 else ''}).",
            problems=problems,
        )


class QueryTooLargeError(RequestError):
    """The query string is longer, or has more parameters, than the server takes."""

    code = "request.query_too_large"
    status = 400
    hint = (
        "Send fewer query parameters (PLINTH_MAX_QUERY_PARAMS) in a shorter query string "
        "(PLINTH_MAX_QUERY_BYTES); inputs go in the JSON body."
    )

    def __init__(self, size: int, params: int, max_size: int, max_params: int) -> None:
        super().__init__(
            f"The query string has {size} bytes and {params} parameters; the limits are "
            f"{max_size} bytes and {max_params} parameters."
        )


class EmptyRequestError(RequestError):
    """The request holds nothing to do."""

    code = "request.empty"
    status = 422
    hint = "Send one item or more."


class InvalidDurationError(RequestError):
    """A duration is not a number and a unit (or is zero where that means nothing)."""

    code = "request.invalid_duration"
    status = 422
    hint = "Write a number and a unit: 500ms, 90s, 15m, 1h, 24h, 7d, 2w."

    def __init__(self, text: object, what: str = "duration") -> None:
        super().__init__(f"{text!r} is not a {what}.")


class PathNotFoundError(RequestError, NotFoundError):
    """No route has this path."""

    code = "request.not_found"
    status = 404
    hint = "See the OpenAPI document at /docs for the routes."


class HttpStatusError(RequestError):
    """Any other HTTP-level refusal (a method the route does not take, …)."""

    code = "request.http_error"
    status_varies = "the HTTP status"
    hint = "See the OpenAPI document at /docs for the routes."

    def __init__(self, detail: str, status: int) -> None:
        super().__init__(detail)
        self.status = status


MISSING_RECORDS = problem_code(
    RequestError, "request.missing_records", "The body has no 'records'."
)
INVALID_RECORDS = problem_code(RequestError, "request.invalid_records", "'records' is not a list.")
EMPTY_RECORDS = problem_code(RequestError, "request.empty_records", "'records' is an empty list.")
INVALID_KEY = problem_code(RequestError, "request.invalid_key", "'key' is not a string.")
UNKNOWN_FIELD = problem_code(
    RequestError, "request.unknown_field", "The body has a field the route does not take."
)
TOO_DEEP = problem_code(
    RequestError, "request.too_deep", "The JSON nests deeper than PLINTH_MAX_JSON_DEPTH."
)
STRING_TOO_LONG = problem_code(
    RequestError, "request.string_too_long", "A string is longer than PLINTH_MAX_STRING_CHARS."
)
ARRAY_TOO_LONG = problem_code(
    RequestError, "request.array_too_long", "An array is longer than PLINTH_MAX_ARRAY_ITEMS."
)
TOO_MANY_KEYS = problem_code(
    RequestError, "request.too_many_keys", "An object has more keys than PLINTH_MAX_OBJECT_KEYS."
)
INVALID_PARAMETER = problem_code(
    RequestError, "request.invalid_parameter", "One path or query parameter has the wrong type."
)

# The Open Inference Protocol's tensors (/v2 and gRPC).
TENSOR_DATATYPE = problem_code(
    RequestError, "request.tensor_datatype", "A tensor's datatype is not one the protocol has."
)
TENSOR_SHAPE = problem_code(
    RequestError, "request.tensor_shape", "A tensor's shape does not fit its data or the contract."
)
TENSOR_DATA = problem_code(
    RequestError, "request.tensor_data", "A tensor's data cannot be read as its datatype."
)
UNKNOWN_INPUT = problem_code(
    RequestError, "request.unknown_input", "An input tensor names no field of the contract."
)
UNKNOWN_OUTPUT = problem_code(
    RequestError, "request.unknown_output", "A requested output is not one the model gives."
)


class CliError(PlinthError):
    """A command-line argument or the file it names is wrong; ``cli.*``."""

    status = 400


class BadModelReferenceError(CliError):
    """A model reference is not NAME or NAME:VERSION."""

    code = "cli.invalid_reference"
    hint = "Write the model as iris or iris:3."

    def __init__(self, ref: str) -> None:
        super().__init__(f"{ref!r} is not NAME or NAME:VERSION.")


class ModelSourceChoiceError(CliError):
    """``plinth register`` needs exactly one of a model file and --from-mlflow."""

    code = "cli.model_source"
    hint = "plinth register model.skops ... or plinth register --from-mlflow runs:/ID/model"


class TlsFilesError(CliError):
    """``plinth serve`` got one of --ssl-certfile / --ssl-keyfile without the other."""

    code = "cli.tls_files"
    hint = "Pass both: plinth serve --ssl-certfile cert.pem --ssl-keyfile key.pem"


class BadTagError(CliError):
    """A --tag is not key=value."""

    code = "cli.invalid_tag"
    hint = "Use --tag team=risk."

    def __init__(self, tag: str) -> None:
        super().__init__(f"Tag {tag!r} is not key=value.")


class UnknownOutputFormatError(CliError):
    """--format names a format the command does not write."""

    code = "cli.invalid_format"
    hint = "Use --format table or --format json."

    def __init__(self, output_format: str) -> None:
        super().__init__(f"Unknown format {output_format!r}.")


class RetentionOrderError(CliError):
    """Roll-ups would be pruned before the minute rows they summarise."""

    code = "cli.invalid_retention"
    hint = "Hourly roll-ups summarise minute rows, so keep them at least as long."


class UnreadableContractFileError(CliError):
    """The contract file given to ``plinth contract edit`` is not readable JSON."""

    code = "cli.invalid_file"
    hint = "Pass the JSON printed by `plinth contract show`, edited."


class LabelsFileColumnsError(CliError):
    """The labels file lacks the label column, or has not exactly one of prediction_id/key."""

    code = "cli.invalid_labels_file"
    hint = "Give a label column and one of prediction_id or key (time and source are optional)."


class ResolutionChoiceError(CliError):
    """``plinth review resolve`` needs exactly one of --approve and --correct."""

    code = "cli.invalid_resolution"
    hint = "plinth review resolve ID --approve, or --correct yes --note '...'."


class DataError(PlinthError):
    """A data file (training table, holdout, batch input) cannot be used; ``data.*``."""

    status = 400


class DataFileNotFoundError(DataError, NotFoundError):
    """The data file does not exist."""

    code = "data.file_not_found"
    status = 404
    hint = "Check the path passed to --train / --holdout / --input."


class UnreadableDataError(DataError):
    """The data file exists but is not valid CSV or Parquet."""

    code = "data.unreadable"
    hint = "Make sure the file is a valid CSV (with a header row) or Parquet file."


class UnsupportedDataFormatError(DataError):
    """The data file's suffix is not one Plinth reads."""

    code = "data.unsupported_format"
    hint = "Use a .csv or .parquet file."
