"""Schema-driven fuzzing of the real server: no 5xx and no answer the OpenAPI document
does not describe, on the engine under test.

``schemathesis run`` reads ``/openapi.json`` of a fresh ``rundfunk serve`` and tries
every operation in it (routes added later are included by themselves) with the demo
owner's token: the schema's examples, its boundaries (coverage: every parameter at and
beyond its limits, undocumented methods) and generated data (fuzzing), including the
unauthenticated webhook and sandbox routes. The seed is fixed, the examples per
operation bounded (about a minute per engine on the CI machine). Checked: no server
error, and every status code, content type, header and body as documented.

The hooks (``fuzz/fuzz_hooks.py``) count the answers by status and keep the server from
reaching beyond this machine (no channel of a real platform is created; WhatsApp's API
address is a closed loopback port anyway).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2e_server import Server, _make_server

from engines import ENGINE

pytestmark = pytest.mark.e2e

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
HOOKS_DIR = Path(__file__).parent / "fuzz"
SEED = 20261201
MAX_EXAMPLES = int(os.environ.get("RUNDFUNK_FUZZ_EXAMPLES", "12"))
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "unsupported_method",
        "allow_header_conformance",
    )
)


@pytest.fixture
def fuzzed_server() -> Iterator[Server]:
    # Graph requests (there should be none) would go to a closed port on this machine.
    yield from _make_server({"RUNDFUNK_WHATSAPP_API_BASE_URL": "http://127.0.0.1:9"})


def _seed_data(server: Server) -> None:
    """Something behind the small ids the fuzzer tries first: a contact, a conversation,
    a topic and a draft broadcast on the demo's sandbox channel."""
    phone = f"/sandbox/{server.channel_id}/phones/4915100000001/messages"
    for text in ("START", "Hallo, eine Frage"):
        assert httpx.post(server.base_url + phone, json={"text": text}).status_code == 202
    assert server.client is not None
    topic = server.client.post("/api/v1/topics", json={"key": "sport", "name": "Sport"})
    assert topic.status_code == 201, topic.text
    draft = server.client.post(
        "/api/v1/broadcasts", json={"channel_id": server.channel_id, "text": "Hallo"}
    )
    assert draft.status_code == 201, draft.text


def _own_token_id(server: Server) -> str:
    """The id of the token the fuzzer uses (found by its prefix), kept from revocation."""
    assert server.client is not None
    listed = server.client.get("/api/v1/tokens")
    if listed.status_code == 404:  # no token routes (yet)
        return ""
    assert listed.status_code == 200, listed.text
    ours = [t for t in listed.json()["items"] if server.token.startswith(t["prefix"])]
    assert len(ours) == 1, listed.text
    return str(ours[0]["id"])


def test_fuzzing_the_openapi_document_finds_no_5xx_and_no_mismatch(
    fuzzed_server: Server, tmp_path: Path
) -> None:
    server = fuzzed_server
    _seed_data(server)
    counts_file = tmp_path / "counts.json"
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "fuzz_hooks",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HOOKS_DIR), os.environ.get("PYTHONPATH")])),
        "RUNDFUNK_FUZZ_COUNTS": str(counts_file),
        "RUNDFUNK_FUZZ_KEEP_TOKEN": _own_token_id(server),
        "NO_COLOR": "1",
    }
    command = [
        str(SCHEMATHESIS),
        "run",
        f"{server.base_url}/openapi.json",
        "--header",
        f"Authorization: Bearer {server.token}",
        "--phases",
        "examples,coverage,fuzzing",
        "--checks",
        CHECKS,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--request-timeout",
        "20",
        "--suppress-health-check",
        "all",
        "--no-shrink",
        "--output-truncate",
        "true",
        "--warnings",
        "off",
    ]
    done = subprocess.run(
        command,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
    )
    output = done.stdout + done.stderr
    counts: dict[str, int] = json.loads(counts_file.read_text()) if counts_file.exists() else {}
    requests = sum(v for k, v in counts.items() if k.isdigit())
    server_errors = sum(v for k, v in counts.items() if k.isdigit() and int(k) >= 500)
    statuses = {k: v for k, v in counts.items() if k.isdigit()}
    print(
        f"\n[fuzz] engine {ENGINE}: {requests} requests, {server_errors} x 5xx; "
        f"by status {statuses}; schemathesis exit {done.returncode}"
    )
    summary = [line for line in output.splitlines() if "generated" in line or "passed" in line]
    print("[fuzz] " + " | ".join(s.strip() for s in summary[-2:]))
    assert requests > 1000, output[-5000:]
    assert server_errors == 0, {k: v for k, v in counts.items() if k.startswith("5xx")}
    assert done.returncode == 0, output[-15000:]
    assert server.process is not None and server.process.poll() is None  # still serving
