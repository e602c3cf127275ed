import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type HeraldChild, runHerald, spawnHerald } from "./helpers/child.js";
import { StreamClient } from "./helpers/clients.js";

/**
 * SQLite when the machine misbehaves: the disk fills up (the child's file-size
 * limit, lowered and raised again with prlimit, stands in for a full disk), the
 * database is locked by another process at start-up, and kill -9 in the middle
 * of a burst to many subscribers.
 */
const PRLIMIT = ["/usr/bin/prlimit", "/bin/prlimit"].find((path) => existsSync(path));
const dirs: string[] = [];
const children: HeraldChild[] = [];

afterAll(async () => {
  for (const child of children) {
    child.process.kill("SIGKILL");
    await child.exited;
  }
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "herald-sqlite-faults-"));
  dirs.push(dir);
  return dir;
}

async function start(dir: string): Promise<HeraldChild> {
  const child = await spawnHerald(["--store", "sqlite", "--data-dir", dir]);
  children.push(child);
  return child;
}

async function stop(child: HeraldChild, signal: NodeJS.Signals): Promise<void> {
  child.process.kill(signal);
  await child.exited;
}

async function post(
  base: string,
  mailbox: string,
  body: string,
): Promise<{ status: number; seq?: number; code?: string; retryAfter: string | null }> {
  const response = await fetch(`${base}/v1/mailboxes/${mailbox}/messages`, { method: "POST", body });
  const answer = (await response.json()) as { seq?: number; error?: { code: string } };
  return {
    status: response.status,
    ...(answer.seq === undefined ? {} : { seq: answer.seq }),
    ...(answer.error === undefined ? {} : { code: answer.error.code }),
    retryAfter: response.headers.get("retry-after"),
  };
}

async function storedBodies(base: string, mailbox: string): Promise<{ seq: number; body: string }[]> {
  const answer = (await (await fetch(`${base}/v1/mailboxes/${mailbox}/messages?limit=1000`)).json()) as {
    messages: { seq: number; body: string }[];
  };
  return answer.messages.map(({ seq, body }) => ({ seq, body }));
}

