"""Structured logging for wayline users: run ids on records, and one JSON object per line.

wayline's own log records about a run carry ``run_id`` (passed as ``extra``). Records an
activity logs know nothing about the run; `RunLogFilter` adds what the step-info context
variable holds, so ``log.info("charged")`` inside an activity comes out with the run, the
workflow, the step and the attempt it belongs to.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from ._stepinfo import _current

#: The attributes `RunLogFilter` sets, in the order `JsonLogFormatter` writes them.
RUN_FIELDS = ("run_id", "workflow", "step", "attempt")

# Everything a plain LogRecord carries; any other attribute came from ``extra=``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}


class RunLogFilter(logging.Filter):
    """Adds ``run_id``, ``workflow``, ``step`` and ``attempt`` to records logged inside an activity.

    Attach it to a handler (``handler.addFilter(RunLogFilter())``) so it sees records from
    every logger, yours included. Values already on a record (given with ``extra=``) are
    kept. Outside an activity the record passes through unchanged. It never drops a record.
    """

    #: The attributes it sets, in the order `JsonLogFormatter` writes them.
    FIELDS = RUN_FIELDS

    def filter(self, record: logging.LogRecord) -> bool:
        info = _current.get()
        if info is not None:
            values = {"run_id": info.run_id, "workflow": info.workflow, "step": info.step, "attempt": info.attempt}
            for key, value in values.items():
                if not hasattr(record, key):
                    setattr(record, key, value)
        return True


class JsonLogFormatter(logging.Formatter):
    """Formats each record as one line of JSON.

    Keys: ``ts`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, then ``run_id``,
    ``workflow``, ``step``, ``attempt`` when the record has them, then any other ``extra=``
    attribute, and ``exception`` with the formatted traceback when there is one. Values that
    JSON cannot hold are written as their ``repr``.
    """

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in RUN_FIELDS:
            value = record.__dict__.get(key)
            if value is not None:
                doc[key] = value
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in doc:
                doc[key] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exception"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, default=repr, ensure_ascii=False)
