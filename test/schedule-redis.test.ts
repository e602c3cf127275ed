import { afterAll, describe, expect, it } from "vitest";
import { createRedisSchedule, type RedisSchedule } from "../src/store/redis-schedule.js";
import { deleteKeys, testRedis, uniquePrefix } from "./helpers/redis.js";
import { describeScheduleContract, scheduledDraft, sharedSchedule } from "./schedule-contract.js";

const redis = await testRedis();

// Skips only on a machine with neither REDIS_URL, a Redis on 127.0.0.1:6379, nor redis-server;
// .ci/run sets HERALD_REQUIRE_REDIS=1, which makes testRedis() throw instead, so CI never skips.
if ("reason" in redis) {
  console.warn(`Redis schedule tests skipped: ${redis.reason}`);
  describe.skip(`Redis schedule (skipped: ${redis.reason})`, () => {
    it("needs Redis", () => {});
  });
} else {
  const { url } = redis;
  const prefixes: string[] = [];
  const open = async (prefix: string): Promise<RedisSchedule> => {
    const store = createRedisSchedule({ url, keyPrefix: prefix });
    expect(await store.whenReady(5000)).toBe(true);
    return store;
  };
  afterAll(async () => {
    for (const prefix of prefixes) await deleteKeys(url, prefix).catch(() => {});
    await redis.stop();
  });

  describeScheduleContract("redis", async () => {
    const prefix = uniquePrefix("schedule");
    prefixes.push(prefix);
    return sharedSchedule(
      () => open(prefix),
      () => deleteKeys(url, prefix),
    );
  });

  describe("redis schedule specifics", () => {
    it("keeps every key under the one hash tag {#schedule}, beside the prefix", async () => {
      const prefix = uniquePrefix("schedule-tag");
      prefixes.push(prefix);
      const store = await open(prefix);
      try {
        await store.add([scheduledDraft("room:1", Date.now() + 60_000, {}, { key: "k" })], {
          maxPerMailbox: 10,
          maxTotal: 10,
        });
        const { Redis } = await import("ioredis");
        const client = new Redis(url);
        try {
          const keys = (await client.keys(`${prefix}*`)).sort();
          expect(keys.length).toBeGreaterThan(0);
          for (const key of keys) expect(key.startsWith(`${prefix}{#schedule}:`)).toBe(true);
        } finally {
          client.disconnect();
        }
      } finally {
        await store.close();
      }
    });
  });
}
