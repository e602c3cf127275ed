import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import autocannon from "autocannon";
import { startHerald } from "./lib/herald-process.js";

/**
 * A rough side-by-side of publish throughput on the memory store and on SQLite
 * (sync full and normal): one client publishing back to back, then autocannon
 * with many connections (where group commit pays). Prints a markdown table.
 */

const SECONDS = Number(process.env.BENCH_COMPARE_SECONDS ?? 5);
const CONNECTIONS = 50;
const BODY = `{"body":"${"x".repeat(52)}"}`;

async function singleClient(url: string): Promise<number> {
  const deadline = Date.now() + SECONDS * 1000;
  let count = 0;
  while (Date.now() < deadline) {
    const response = await fetch(`${url}/v1/mailboxes/bench:single/messages`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: BODY,
    });
    if (response.status !== 201) throw new Error(`publish answered ${response.status}`);
    await response.arrayBuffer();
    count += 1;
  }
  return Math.round(count / SECONDS);
}

async function manyClients(url: string): Promise<number> {
  const result = await autocannon({
    url: `${url}/v1/mailboxes/bench:many/messages`,
    method: "POST",
    headers: { "content-type": "application/json" },
    body: BODY,
    connections: CONNECTIONS,
    duration: SECONDS,
  });
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`${result.non2xx} non-2xx, ${result.errors} errors`);
  return Math.round(result["2xx"] / SECONDS);
}

const rows: string[] = [];
for (const [label, flags] of [
  ["memory", ["--store", "memory"]],
  ["sqlite --sync full", ["--store", "sqlite", "--sync", "full"]],
  ["sqlite --sync normal", ["--store", "sqlite", "--sync", "normal"]],
] as const) {
  const dataDir = mkdtempSync(join(tmpdir(), "herald-compare-"));
  const herald = await startHerald([...flags, "--data-dir", dataDir]);
  try {
    const single = await singleClient(herald.url);
    const many = await manyClients(herald.url);
    rows.push(`| ${label} | ${single} | ${many} |`);
    console.log(rows.at(-1));
  } finally {
    await herald.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
console.log(
  `\n| store | publishes/s, 1 client | publishes/s, ${CONNECTIONS} connections |\n|---|---|---|\n${rows.join("\n")}`,
);
