"""A Jupyter client that goes through Enclave's gateway, as JupyterLab does: it starts a kernel
over the REST API, opens the kernel's websocket channel and executes code, printing one JSON
line with the outcome. Run with the notebook environment's Python (it has tornado).

usage: kernel_client.py BASE_URL CA_FILE PROJECT NOTEBOOK CODE [--hold SECONDS]

The Enclave API token comes from the ENCLAVE_TOKEN environment variable (never argv); with
ENCLAVE_COOKIE set instead, that Cookie header is sent (as a browser would, with an Origin
naming the host). ENCLAVE_HOST overrides the Host header (a notebook's own origin in subdomain
mode, while connecting to BASE_URL's address).
With --hold, after executing it keeps the websocket open and reports when (and whether) the
gateway closed it.
"""

import asyncio
import json
import os
import ssl
import sys
import time
import uuid

from tornado import httpclient, ioloop, websocket


async def main():
    base, ca, project, notebook, code = sys.argv[1:6]
    hold = float(sys.argv[7]) if len(sys.argv) > 7 and sys.argv[6] == "--hold" else 0
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False
    prefix = f"{base}/p/{project}/nb/{notebook}"
    host = os.environ.get("ENCLAVE_HOST")
    if os.environ.get("ENCLAVE_COOKIE"):
        scheme = base.split("://")[0]
        origin = f"{scheme}://{host or base.split('://')[1]}"
        headers = {"Cookie": os.environ["ENCLAVE_COOKIE"], "Origin": origin}
    else:
        headers = {"Authorization": f"Bearer {os.environ['ENCLAVE_TOKEN']}"}
    if host:
        headers["Host"] = host
    client = httpclient.AsyncHTTPClient()
    resp = await client.fetch(
        httpclient.HTTPRequest(
            f"{prefix}/api/kernels",
            method="POST",
            body=json.dumps({"name": "python3"}),
            headers={**headers, "Content-Type": "application/json"},
            ssl_options=ctx,
            request_timeout=60,
        ),
        raise_error=False,
    )
    if resp.code != 201:
        print(json.dumps({"error": f"kernel start: {resp.code}", "body": resp.body.decode(errors="replace")[:300]}))
        return
    kernel = json.loads(resp.body)["id"]
    ws_url = prefix.replace("https://", "wss://") + f"/api/kernels/{kernel}/channels"
    try:
        conn = await websocket.websocket_connect(
            httpclient.HTTPRequest(ws_url, headers=headers, ssl_options=ctx, request_timeout=30)
        )
    except Exception as e:  # noqa: BLE001 - reported to the test
        print(json.dumps({"error": f"websocket: {e!r}"}))
        return
    msg_id = uuid.uuid4().hex
    conn.write_message(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test",
                   "session": uuid.uuid4().hex, "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": code, "silent": False, "store_history": True,
                    "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
        "buffers": [],
    }))
    out = {"kernel": kernel, "stdout": "", "result": None, "status": None}
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            raw = await asyncio.wait_for(conn.read_message(), deadline - time.time())
        except asyncio.TimeoutError:
            out["timed_out"] = True
            break
        if raw is None:
            out["closed_early"] = True
            break
        if isinstance(raw, bytes):
            continue
        m = json.loads(raw)
        if m.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        t = m["header"]["msg_type"]
        if t == "stream":
            out["stdout"] += m["content"]["text"]
        elif t == "execute_result":
            out["result"] = m["content"]["data"].get("text/plain")
        elif t == "error":
            out["error"] = m["content"]["ename"]
        elif t == "execute_reply":
            out["status"] = m["content"]["status"]
        elif t == "status" and m["content"]["execution_state"] == "idle" and out["status"]:
            break
    print(json.dumps(out), flush=True)
    if hold:
        start = time.time()
        closed = False
        while time.time() - start < hold:
            try:
                raw = await asyncio.wait_for(conn.read_message(), max(0.1, hold - (time.time() - start)))
            except asyncio.TimeoutError:
                break
            except Exception:  # noqa: BLE001 - a dropped connection counts as closed
                raw = None
            if raw is None:
                closed = True
                break
        print(json.dumps({"closed": closed, "after": round(time.time() - start, 2)}), flush=True)


ioloop.IOLoop.current().run_sync(main)
