"""Process logging: JSON lines that parse and carry extras; text for a terminal; uvicorn's
access log in the same format when it runs with ``log_config=None``."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import logging.config
import socket
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from rundfunk.config import Settings
from rundfunk.logs import configure_logging

_UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.access")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state: put it back after each test."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    loggers = [logging.getLogger(name) for name in _UVICORN]
    saved_uvicorn = [(lg, list(lg.handlers), lg.propagate, lg.level) for lg in loggers]
    yield
    root.handlers[:], root.level = saved
    for logger, handlers, propagate, level in saved_uvicorn:
        logger.handlers[:] = handlers
        logger.propagate, logger.level = propagate, level


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    parsed = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert all(isinstance(entry, dict) for entry in parsed)
    return parsed


def test_json_lines_carry_time_level_logger_message_and_extras() -> None:
    out = io.StringIO()
    configure_logging(Settings(log_format="json"), stream=out)
    log = logging.getLogger("rundfunk.worker.dispatcher")
    log.warning("broadcast %s paused", 7, extra={"broadcast_id": 7, "channel_id": 3})
    log.debug("not at INFO")

    [entry] = lines(out)
    assert entry == {
        "time": entry["time"],
        "level": "WARNING",
        "logger": "rundfunk.worker.dispatcher",
        "message": "broadcast 7 paused",
        "broadcast_id": 7,
        "channel_id": 3,
    }
    assert entry["time"].endswith("Z")
    stamp = datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))
    assert abs((datetime.now(stamp.tzinfo) - stamp).total_seconds()) < 60


def test_a_traceback_and_newlines_stay_on_one_line() -> None:
    out = io.StringIO()
    configure_logging(Settings(log_format="json", log_level="debug"), stream=out)
    log = logging.getLogger("rundfunk.test")
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        log.exception("sending failed\nfor real", extra={"delivery": object()})
    log.debug("debug shows at DEBUG")

    first, second = lines(out)
    assert first["message"] == "sending failed\nfor real"
    assert first["exception"].startswith("Traceback") and "ValueError: bad" in first["exception"]
    assert first["delivery"].startswith("<object object")  # not serialisable: its str
    assert second["level"] == "DEBUG"


def test_an_extra_cannot_overwrite_the_four_fields() -> None:
    out = io.StringIO()
    configure_logging(Settings(log_format="json"), stream=out)
    logging.getLogger("rundfunk.test").info("hello", extra={"level": "fake", "time": "never"})
    [entry] = lines(out)
    assert entry["level"] == "INFO" and entry["time"] != "never"


def test_auto_is_text_on_a_terminal_and_json_elsewhere() -> None:
    terminal = Terminal()
    configure_logging(Settings(log_format="auto"), stream=terminal)
    logging.getLogger("rundfunk.test").info("sent", extra={"broadcast_id": 7})
    line = terminal.getvalue().strip()
    assert line.endswith("INFO    rundfunk.test: sent broadcast_id=7")
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)

    piped = io.StringIO()
    configure_logging(Settings(log_format="auto"), stream=piped)
    logging.getLogger("rundfunk.test").info("sent", extra={"broadcast_id": 8})
    assert lines(piped)[0]["broadcast_id"] == 8
    assert "broadcast_id=8" not in terminal.getvalue()  # the old handler was replaced


def test_text_can_be_forced_when_piped() -> None:
    out = io.StringIO()
    configure_logging(Settings(log_format="TEXT"), stream=out)
    logging.getLogger("rundfunk.test").info("plain")
    assert out.getvalue().strip().endswith("rundfunk.test: plain")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_uvicorn_access_log_is_json_too(capsys: pytest.CaptureFixture[str]) -> None:
    # As left behind by anything that configured uvicorn's logging before us: its own
    # handlers on its loggers, which do not propagate.
    logging.config.dictConfig(uvicorn.config.LOGGING_CONFIG)
    out = io.StringIO()
    configure_logging(Settings(log_format="json"), stream=out)
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{port}/ping?x=1")).status_code == 200
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)

    entries = lines(out)  # every line of the server's life parses
    access = [e for e in entries if e["logger"] == "uvicorn.access"]
    assert len(access) == 1, entries
    assert access[0]["method"] == "GET"
    assert access[0]["path"] == "/ping?x=1"
    assert access[0]["status"] == 200
    assert access[0]["client"].startswith("127.0.0.1:")
    assert any(e["logger"] == "uvicorn.error" for e in entries)  # startup lines, same format
    assert all("color_message" not in e for e in entries)
    assert "/ping" not in capsys.readouterr().err  # nothing went to uvicorn's own handlers
