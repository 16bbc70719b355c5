"""Create an agent identity through `ravi serve`'s REST API and read it back.

The token is the one `ravi login` saved in ~/.ravi/auth.json. Only BASE
changes from one server to another.
"""

import json
import pathlib
import sys

import httpx

BASE = "http://127.0.0.1:8700"

auth = json.loads((pathlib.Path.home() / ".ravi" / "auth.json").read_text())
headers = {"Authorization": f"Bearer {auth['access_token']}"}
name = sys.argv[1] if len(sys.argv) > 1 else "research-agent"

with httpx.Client(base_url=BASE, headers=headers, timeout=10.0) as client:
    created = client.post("/api/identities/", json={"name": name})
    created.raise_for_status()
    identity = created.json()

    fetched = client.get(f"/api/identities/{identity['uuid']}/")
    fetched.raise_for_status()
    print(json.dumps(fetched.json()))
