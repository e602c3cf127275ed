import { afterAll, describe, expect, it } from "vitest";
import type { RunningHerald } from "../src/server.js";
import { createRedisStore } from "../src/store/redis-store.js";
import { type HeraldChild, spawnHerald } from "./helpers/child.js";
import { publish, readAfter, StreamClient, type WireMessage } from "./helpers/clients.js";
import { deleteKeys, testRedis, uniquePrefix } from "./helpers/redis.js";
import { startTestServer } from "./helpers/server.js";
import { until } from "./helpers/until.js";

const redis = await testRedis();
/** Messages published before node A dies, and in all. */
const BEFORE_KILL = 30;
/** Published concurrently with the kill; then the rest is published once the subscriber is on node C. */
const DURING_KILL = 100;
const TOTAL = 140;
/** Node A is killed once the subscriber holds this many messages. */
const KILL_AFTER_RECEIVED = 50;
const WAIT_MS = 20_000;
/** Messages each of three in-process nodes publishes concurrently with the others. */
const PER_NODE = 40;
/** Messages published past a stalled subscriber, and their size: far more than its queue and socket buffers. */
const STALLED_BURST = 400;
const STALLED_BURST_BYTES = 20 * 1024;

// Skips only on a machine with neither REDIS_URL, a Redis on 127.0.0.1:6379, nor redis-server;
// .ci/run sets HERALD_REQUIRE_REDIS=1, which makes testRedis() throw instead, so CI never skips.
if ("reason" in redis) {
  console.warn(`Redis multi-node test skipped: ${redis.reason}`);
  describe.skip(`Herald on Redis, three nodes (skipped: ${redis.reason})`, () => {
    it("needs Redis", () => {});
  });
} else {
  const prefix = uniquePrefix("multinode");
  const nodes: HeraldChild[] = [];
  const running: RunningHerald[] = [];
  const start = async () => {
    const node = await spawnHerald(["--store", "redis", "--redis-url", redis.url, "--redis-prefix", prefix]);
    nodes.push(node);
    return node;
  };
  afterAll(async () => {
    for (const node of nodes) {
      node.process.kill("SIGKILL");
      await node.exited;
    }
    for (const server of running) await server.shutdown();
    await deleteKeys(redis.url, prefix);
    await redis.stop();
  });

  describe("Herald on Redis, three nodes", () => {
    it("delivers across nodes and resumes exactly once on another node after one dies", async () => {
      const [a, b, c] = await Promise.all([start(), start(), start()]);
      for (const node of [a, b, c]) {
        const ready = await fetch(`${node.url}/readyz`);
        expect(ready.status).toBe(200);
      }
      const mailbox = "room:multinode";
      const first = new StreamClient(`${a.url}/v1/mailboxes/${mailbox}/stream`);
      await first.opened;
      expect(first.status).toBe(200);

      const acked: WireMessage[] = [];
      for (let n = 1; n <= BEFORE_KILL; n++) acked.push(await publish(b.url, mailbox, { body: `m${n}` }));
      // Published on B, received on A.
      await first.untilMessages(BEFORE_KILL, WAIT_MS);

      // Keep publishing on B (and C) while A is killed mid-stream.
      const publishing = (async () => {
        for (let n = BEFORE_KILL + 1; n <= DURING_KILL; n++) {
          acked.push(await publish(n % 2 === 0 ? b.url : c.url, mailbox, { body: `m${n}` }));
        }
      })();
      await first.untilMessages(KILL_AFTER_RECEIVED, WAIT_MS);
      a.process.kill("SIGKILL");
      await a.exited;
      await first.closed;
      const beforeKill = first.messages();
      const cursor = beforeKill.at(-1)?.cursor as string;
      expect(beforeKill.length).toBeGreaterThanOrEqual(KILL_AFTER_RECEIVED);

      const second = new StreamClient(`${c.url}/v1/mailboxes/${mailbox}/stream?cursor=${encodeURIComponent(cursor)}`);
      await publishing;
      await second.untilMessages(DURING_KILL - beforeKill.length, WAIT_MS);
      // Live delivery on C of what is published on B after the resume.
      for (let n = DURING_KILL + 1; n <= TOTAL; n++) acked.push(await publish(b.url, mailbox, { body: `m${n}` }));
      await second.untilMessages(TOTAL - beforeKill.length, WAIT_MS);
      // Anything extra would show up as a repeat; give it a moment to arrive.
      await new Promise((resolve) => setTimeout(resolve, 300));
      second.close();

      const received = [...beforeKill, ...second.messages()];
      expect(received.map((m) => m.seq)).toEqual(Array.from({ length: TOTAL }, (_, i) => i + 1));
      // Publishes were sequential, so seq order is publish order.
      expect(received.map((m) => m.id)).toEqual(acked.map((m) => m.id));
      expect(received.map((m) => m.body)).toEqual(acked.map((_, i) => `m${i + 1}`));
      expect(second.lines.some((line) => line.includes('"type":"gap"'))).toBe(false);
    });

    it("orders concurrent publishes on every node the same for subscribers on every node", async () => {
      const servers = await Promise.all(
        [0, 1, 2].map(async () => {
          const store = createRedisStore({ url: redis.url, keyPrefix: prefix, maxMessagesPerMailbox: 1000 });
          await store.whenReady(5000);
          const server = await startTestServer({ customStore: store });
          running.push(server);
          return server;
        }),
      );
      const mailbox = "room:concurrent";
      // SSE and ndjson subscribers on every node, and one that subscribes to two mailboxes.
      const clients = servers.flatMap((server) => [
        new StreamClient(`${server.url}/v1/mailboxes/${mailbox}/events`),
        new StreamClient(`${server.url}/v1/mailboxes/${mailbox}/stream`),
        new StreamClient(`${server.url}/v1/stream?mailbox=${mailbox}&mailbox=room:quiet`),
      ]);
      await Promise.all(clients.map((client) => client.opened));
      // Each node publishes its own series at the same time as the others.
      const published = (
        await Promise.all(
          servers.map(async (server, node) => {
            const mine: WireMessage[] = [];
            for (let n = 1; n <= PER_NODE; n++) mine.push(await publish(server.url, mailbox, { body: `${node}:${n}` }));
            return mine;
          }),
        )
      ).flat();
      const bySeq = [...published].sort((x, y) => x.seq - y.seq);
      expect(bySeq.map((m) => m.seq)).toEqual(Array.from({ length: 3 * PER_NODE }, (_, i) => i + 1));
      for (const client of clients) {
        const received = await client.untilMessages(bySeq.length, WAIT_MS);
        expect(received.map((m) => m.id)).toEqual(bySeq.map((m) => m.id));
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
      for (const client of clients) {
        expect(client.messages()).toHaveLength(bySeq.length);
        client.close();
      }
    });

    it("cuts a subscriber that stops reading while another node publishes, and it resumes exactly", async () => {
      // Another node's appends reach this one's subscribers through the store-paced catch-up.
      const config = { maxQueueBytes: 64 * 1024, maxBodyBytes: 256 * 1024, sendTimeoutSeconds: 0.3 };
      const [reading, publishing] = (await Promise.all(
        [0, 1].map(async () => {
          const store = createRedisStore({ url: redis.url, keyPrefix: prefix, maxMessagesPerMailbox: 1000 });
          await store.whenReady(5000);
          const server = await startTestServer({ customStore: store, config });
          running.push(server);
          return server;
        }),
      )) as [RunningHerald, RunningHerald];
      const mailbox = "room:stalled";
      const stalled = new StreamClient(`${reading.url}/v1/mailboxes/${mailbox}/events`);
      await stalled.opened;
      for (let n = 1; n <= 3; n++) await publish(publishing.url, mailbox, { body: `m${n}` });
      await stalled.untilMessages(3, WAIT_MS);
      stalled.pause();
      // Both nodes publish at once, so this node often sees the other's appends out of turn and
      // serves them by the paced catch-up from the store, where the stall must be noticed too.
      const big = "b".repeat(STALLED_BURST_BYTES);
      await Promise.all(
        [publishing, reading].map(async (node) => {
          for (let n = 0; n < STALLED_BURST / 2; n++) await publish(node.url, mailbox, { body: big });
        }),
      );
      const total = 3 + STALLED_BURST;
      await until(() => reading.hub.counters.slowConsumersCut === 1, "the stalled subscriber to be cut", WAIT_MS);
      await until(() => reading.connections.count("sse") === 0, "its stream to close");
      const last = stalled.messages().at(-1) as WireMessage;
      stalled.close();
      // One read, not a stream: a test process busy parsing megabytes could itself look stalled to a 0.3 s timeout.
      const rest = await readAfter(publishing.url, mailbox, last.cursor);
      expect(rest.map((m) => m.seq)).toEqual(Array.from({ length: total - last.seq }, (_, i) => last.seq + 1 + i));
    });
  });
}
