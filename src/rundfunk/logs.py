"""Logging for a whole process: JSON lines for machines, plain lines for people.

``configure_logging(settings)`` puts one handler on the root logger (stderr) and
routes uvicorn's loggers, the access log included, through it, so every line of a
process has one format. In JSON each line is one object::

    {"time": "2024-05-01T12:00:00.123Z", "level": "INFO", "logger": "rundfunk.worker",
     "message": "broadcast 7 paused", "broadcast_id": 7}

Anything passed with ``extra=`` (``broadcast_id``, ``channel_id``, ...) becomes a
field of its own; a traceback goes into ``exception``. Access-log lines carry
``client``, ``method``, ``path``, ``http_version`` and ``status``. The text format
shows the same extras as ``key=value`` after the message.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from rundfunk.config import Settings

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName", "color_message"}  # uvicorn's coloured copy
)
# uvicorn's access logger passes these as the record's args (uvicorn/protocols/http).
_ACCESS_FIELDS = ("client", "method", "path", "http_version", "status")
_UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.access")


def extras(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a caller added to this record (``extra=``), plus an access log's parts."""
    fields = {k: v for k, v in vars(record).items() if k not in _STANDARD and k[0] != "_"}
    args = record.args
    if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
        fields.update(zip(_ACCESS_FIELDS, args, strict=True))
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in values stay escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in extras(record).items():
            entry.setdefault(key, value)  # an extra never overwrites the four above
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value ...``: for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        fields = {k: v for k, v in extras(record).items() if record.name != "uvicorn.access"}
        if fields:
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        return line


def use_json(settings: Settings, stream: TextIO) -> bool:
    """``auto`` means JSON unless a person is watching (stderr is a terminal)."""
    if settings.log_format == "auto":
        return not stream.isatty()
    return settings.log_format == "json"


def configure_logging(settings: Settings, *, stream: TextIO | None = None) -> logging.Handler:
    """Send every log record of this process to ``stream`` (stderr) in one format.

    Call it once at process start, before the server starts, and run uvicorn with
    ``log_config=None`` so uvicorn keeps this configuration instead of installing its
    own. Calling it again replaces the handler it installed before.
    """
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if use_json(settings, stream) else TextFormatter())
    handler.set_name("rundfunk")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "rundfunk"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    for name in _UVICORN:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(settings.log_level)
    return handler
