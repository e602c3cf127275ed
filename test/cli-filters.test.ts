import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningHerald } from "../src/server.js";
import { publishBatch } from "./helpers/batch.js";
import { type HeraldRun, runHerald } from "./helpers/child.js";
import { startTestServer } from "./helpers/server.js";

/** `herald tail` with server-side filters (--tags, --priority, --key) and --latest. */

let server: RunningHerald;
let dir: string;

beforeAll(async () => {
  server = await startTestServer();
  dir = await mkdtemp(join(tmpdir(), "herald-cli-filters-"));
});

afterAll(async () => {
  await server?.shutdown();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function tail(args: string[]): Promise<HeraldRun> {
  return runHerald(["tail", ...args, "--url", server.url], { HERALD_URL: "", HERALD_TOKEN: "" });
}

function jsonLines(run: HeraldRun): Record<string, unknown>[] {
  return run.stdout
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe("herald tail filters", () => {
  it("prints only messages with any of --tags and at least --priority", async () => {
    await publishBatch(server.url, "feed:cli-tags", [
      { body: "a1", tags: ["ci"], priority: 4 },
      { body: "a2", tags: ["ci"], priority: 2 },
      { body: "a3", tags: ["other"], priority: 5 },
      { body: "a4", tags: ["deploy"] },
      { body: "a5", tags: ["deploy"], priority: 5 },
    ]);
    const run = await tail([
      "feed:cli-tags",
      "--tags",
      "ci,deploy",
      "--priority",
      "4",
      "--from-start",
      "--json",
      "--count",
      "2",
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect(jsonLines(run).map((line) => [line.type, line.body])).toEqual([
      ["message", "a1"],
      ["message", "a5"],
    ]);
  });

  it("prints only messages with one of --key, showing the key", async () => {
    await publishBatch(server.url, "feed:cli-key", [
      { body: "cpu 10%", key: "cpu" },
      { body: "mem 50%", key: "mem" },
      { body: "no key" },
      { body: "cpu 12%", key: "cpu" },
    ]);
    const run = await tail(["feed:cli-key", "--key", "cpu", "--from-start", "--count", "2"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/feed:cli-key #1 \[cpu\] cpu 10%\n.*feed:cli-key #4 \[cpu\] cpu 12%\n$/);
  });

  it("with --latest --from-start prints each key's current value after a conflated note", async () => {
    const items: Record<string, unknown>[] = [];
    for (let i = 1; i <= 12; i++) items.push({ body: `${"xyz"[i % 3]}${i}`, key: "xyz"[i % 3] });
    await publishBatch(server.url, "feed:cli-latest", items);
    const run = await tail(["feed:cli-latest", "--latest", "--from-start", "--json", "--count", "3"]);
    expect(run.code, run.stderr).toBe(0);
    const lines = jsonLines(run);
    expect(lines[0]).toEqual({ type: "conflated", mailbox: "feed:cli-latest", skipped: 9 });
    expect(lines.slice(1).map((line) => [line.type, line.body])).toEqual([
      ["message", "y10"],
      ["message", "z11"],
      ["message", "x12"],
    ]);
    const text = await tail(["feed:cli-latest", "--latest", "--from-start", "--count", "3"]);
    expect(text.stderr).toContain("herald: skipped 9 older values in feed:cli-latest (--latest)");
  });

  it("resumes a filtered tail from --cursor-file: nothing twice, nothing the filter leaves out", async () => {
    const file = join(dir, "filtered.cursor");
    await publishBatch(server.url, "feed:cli-resume", [{ body: "w1", tags: ["wanted"] }, { body: "noise1" }]);
    const args = ["feed:cli-resume", "--tags", "wanted", "--cursor-file", file, "--from-start", "--count", "1"];
    const first = await tail(args);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/#1 w1\n$/);
    expect((await readFile(file, "utf8")).trim().length).toBeGreaterThan(0);
    await publishBatch(server.url, "feed:cli-resume", [
      { body: "noise2" },
      { body: "w2", tags: ["wanted"] },
      { body: "noise3" },
    ]);
    const second = await tail(args);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toMatch(/^\S+ feed:cli-resume #4 w2\n$/);
  });

  it.each([
    [["--priority", "9"], 'herald: --priority must be a whole number from 1 to 5, got "9"'],
    [["--priority", "high"], 'herald: --priority must be a whole number from 1 to 5, got "high"'],
    [["--key", "a b"], 'herald: --key values are 1-128 characters of A-Z a-z 0-9 _ - . : @ /, got "a b"'],
    [["--tags", ","], "herald: --tags needs at least one name"],
  ])("refuses %j in one line with exit 2", async (flags, message) => {
    const run = await tail(["feed:cli-bad", ...flags]);
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 2, stderr: `${message}\n` });
  });
});
