import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DEFAULT_MAX_CONNECTIONS, resolveLimits } from "../src/auth/binding.js";
import { NO_LIMITS } from "../src/auth/limits-config.js";
import { type HeraldChild, runHerald, spawnHerald } from "./helpers/child.js";
import { bodies, publish, StreamClient } from "./helpers/clients.js";
import { deleteKeys, testRedis, uniquePrefix } from "./helpers/redis.js";
import { until } from "./helpers/until.js";

const redis = await testRedis();
/** More subscribers than workers, so the primary's round robin puts some on each. */
const SUBSCRIBERS = 6;
const MESSAGES = 30;
const WAIT_MS = 15_000;

/** One sample's value from Prometheus text, e.g. `herald_connections{transport="sse"}`. */
function sample(text: string, name: string): number {
  const line = text.split("\n").find((row) => row.startsWith(`${name} `));
  if (line === undefined) throw new Error(`${name} is missing from /metrics:\n${text.slice(0, 2000)}`);
  return Number(line.slice(name.length + 1));
}

async function scrape(url: string): Promise<string> {
  // A fresh connection each time: the round robin hands it to either worker.
  const response = await fetch(`${url}/metrics`, { headers: { Connection: "close" } });
  expect(response.status).toBe(200);
  return response.text();
}

function workerPids(child: HeraldChild): number[] {
  const match = /Workers: \d+ sharing the port \(pids ([\d, ]+)\)/.exec(child.output());
  if (!match?.[1]) throw new Error(`no worker pids in:\n${child.output()}`);
  return match[1].split(", ").map(Number);
}

describe("--workers refuses what cannot be shared", () => {
  it("needs the Redis store for more than one worker", async () => {
    for (const store of ["memory", "sqlite"]) {
      const run = await runHerald(["serve", "--port", "0", "--store", store, "--workers", "2"]);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain("--workers 2 needs --store redis");
    }
  });

  it("gives each worker its share of the configured limits, never less than one", () => {
    const configured = {
      ...NO_LIMITS,
      publish: { rate: 10, burst: 20 },
      streamsPerVisitor: 5,
      maxConnections: 1000,
      connectionsPerAddress: 1,
    };
    const shared = resolveLimits(configured, true, 4);
    expect(shared.publish).toEqual({ rate: 2.5, burst: 5 });
    expect(shared.streamsPerVisitor).toBe(1);
    expect(shared.maxConnections).toBe(250);
    expect(shared.connectionsPerAddress).toBe(1);
    expect(resolveLimits(configured, true, 1)).toEqual(resolveLimits(configured, true));
    // The default cap is sized to one process's open files, and each worker has its own.
    expect(resolveLimits(NO_LIMITS, false, 4).maxConnections).toBe(DEFAULT_MAX_CONNECTIONS);
  });

  it("says what a worker count must be", async () => {
    for (const bad of ["0", "1.5", "many", "257"]) {
      const run = await runHerald(["serve", "--port", "0", "--workers", bad]);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain("--workers must be auto or a whole number from 1 to 256");
    }
  });
});

