import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createHub } from "../src/core/hub.js";
import { createMemorySchedule } from "../src/store/memory-schedule.js";
import { createRedisSchedule } from "../src/store/redis-schedule.js";
import { createRedisStore } from "../src/store/redis-store.js";
import { type HeraldChild, spawnHerald } from "./helpers/child.js";
import { StreamClient, type WireMessage } from "./helpers/clients.js";
import { deleteKeys, testRedis, uniquePrefix } from "./helpers/redis.js";
import { until } from "./helpers/until.js";

/** How long a due message may take to arrive, restarts and polls included, on a loaded machine. */
const WAIT_MS = 20_000;
const TEST_TIMEOUT_MS = 60_000;

interface ScheduledAnswer {
  id: string;
  mailbox: string;
  scheduledFor: string;
}

const children: HeraldChild[] = [];
async function start(args: string[]): Promise<HeraldChild> {
  const child = await spawnHerald(args, { HERALD_LOG_LEVEL: "warn" });
  children.push(child);
  return child;
}
async function kill(child: HeraldChild): Promise<void> {
  child.process.kill("SIGKILL");
  await child.exited;
}
afterAll(async () => {
  for (const child of children)
    if (child.process.exitCode === null && child.process.signalCode === null) await kill(child);
});

async function schedule(
  url: string,
  mailbox: string,
  query: string,
  body: string,
  headers = {},
): Promise<ScheduledAnswer> {
  const response = await fetch(`${url}/v1/mailboxes/${mailbox}/messages?${query}`, { method: "POST", body, headers });
  expect(response.status).toBe(202);
  return (await response.json()) as ScheduledAnswer;
}

async function read(url: string, mailbox: string): Promise<WireMessage[]> {
  const response = await fetch(`${url}/v1/mailboxes/${mailbox}/messages?limit=1000`);
  return ((await response.json()) as { messages: WireMessage[] }).messages;
}

async function pendingIds(url: string, mailbox: string): Promise<string[]> {
  const response = await fetch(`${url}/v1/mailboxes/${mailbox}/scheduled`);
  return ((await response.json()) as { scheduled: { id: string }[] }).scheduled.map((entry) => entry.id);
}

const sleepUntil = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms - Date.now())));

describe("scheduled delivery on SQLite", () => {
  it("keeps pending messages across a kill -9 and delivers the late ones at once on restart", {
    timeout: TEST_TIMEOUT_MS,
  }, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "herald-schedule-restart-"));
    try {
      const args = ["--store", "sqlite", "--data-dir", dataDir];
      const first = await start(args);
      const mailbox = "restart:box";
      const due = await schedule(first.url, mailbox, "delay=1", "due while down");
      const far = await schedule(first.url, mailbox, "delay=1h", "still waiting");
      await kill(first);
      // Down past the due time: nothing could deliver it.
      await sleepUntil(Date.parse(due.scheduledFor) + 500);

      const second = await start(args);
      await until(async () => (await read(second.url, mailbox)).length > 0, "the late message", WAIT_MS);
      const [delivered, ...rest] = await read(second.url, mailbox);
      expect(rest).toEqual([]);
      expect(delivered).toMatchObject({ id: due.id, seq: 1, body: "due while down" });
      expect(Date.parse(delivered?.time as string)).toBeGreaterThan(Date.parse(due.scheduledFor));
      expect(await pendingIds(second.url, mailbox)).toEqual([far.id]);
      await kill(second);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

const redis = await testRedis();

// Skips only on a machine with neither REDIS_URL, a Redis on 127.0.0.1:6379, nor redis-server;
// .ci/run sets HERALD_REQUIRE_REDIS=1, which makes testRedis() throw instead, so CI never skips.
if ("reason" in redis) {
  console.warn(`Redis scheduled delivery tests skipped: ${redis.reason}`);
  describe.skip(`scheduled delivery on Redis (skipped: ${redis.reason})`, () => {
    it("needs Redis", () => {});
  });
} else {
  const { url } = redis;
  const prefixes: string[] = [];
  afterAll(async () => {
    for (const prefix of prefixes) await deleteKeys(url, prefix).catch(() => {});
    await redis.stop();
  });
  const redisArgs = (prefix: string) => ["--store", "redis", "--redis-url", url, "--redis-prefix", prefix];

  describe("scheduled delivery on Redis, two nodes", () => {
    it("delivers exactly once on the other node after the accepting node is killed", {
      timeout: TEST_TIMEOUT_MS,
    }, async () => {
      const prefix = uniquePrefix("schedule-nodes");
      prefixes.push(prefix);
      const [a, b] = await Promise.all([start(redisArgs(prefix)), start(redisArgs(prefix))]);
      const mailbox = "nodes:box";
      const stream = new StreamClient(`${b.url}/v1/mailboxes/${mailbox}/stream`);
      await stream.opened;
      const keyed = await schedule(a.url, mailbox, "delay=3", "keyed", { "idempotency-key": "job-1" });
      const plain = await schedule(a.url, mailbox, "delay=3", "plain");
      expect(await pendingIds(b.url, mailbox)).toEqual([keyed.id, plain.id]);
      await kill(a);

      await stream.untilMessages(2, WAIT_MS);
      expect(stream.messages().map((m) => [m.seq, m.id, m.body])).toEqual([
        [1, keyed.id, "keyed"],
        [2, plain.id, "plain"],
      ]);
      await until(async () => (await pendingIds(b.url, mailbox)).length === 0, "the entries completed", WAIT_MS);
      // Past another poll or two of B: nothing is delivered again.
      await new Promise((resolve) => setTimeout(resolve, 2500));
      expect((await read(b.url, mailbox)).map((m) => m.id)).toEqual([keyed.id, plain.id]);
      expect(stream.messages().length).toBe(2);
      stream.close();
    });

    it("re-claims a delivery whose claimer died after appending, and stores it once", {
      timeout: TEST_TIMEOUT_MS,
    }, async () => {
      const prefix = uniquePrefix("schedule-lease");
      prefixes.push(prefix);
      // A node that claims, appends and dies before completing: the store and schedule of this process.
      const store = createRedisStore({ url, keyPrefix: prefix, maxMessagesPerMailbox: 1000 });
      const schedule = createRedisSchedule({ url, keyPrefix: prefix });
      const hub = createHub({
        store,
        defaultTtlSeconds: 3600,
        maxQueueBytes: 1 << 20,
        // Its own scheduler must not take part: it stands for a node whose process is gone.
        scheduleStore: createMemorySchedule(),
      });
      try {
        await Promise.all([store.whenReady(5000), schedule.whenReady(5000)]);
        const mailbox = "lease:box";
        const now = Date.now();
        const [added] = await schedule.add(
          [{ id: "lease-entry-1", mailbox, dueAtMs: now - 1, fieldsJson: '{"body":"once"}', ttlMs: 3_600_000 }],
          { maxPerMailbox: 10, maxTotal: 10 },
        );
        expect(added?.status).toBe("scheduled");
        const claimed = await schedule.claim(now, now + 1500, 10);
        const [appended] = await hub.publishing.deliverDue(claimed);
        expect(appended?.status).toBe("stored");

        const node = await start(redisArgs(prefix));
        await until(async () => (await pendingIds(node.url, mailbox)).length === 0, "the re-claimed entry", WAIT_MS);
        const messages = await read(node.url, mailbox);
        expect(messages.map((m) => [m.seq, m.id, m.body])).toEqual([[1, "lease-entry-1", "once"]]);
      } finally {
        hub.close();
        await schedule.close();
        await store.close();
      }
    });
  });
}
