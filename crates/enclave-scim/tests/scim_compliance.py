#!/usr/bin/env python3
"""Run scim2-tester (PyPI, python-scim project) against a SCIM 2.0 server.

Usage: scim_compliance.py <base_url> <token> [--json]

<base_url> is the SCIM root (e.g. http://127.0.0.1:8080/scim/v2/okta); the token is
sent as "Authorization: Bearer <token>". Prints one line per check and a summary; exits
0 when no check failed, 1 when one did, 2 on usage or setup errors. With --json the
last line is a JSON summary ({"passed": n, "skipped": n, "failed": [...]}) for callers.

Tested with scim2-tester==0.5.2, scim2-client==0.13.2, scim2-models==0.12.3.
The token is read from argv (or SCIM_TOKEN when argv says "-") and never printed.
"""

import json
import os
import sys

# Statuses that count as passing: the server follows the RFC (MUST, SHOULD or MAY).
PASSING = {"SUCCESS", "COMPLIANT", "ACCEPTABLE"}
# Checks not run (feature not announced, or a prerequisite missing): reported, not failures.
NEUTRAL = {"SKIPPED"}

# Checks exempted on purpose: (title substring, reason). Empty: nothing is exempted.
EXEMPT: list[tuple[str, str]] = []


def main() -> int:
    args = [a for a in sys.argv[1:] if a != "--json"]
    as_json = "--json" in sys.argv[1:]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    base_url, token = args
    if token == "-":
        token = os.environ.get("SCIM_TOKEN", "")
    try:
        from httpx2 import Client
        from scim2_client.engines.httpx2 import SyncSCIMClient
        from scim2_tester import check_server
    except ImportError as exc:
        print(
            f"scim2-tester is not installed ({exc}); install it with: "
            "python3 -m pip install --break-system-packages "
            "scim2-tester==0.5.2 scim2-client==0.13.2 scim2-models==0.12.3",
            file=sys.stderr,
        )
        return 2

    if not base_url.endswith("/"):
        base_url += "/"
    http = Client(
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    client = SyncSCIMClient(http)
    results = check_server(client, raise_exceptions=False)

    passed, skipped, failed, exempted = 0, 0, [], []
    for r in results:
        status = r.status.name
        title = r.title or "?"
        rtype = f"[{r.resource_type}] " if r.resource_type else ""
        reason = (r.reason or "").replace(token, "<token>") if token else (r.reason or "")
        line = f"{status:<10} {rtype}{title}: {reason}"
        if status in PASSING:
            passed += 1
        elif status in NEUTRAL:
            skipped += 1
        else:
            why = next((w for t, w in EXEMPT if t in title), None)
            if why is not None:
                exempted.append(f"{title} ({why})")
                line = f"EXEMPT     {rtype}{title}: {why}"
            else:
                failed.append(f"{rtype}{title}: {reason}")
        print(line)

    print(
        f"scim2-tester: {len(results)} checks, {passed} passed, {skipped} skipped, "
        f"{len(exempted)} exempted, {len(failed)} failed"
    )
    if as_json:
        print(json.dumps({"total": len(results), "passed": passed, "skipped": skipped,
                          "exempted": exempted, "failed": failed}))
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
