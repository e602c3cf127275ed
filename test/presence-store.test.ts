import { Redis } from "ioredis";
import { nanoid } from "nanoid";
import { afterAll, describe, expect, it } from "vitest";
import { createLocalPresence } from "../src/store/local-presence.js";
import type { PresenceChange, PresenceStore } from "../src/store/presence-store.js";
import { RedisKeys } from "../src/store/redis-keys.js";
import { createRedisPresence } from "../src/store/redis-presence.js";
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
    const opened: PresenceStore[] = [];
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
