"""Errors about the values a run carries: inputs, payloads, metadata and typed vars."""

from __future__ import annotations

from ._base import WaylineError


class PayloadError(WaylineError):
    """A value could not be encoded for storage (not msgspec-encodable)."""

    def __init__(self, what: str, detail: str, *, run_id: str | None = None) -> None:
        self.run_id = run_id
        self.what = what
        super().__init__(
            f"{what} cannot be stored: {detail}. Workflow inputs, step arguments and results, "
            "vars and signal payloads must be JSON-like data (dict, list, str, int, float, bool, "
            "None, bytes) or msgspec Structs"
        )


class MetadataError(WaylineError, ValueError):
    """Run metadata or tags that cannot be stored or searched: a key that is not a non-empty
    string or that the runtime reserves, a value that is not a str, int, float or bool."""

    def __init__(self, problem: str, *, run_id: str | None = None) -> None:
        self.run_id = run_id
        self.problem = problem
        where = f" of run {run_id!r}" if run_id else ""
        super().__init__(f"run metadata{where}: {problem}")


class VarsError(WaylineError, TypeError):
    """Typed ``ctx.vars`` (``@workflow(vars=...)``) that do not match their type: raised in the
    workflow body at the ``await`` that would have checkpointed them (and failing the run if the
    body does not catch it), or at ``@workflow`` for a type that cannot be used."""

    def __init__(self, workflow: str, problem: str, *, field: str | None = None, run_id: str | None = None) -> None:
        self.workflow = workflow
        self.field = field
        self.run_id = run_id
        where = f" of run {run_id!r}" if run_id else ""
        at = f" at field {field!r}" if field else ""
        super().__init__(f"ctx.vars{where} (workflow {workflow!r}){at}: {problem}")


class SignalPayloadError(PayloadError):
    """A signal's payload does not match the type the workflow waits for it as (raised in the
    body, at ``ctx.wait_signal(name, T)``; the workflow may catch it)."""

    def __init__(self, run_id: str, signal: str, expected: str, detail: str) -> None:
        self.run_id, self.what, self.signal = run_id, f"signal {signal!r}", signal
        WaylineError.__init__(
            self,
            f"run {run_id!r} got signal {signal!r} with a payload that is not a {expected}: {detail}; "
            "send one that is (rt.signal), or wait for a wider type",
        )
