import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type HeraldChild, spawnHerald } from "./helpers/child.js";
import { StreamClient, type WireMessage } from "./helpers/clients.js";
import { freePort, hasRedisServerBinary, RedisServerProcess, skipBecause } from "./helpers/redis.js";

/** Acknowledged publishes before Redis is killed, and after it is back. */
const BEFORE_OUTAGE = 40;
const AFTER_OUTAGE = 40;
/** Publish attempts answered 503 before Redis is restarted. */
const REFUSED_BEFORE_RESTART = 5;
/** Each phase's limit; the whole test gets TEST_TIMEOUT_MS. */
const WAIT_MS = 20_000;
const TEST_TIMEOUT_MS = 90_000;
const MAX_READ = 1000;

interface Attempt {
  readonly n: number;
  readonly status: number;
  readonly message?: WireMessage;
}

async function attempt(base: string, mailbox: string, n: number): Promise<Attempt> {
  try {
    const response = await fetch(`${base}/v1/mailboxes/${mailbox}/messages`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ body: `m${n}` }),
    });
    const text = await response.text();
    return response.status === 201
      ? { n, status: 201, message: JSON.parse(text) as WireMessage }
      : { n, status: response.status };
  } catch {
    return { n, status: 0 };
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

if (!hasRedisServerBinary()) {
  // It restarts its own Redis, so REDIS_URL cannot stand in for the binary.
  console.warn(`Redis restart test skipped: ${skipBecause("no redis-server binary on PATH").reason}`);
}

describe.runIf(hasRedisServerBinary())("Herald on Redis when Redis restarts", () => {
  const nodes: HeraldChild[] = [];
  let server: RedisServerProcess | undefined;
  let dir: string | undefined;
  afterAll(async () => {
    for (const node of nodes) {
      node.process.kill("SIGKILL");
      await node.exited;
    }
    await server?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it(
    "loses no acknowledged message, answers 503 while down and recovers by itself",
    async () => {
      dir = await mkdtemp(join(tmpdir(), "herald-redis-restart-"));
      server = new RedisServerProcess({ port: await freePort(), dir, appendonly: true });
      await server.start();
      const args = ["--store", "redis", "--redis-url", server.url, "--redis-prefix", "restart:"];
      const [publisher, reader] = await Promise.all([spawnHerald(args), spawnHerald(args)]);
      nodes.push(publisher, reader);
      const mailbox = "alerts";
      const subscriber = new StreamClient(`${reader.url}/v1/mailboxes/${mailbox}/stream`);
      await subscriber.opened;

      const attempts: Attempt[] = [];
      let n = 0;
      const publishUntil = async (done: () => boolean, what: string) => {
        const deadline = Date.now() + WAIT_MS;
        while (!done()) {
          if (Date.now() > deadline) {
            throw new Error(`timed out waiting for ${what}; statuses: ${attempts.map((a) => a.status).join(",")}`);
          }
          attempts.push(await attempt(publisher.url, mailbox, ++n));
          if (attempts.at(-1)?.status !== 201) await sleep(20);
        }
      };
      const acked = () => attempts.filter((a) => a.status === 201);
      const refusedSince = (from: number) => attempts.slice(from).filter((a) => a.status === 503).length;

      await publishUntil(() => acked().length >= BEFORE_OUTAGE, "publishes before the outage");
      await server.stop("SIGKILL");
      const outageStart = attempts.length;
      await publishUntil(() => refusedSince(outageStart) >= REFUSED_BEFORE_RESTART, "503s during the outage");
      expect((await fetch(`${publisher.url}/readyz`)).status).toBe(503);
      expect((await fetch(`${reader.url}/readyz`)).status).toBe(503);
      const readWhileDown = await fetch(`${reader.url}/v1/mailboxes/${mailbox}/messages`);
      expect(readWhileDown.status).toBe(503);
      expect(((await readWhileDown.json()) as { error: { code: string } }).error.code).toBe("store_unavailable");
      // The subscriber's stream stays open through the outage.
      expect(subscriber.ended).toBe(false);

      await server.start();
      const target = acked().length + AFTER_OUTAGE;
      await publishUntil(() => acked().length >= target, "publishes after the restart");
      expect((await fetch(`${publisher.url}/readyz`)).status).toBe(200);

      // Nothing else than 201 and 503 was ever answered (0 would be a refused connection).
      expect(attempts.filter((a) => a.status !== 201 && a.status !== 503)).toEqual([]);
      const ackedIds = acked().map((a) => a.message?.id);
      const page = (await (await fetch(`${reader.url}/v1/mailboxes/${mailbox}/messages?limit=${MAX_READ}`)).json()) as {
        messages: WireMessage[];
      };
      const storedIds = page.messages.map((m) => m.id);
      // Every acknowledged message is stored, in publish order; seqs never repeat or jump.
      expect(storedIds.filter((id) => ackedIds.includes(id))).toEqual(ackedIds);
      expect(page.messages.map((m) => m.seq)).toEqual(page.messages.map((_, i) => i + 1));

      // The subscriber, on the other node, caught up by itself and saw each message once, in order.
      await subscriber.until(() => subscriber.messages().length >= page.messages.length, WAIT_MS);
      await sleep(300);
      expect(subscriber.messages().map((m) => m.id)).toEqual(storedIds);
      expect(subscriber.ended).toBe(false);
      subscriber.close();
    },
    TEST_TIMEOUT_MS,
  );
});
