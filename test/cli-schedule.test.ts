import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningHerald } from "../src/server.js";
import { runHerald } from "./helpers/child.js";
import { startTestServer } from "./helpers/server.js";

let server: RunningHerald;

beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.shutdown());

const cleanEnv = { HERALD_URL: "", HERALD_API_KEY: "", HERALD_TOKEN: "" };

async function pending(mailbox: string): Promise<Record<string, unknown>[]> {
  const response = await fetch(`${server.url}/v1/mailboxes/${mailbox}/scheduled`);
  return ((await response.json()) as { scheduled: Record<string, unknown>[] }).scheduled;
}

describe("herald publish --delay / --at", () => {
  it("schedules with --delay and prints mailbox, time and id; a repeated --idempotency-key is not scheduled again", async () => {
    const args = ["publish", "room:cli-later", "stand-up in 10 minutes", "--delay", "10m", "--title", "Stand-up"];
    const before = Date.now();
    const run = await runHerald([...args, "--idempotency-key", "standup-1", "--url", server.url], cleanEnv);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    const match = /^room:cli-later scheduled for (\S+) (\S+)\n$/.exec(run.stdout);
    expect(match).not.toBeNull();
    const [, at, id] = match as unknown as [string, string, string];
    expect(Date.parse(at)).toBeGreaterThanOrEqual(before + 600_000);
    expect(await pending("room:cli-later")).toEqual([
      { id, mailbox: "room:cli-later", scheduledFor: at, body: "stand-up in 10 minutes", title: "Stand-up" },
    ]);
    const again = await runHerald([...args, "--idempotency-key", "standup-1", "--url", server.url], cleanEnv);
    expect(again.stdout).toBe(
      `room:cli-later scheduled for ${at} ${id} (already scheduled under --idempotency-key standup-1; not scheduled again)\n`,
    );
    expect((await pending("room:cli-later")).length).toBe(1);
  });

  it("schedules with --at, prints JSON with --json, and refuses both or a bad time", async () => {
    const at = new Date(Date.now() + 3_600_000).toISOString();
    const run = await runHerald(["publish", "room:cli-at", "x", "--at", at, "--json", "--url", server.url], cleanEnv);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ mailbox: "room:cli-at", scheduledFor: at });
    const both = await runHerald(["publish", "room:cli-at", "x", "--at", at, "--delay", "5", "--url", server.url]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("give --delay or --at, not both");
    const bad = await runHerald(["publish", "room:cli-at", "x", "--delay", "soon", "--url", server.url], cleanEnv);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^herald: "delay" must be .*\(HTTP 400, bad_message\)/);
  });
});
