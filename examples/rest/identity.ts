// Create an agent identity through `ravi serve`'s REST API and read it back.
// The token is the one `ravi login` saved in ~/.ravi/auth.json. Only BASE
// changes from one server to another.

import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

const BASE = "http://127.0.0.1:8700";

interface Identity {
  uuid: string;
  name: string;
  inbox: string | null;
  phone: string | null;
  created_dt: string;
}

const auth = JSON.parse(readFileSync(join(homedir(), ".ravi", "auth.json"), "utf8"));
const headers = {
  Authorization: `Bearer ${auth.access_token}`,
  "Content-Type": "application/json",
};
const name = process.argv[2] ?? "research-agent";

async function main(): Promise<void> {
  const created = await fetch(`${BASE}/api/identities/`, {
    method: "POST",
    headers,
    body: JSON.stringify({ name }),
  });
  if (created.status !== 201) throw new Error(`create: HTTP ${created.status}`);
  const identity = (await created.json()) as Identity;

  const fetched = await fetch(`${BASE}/api/identities/${identity.uuid}/`, { headers });
  if (!fetched.ok) throw new Error(`get: HTTP ${fetched.status}`);
  console.log(JSON.stringify((await fetched.json()) as Identity));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