describe("SQLite under faults", () => {
  it("answers 503 while the disk is full, corrupts nothing, and takes publishes again once there is room", async () => {
    if (PRLIMIT === undefined) throw new Error("prlimit (util-linux) is needed to fill the disk of a child process");
    const dir = dataDir();
    const herald = await start(dir);
    const big = "x".repeat(30_000);
    const acknowledged: { seq: number; body: string }[] = [];
    // A soft file-size limit: writes past it fail with EFBIG, as on a full disk (Node ignores SIGXFSZ).
    execFileSync(PRLIMIT, [`--pid=${herald.process.pid}`, "--fsize=2000000:unlimited"]);
    let refused: Awaited<ReturnType<typeof post>> | undefined;
    for (let i = 1; i <= 200 && refused === undefined; i++) {
      const answer = await post(herald.url, "disk", `${i}:${big}`);
      if (answer.status === 201) acknowledged.push({ seq: answer.seq as number, body: `${i}:${big}` });
      else refused = answer;
    }
    expect(refused).toMatchObject({ status: 503, code: "store_unavailable", retryAfter: "1" });
    expect((await post(herald.url, "disk", `more:${big}`)).status).toBe(503);
    execFileSync(PRLIMIT, [`--pid=${herald.process.pid}`, "--fsize=unlimited:unlimited"]);
    const after = await post(herald.url, "disk", "after");
    expect(after.status).toBe(201);
    acknowledged.push({ seq: after.seq as number, body: "after" });
    const expected = (stored: { seq: number; body: string }[]) => {
      // Seqs stay contiguous: a refused publish took none.
      expect(stored.map((message) => message.seq)).toEqual(stored.map((_, i) => i + 1));
      for (const message of acknowledged) expect(stored).toContainEqual(message);
    };
    expected(await storedBodies(herald.url, "disk"));
    await stop(herald, "SIGTERM");
    const again = await start(dir);
    expected(await storedBodies(again.url, "disk"));
    expect(herald.output()).not.toMatch(/\n\s+at /);
    await stop(again, "SIGTERM");
  }, 60_000);

  it("refuses to start on a database another process holds, with a clear message and exit code 2", async () => {
    const dir = dataDir();
    const first = await start(dir);
    await post(first.url, "a", "one");
    await stop(first, "SIGTERM");
    // Another process takes the database's write lock and keeps it.
    const holder = spawn(
      process.execPath,
      [
        "-e",
        `const Database = require(${JSON.stringify(createRequire(import.meta.url).resolve("better-sqlite3"))});
         const db = new Database(${JSON.stringify(join(dir, "herald.sqlite"))});
         db.exec("BEGIN EXCLUSIVE"); console.log("locked"); setInterval(() => {}, 1000);`,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    try {
      await new Promise<void>((resolve) => holder.stdout?.once("data", () => resolve()));
      const run = await runHerald(["serve", "--port", "0", "--store", "sqlite", "--data-dir", dir]);
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(/in use/);
      expect(run.stderr).not.toMatch(/\n\s+at /);
    } finally {
      holder.kill("SIGKILL");
    }
  }, 60_000);

  it("after kill -9 in the middle of a burst to 1,000 subscribers, every one resumes with exactly what was acknowledged", async () => {
    const SUBSCRIBERS = 1000;
    const dir = dataDir();
    const herald = await start(dir);
    const base = herald.url;
    const readers = Array.from(
      { length: SUBSCRIBERS },
      (_, i) => new StreamClient(`${base}/v1/mailboxes/burst/${i % 2 === 0 ? "events" : "stream"}?cursor=now`),
    );
    await Promise.all(readers.map((reader) => reader.opened));
    await Promise.all(readers.map((reader) => reader.until(() => reader.raw.length > 0)));
    const acknowledged = new Set<number>();
    let cutOff = 0;
    // Sixteen publishers, each publishing again as soon as it is answered, until the server is gone.
    const publisher = async (id: number) => {
      for (let n = 0; ; n++) {
        try {
          const response = await fetch(`${base}/v1/mailboxes/burst/messages`, { method: "POST", body: `p${id}-${n}` });
          if (response.status === 201) acknowledged.add(((await response.json()) as { seq: number }).seq);
        } catch {
          cutOff += 1;
          return;
        }
      }
    };
    const burst = Array.from({ length: 16 }, (_, id) => publisher(id));
    // Killed in the middle of it: some publishes acknowledged, others in flight.
    const deadline = Date.now() + 10_000;
    while (acknowledged.size < 100 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 2));
    await stop(herald, "SIGKILL");
    await Promise.all(burst);
    expect(cutOff, "publishes in flight when the server died").toBeGreaterThan(0);
    for (const reader of readers) reader.close();
    // Where each reader got to: the cursor of the last message it was sent (or the one it opened at).
    const cursors = readers.map((reader) => {
      const objects = reader.objects as { type?: string; cursor?: string }[];
      const last = [...objects].reverse().find((object) => object.cursor !== undefined);
      return { seqs: reader.messages().map((message) => message.seq as number), cursor: last?.cursor as string };
    });
    const again = await start(dir);
    const stored = (await storedBodies(again.url, "burst")).map((message) => message.seq);
    expect(stored).toEqual(stored.map((_, i) => i + 1));
    for (const seq of acknowledged) expect(stored).toContain(seq);
    const resumed = cursors.map(
      ({ cursor }) => new StreamClient(`${again.url}/v1/mailboxes/burst/stream?cursor=${encodeURIComponent(cursor)}`),
    );
    try {
      await Promise.all(resumed.map((reader) => reader.opened));
      for (const [i, reader] of resumed.entries()) {
        const before = cursors[i]?.seqs ?? [];
        await reader.until(() => before.length + reader.messages().length >= stored.length, 15_000);
        const all = [...before, ...reader.messages().map((message) => message.seq as number)];
        expect(all, `reader ${i}`).toEqual(stored);
      }
    } finally {
      for (const reader of resumed) reader.close();
    }
    expect(acknowledged.size).toBeGreaterThan(0);
  }, 90_000);
});
