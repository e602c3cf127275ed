import { Redis } from "ioredis";
import { nanoid } from "nanoid";
import { afterAll, describe, expect, it } from "vitest";
import { Presence } from "../src/core/presence.js";
import { createLocalPresence } from "../src/store/local-presence.js";
import type { PresenceChange } from "../src/store/presence-store.js";
import { RedisKeys } from "../src/store/redis-keys.js";
import { createRedisPresence, type RedisPresence } from "../src/store/redis-presence.js";
import { deleteKeys, testRedis, uniquePrefix } from "./helpers/redis.js";
import { describePresenceContract } from "./presence-contract.js";

describePresenceContract("local", async () => {
  const store = createLocalPresence();
  return { node: async () => store, multiNode: false, cleanup: () => store.close() };
});

const redis = await testRedis();

// Skips only on a machine with neither REDIS_URL, a Redis on 127.0.0.1:6379, nor redis-server;
// .ci/run sets HERALD_REQUIRE_REDIS=1, which makes testRedis() throw instead, so CI never skips.
if ("reason" in redis) {
  console.warn(`Redis presence tests skipped: ${redis.reason}`);
  describe.skip(`Redis presence (skipped: ${redis.reason})`, () => {
    it("needs Redis", () => {});
  });
} else {
  const { url } = redis;
  afterAll(() => redis.stop());

  const redisNodes = (nodeTimeoutMs?: number) => {
    const prefix = uniquePrefix("presence");
    const opened: RedisPresence[] = [];
    return {
      prefix,
      multiNode: true,
      node: async () => {
        const store = createRedisPresence({ url, keyPrefix: prefix, ...(nodeTimeoutMs ? { nodeTimeoutMs } : {}) });
        opened.push(store);
        expect(await store.whenReady(5000)).toBe(true);
        return store;
      },
      cleanup: async () => {
        for (const store of opened) await store.close();
        await deleteKeys(url, prefix);
      },
    };
  };

  describePresenceContract("redis", async () => redisNodes());

  describe("Redis presence, when Redis drops a connection or a write's answer", () => {
    it("asks its watchers to look again after the subscriber reconnects, and they catch up", async () => {
      const nodes = redisNodes();
      const [a, b] = [await nodes.node(), await nodes.node()];
      const room = `room-${nanoid(6)}`;
      const presence = new Presence({ store: a, maxMembers: 100, longPollGraceMs: 1000, onError: () => {} });
      const events: string[] = [];
      const unwatch = await presence.watch(room, { presence: (batch) => events.push(...batch) });
      let resyncs = 0;
      a.onResync(() => {
        resyncs += 1;
      });
      const raw = new Redis(url);
      // A's subscriber is cut; what B reports meanwhile may be published before A listens again.
      const clients = String(await raw.client("LIST"));
      const line = clients.split("\n").find((l) => l.includes(`name=herald-presence-${a.nodeId}:subscriber`));
      const id = /id=(\d+)/.exec(line ?? "")?.[1];
      expect(id).toBeDefined();
      await raw.client("KILL", "ID", id as string);
      await b.report(room, "bob", { connections: 1, sinceMs: Date.now(), info: undefined });
      await expect.poll(() => resyncs, { timeout: 5000 }).toBeGreaterThanOrEqual(1);
      await expect.poll(() => events.some((event) => event.includes('"bob"')), { timeout: 5000 }).toBe(true);
      unwatch();
      presence.close();
      raw.disconnect();
      await nodes.cleanup();
    });

    it("withdraws on close what Redis lists for the node, even what it no longer remembers writing", async () => {
      const nodes = redisNodes();
      const a = await nodes.node();
      const keys = new RedisKeys(nodes.prefix);
      const room = `room-${nanoid(6)}`;
      await a.report(room, "alice", { connections: 1, sinceMs: Date.now(), info: undefined });
      const raw = new Redis(url);
      const node = a.nodeId;
      // A write that landed although its answer was lost: in Redis, not in the node's memory.
      await raw.hset(keys.presence(room), "carl", JSON.stringify({ [node as string]: { c: 1, s: Date.now() } }));
      await raw.sadd(keys.presenceNode(node as string), `${room}\ncarl`);
      await a.close();
      expect(await raw.hkeys(keys.presence(room))).toEqual(["#v"]);
      expect(await raw.exists(keys.presenceNode(node as string))).toBe(0);
      raw.disconnect();
      await nodes.cleanup();
    });
  });

  describe("Redis presence, a node that dies", () => {
    it("has its readers withdrawn by a live node within the timeout, heard as leaves", async () => {
      const timeoutMs = 600;
      const nodes = redisNodes(timeoutMs);
      const live = await nodes.node();
      const keys = new RedisKeys(nodes.prefix);
      const room = `room-${nanoid(6)}`;
      const heard: PresenceChange[] = [];
      live.watch((change) => {
        if (change.mailbox === room) heard.push(change);
      });
      // A node that reported "ghost" and then stopped beating (killed), written as it would have.
      const raw = new Redis(url);
      const ghost = `ghost-${nanoid(6)}`;
      await raw.zadd(keys.presenceNodes, Date.now() - 60_000, ghost);
      await raw.hset(keys.presence(room), "gina", JSON.stringify({ [ghost]: { c: 1, s: Date.now() } }));
      await raw.sadd(keys.presenceNode(ghost), `${room}\ngina`);
      const started = Date.now();
      await expect.poll(() => heard.some((change) => change.member === undefined), { timeout: 5000 }).toBe(true);
      expect(Date.now() - started).toBeLessThan(timeoutMs * 3);
      expect((await live.snapshot(room)).members).toEqual([]);
      expect(await raw.exists(keys.presenceNode(ghost))).toBe(0);
      expect(await raw.zscore(keys.presenceNodes, ghost)).toBeNull();
      raw.disconnect();
      await nodes.cleanup();
    });
  });
}