// Skips only on a machine with neither REDIS_URL, a Redis on 127.0.0.1:6379, nor redis-server;
// .ci/run sets HERALD_REQUIRE_REDIS=1, which makes testRedis() throw instead, so CI never skips.
if ("reason" in redis) {
  console.warn(`Workers test skipped: ${redis.reason}`);
  describe.skip(`herald serve --workers 2 (skipped: ${redis.reason})`, () => {
    it("needs Redis", () => {});
  });
} else {
  const prefix = uniquePrefix("workers");
  const children: HeraldChild[] = [];
  const start = async (args: string[] = []) => {
    const child = await spawnHerald([
      "--store",
      "redis",
      "--redis-url",
      redis.url,
      "--redis-prefix",
      prefix,
      "--workers",
      "2",
      ...args,
    ]);
    children.push(child);
    // The primary prints the workers' pids last, after the banner and the limits.
    await until(() => child.output().includes("Workers: 2 sharing the port"), "the primary's last startup line");
    return child;
  };
  afterAll(async () => {
    for (const child of children) {
      child.process.kill("SIGKILL");
      await child.exited;
    }
    await deleteKeys(redis.url, prefix);
    await redis.stop();
  });

  describe("herald serve --workers 2", () => {
    it("delivers every message in order to subscribers on both workers and adds up /metrics", async () => {
      const herald = await start();
      const mailbox = "room:workers";
      const subscribers = Array.from(
        { length: SUBSCRIBERS },
        () => new StreamClient(`${herald.url}/v1/mailboxes/${mailbox}/events`),
      );
      await Promise.all(subscribers.map((subscriber) => subscriber.opened));
      for (const subscriber of subscribers) expect(subscriber.status).toBe(200);
      for (let i = 1; i <= MESSAGES; i++) await publish(herald.url, mailbox, { body: `m${i}` });
      const expected = Array.from({ length: MESSAGES }, (_, i) => `m${i + 1}`);
      for (const subscriber of subscribers) {
        expect(bodies(await subscriber.untilMessages(MESSAGES, WAIT_MS))).toEqual(expected);
      }
      // Each scrape lands on one worker; each must count what both hold (a worker alone holds about half).
      for (let i = 0; i < 4; i++) {
        const text = await scrape(herald.url);
        expect(sample(text, "herald_workers")).toBe(2);
        expect(sample(text, 'herald_connections{transport="sse"}')).toBe(SUBSCRIBERS);
        expect(sample(text, "herald_published_total")).toBe(MESSAGES);
      }
      for (const subscriber of subscribers) subscriber.close();
    });

    it("replaces a worker that dies and drains every worker on SIGTERM", async () => {
      const herald = await start();
      const [victim] = workerPids(herald);
      process.kill(victim as number, "SIGKILL");
      await until(
        () => /worker \d \(pid \d+\) exited \(signal SIGKILL\); starting another/.test(herald.output()),
        "the primary notices",
        WAIT_MS,
      );
      await until(
        async () => sample(await scrape(herald.url), "herald_workers") === 2,
        "a replacement worker answers",
        WAIT_MS,
      );
      const mailbox = "room:workers-drain";
      const subscribers = Array.from(
        { length: 4 },
        () => new StreamClient(`${herald.url}/v1/mailboxes/${mailbox}/events`),
      );
      await Promise.all(subscribers.map((subscriber) => subscriber.opened));
      await publish(herald.url, mailbox, { body: "before the drain" });
      for (const subscriber of subscribers)
        expect(bodies(await subscriber.untilMessages(1, WAIT_MS))).toEqual(["before the drain"]);
      herald.process.kill("SIGTERM");
      expect(await herald.exited).toBe(0);
      await Promise.all(subscribers.map((subscriber) => subscriber.closed));
      expect(herald.output()).toContain("SIGTERM received: draining 2 workers");
      expect(herald.output()).toContain("Herald stopped: every worker drained; exit 0");
    });

    it("splits the configured connection cap between the workers", async () => {
      const dir = mkdtempSync(join(tmpdir(), "herald-workers-"));
      const configFile = join(dir, "herald.json");
      writeFileSync(configFile, JSON.stringify({ limits: { maxConnections: 4 } }));
      const herald = await start(["--config", configFile]);
      expect(herald.output()).toContain("Limits per worker (2 workers): 2 streams and long-polls at once");
      const streams = Array.from({ length: 8 }, () => new StreamClient(`${herald.url}/v1/mailboxes/capped/events`));
      await Promise.all(streams.map((stream) => stream.opened));
      const admitted = streams.filter((stream) => stream.status === 200).length;
      const refused = streams.filter((stream) => stream.status === 503).length;
      // Both workers' shares together are the configured 4; the round robin may leave one short.
      expect(admitted).toBeLessThanOrEqual(4);
      expect(admitted).toBeGreaterThanOrEqual(2);
      expect(admitted + refused).toBe(8);
      for (const stream of streams) stream.close();
    });
  });
}
