"""Exceptions raised by the ASL interpreter, and the `States.*` error names."""

from __future__ import annotations

from ..._errors import WaylineError

__all__ = (
    "AslDefinitionError",
    "ExpressionBudgetError",
    "StatesError",
)


class AslDefinitionError(WaylineError, ValueError):
    """A state machine definition is invalid.

    Every problem found is listed, each prefixed with a JSON-pointer-like path to the
    offending field (for example ``/States/Charge/Next: no state named "Chrage"``), so one
    round of fixes is enough.

    Attributes:
        problems: One message per problem, in definition order.
    """

    def __init__(self, problems: list[str] | tuple[str, ...]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        count = len(self.problems)
        head = f"invalid state machine definition ({count} problem{'s' if count != 1 else ''})"
        super().__init__(head + ":\n  " + "\n  ".join(self.problems))


class ResourceError(AslDefinitionError):
    """A state machine's Task resources cannot run it: a Task's ``Resource`` has nothing bound
    to it, or what is bound is not an async callable. Raised by ``StateMachine(...)`` (the
    callables) and ``open_runtime`` (the bindings), before any run can fail on it.

    Attributes:
        machine: the machine's name.
        problems: one message per problem, each naming the Task or resource and the fix.
    """

    def __init__(self, machine: str, problems: list[str] | tuple[str, ...]) -> None:
        self.machine = machine
        self.problems = tuple(problems)
        count = len(self.problems)
        head = f"state machine {machine!r} cannot run its Tasks ({count} problem{'s' if count != 1 else ''})"
        Exception.__init__(self, head + ":\n  " + "\n  ".join(self.problems))


class ExpressionBudgetError(WaylineError, ValueError):
    """An expression budget that cannot be used: a limit of
    :class:`~wayline.runtime.asl.ExpressionBudget` that is not a positive number, or a
    ``StateMachine(expression_budget=...)`` that is not an ``ExpressionBudget``.

    Attributes:
        field: What is wrong, e.g. ``"seconds"`` or ``"expression_budget"``.
        value: The value given.
    """

    def __init__(self, field: str, value: object) -> None:
        self.field = field
        self.value = value
        if field == "expression_budget":
            message = (
                "StateMachine(expression_budget=...) takes an ExpressionBudget "
                f"(from wayline.runtime import ExpressionBudget), got {type(value).__name__}"
            )
        else:
            kind = "a positive, finite number of seconds" if field == "seconds" else "a positive integer"
            message = f"ExpressionBudget.{field} must be {kind}, got {value!r}"
        super().__init__(message)


class StatesError(WaylineError):
    """An ASL error: a failed task, a failed run, or a runtime error of the language.

    The same class is used by resources and hosts to report a failure (``error`` is then
    matched by Retry/Catch ``ErrorEquals``) and by :func:`execute` to report a failed run.

    Attributes:
        error: The error name, e.g. ``"States.TaskFailed"``; ``None`` only for a Fail state
            that set no Error.
        cause: A human-readable cause, or ``None``.
    """

    def __init__(self, error: str | None, cause: str | None = None) -> None:
        self.error = error
        self.cause = cause
        super().__init__(f"{error}: {cause}" if cause is not None else str(error))


# Error names the language defines, kept as constants so a typo is a NameError, not a
# silently unmatched Retry.
ALL = "States.ALL"
RUNTIME = "States.Runtime"
TASK_FAILED = "States.TaskFailed"
TIMEOUT = "States.Timeout"
HEARTBEAT_TIMEOUT = "States.HeartbeatTimeout"
RESULT_PATH_MATCH_FAILURE = "States.ResultPathMatchFailure"
PARAMETER_PATH_FAILURE = "States.ParameterPathFailure"
INTRINSIC_FAILURE = "States.IntrinsicFailure"
BRANCH_FAILED = "States.BranchFailed"
NO_CHOICE_MATCHED = "States.NoChoiceMatched"
ITEM_READER_FAILED = "States.ItemReaderFailed"
EXCEED_TOLERATED_FAILURE_THRESHOLD = "States.ExceedToleratedFailureThreshold"
QUERY_EVALUATION_ERROR = "States.QueryEvaluationError"
DATA_LIMIT_EXCEEDED = "States.DataLimitExceeded"
PERMISSIONS = "States.Permissions"
