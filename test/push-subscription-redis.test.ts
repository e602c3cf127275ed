import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import type { PushSubscriptionStore } from "../src/store/push-subscription-store.js";
import { createRedisPushSubscriptions, type RedisPushSubscriptions } from "../src/store/redis-push-subscriptions.js";
import {
  deleteKeys,
  hasRedisCli,
  hasRedisServerBinary,
  skipBecause,
  startRedisCluster,
  testRedis,
  uniquePrefix,
} from "./helpers/redis.js";
import {
  describePushSubscriptionContract,
  pushDraft,
  pushEndpoint,
  ROOMY,
  saved,
  sharedPushSubscriptions,
  T,
  targetOf,
} from "./push-subscription-contract.js";

const redis = await testRedis();

// Skips only on a machine with neither REDIS_URL, a Redis on 127.0.0.1:6379, nor redis-server;
// .ci/run sets HERALD_REQUIRE_REDIS=1, which makes testRedis() throw instead, so CI never skips.
if ("reason" in redis) {
  console.warn(`Redis push subscription tests skipped: ${redis.reason}`);
  describe.skip(`Redis push subscriptions (skipped: ${redis.reason})`, () => {
    it("needs Redis", () => {});
  });
} else {
  const { url } = redis;
  const prefixes: string[] = [];
  const open = async (prefix: string): Promise<RedisPushSubscriptions> => {
    const store = createRedisPushSubscriptions({ url, keyPrefix: prefix });
    expect(await store.whenReady(5000)).toBe(true);
    return store;
  };
  const fresh = (label: string) => {
    const prefix = uniquePrefix(label);
    prefixes.push(prefix);
    return prefix;
  };
  afterAll(async () => {
    for (const prefix of prefixes) await deleteKeys(url, prefix).catch(() => {});
    await redis.stop();
  });

  describePushSubscriptionContract("redis", async () => {
    const prefix = fresh("push");
    return sharedPushSubscriptions(
      () => open(prefix),
      () => deleteKeys(url, prefix),
    );
  });

  describe("redis push subscription specifics", () => {
    const withStores = async (
      label: string,
      work: (a: PushSubscriptionStore, b: PushSubscriptionStore, prefix: string) => Promise<void>,
    ) => {
      const prefix = fresh(label);
      const [a, b] = [await open(prefix), await open(prefix)];
      try {
        await work(a, b, prefix);
      } finally {
        await a.close();
        await b.close();
      }
    };

    it("shows each node what another saved and removed on the same prefix", async () => {
      await withStores("push-nodes", async (a, b) => {
        const subscription = saved(await a.save(pushDraft(pushEndpoint(), "alice", ["n"]), ROOMY, Date.now()));
        expect(await b.get(subscription.id)).toEqual(subscription);
        expect(await b.targets("n", Date.now())).toEqual([targetOf(subscription)]);
        expect(await b.count()).toBe(1);
        const update = await b.save(pushDraft(subscription.endpoint, "alice", ["o"]), ROOMY, Date.now());
        expect(update).toMatchObject({ status: "updated", subscription: { id: subscription.id } });
        expect(await a.targets("n", Date.now())).toEqual([]);
        expect(await b.remove(subscription.id, subscription.endpoint)).toBe(true);
        expect(await a.get(subscription.id)).toBeUndefined();
        expect(await a.count()).toBe(0);
      });
    });

    it("keeps every key under the one hash tag {#push}, and no key naming a gone id after churn", async () => {
      await withStores("push-tag", async (a, b, prefix) => {
        const endpoints = [pushEndpoint(), pushEndpoint(), pushEndpoint()];
        const owners = ["alice", "bob"];
        await Promise.all(
          Array.from({ length: 30 }, (_, i) =>
            (i % 2 ? a : b).save(
              pushDraft(endpoints[i % 3] as string, owners[i % 2] as string, [`m${i % 4}`, `m${(i + 1) % 4}`]),
              ROOMY,
              Date.now(),
            ),
          ),
        );
        const live = await Promise.all(["m0", "m1", "m2", "m3"].map((mailbox) => a.targets(mailbox, Date.now())));
        const ids = new Set(live.flat().map((target) => target.id));
        expect(ids.size).toBe(3);
        const tag = `${prefix}{#push}`;
        const client = new Redis(url);
        try {
          const keys = (await client.keys(`${prefix}*`)).sort();
          for (const key of keys) expect(key.startsWith(`${prefix}{#push}:`)).toBe(true);
          const sets = keys.filter((key) => key.includes(":mailbox:"));
          const zsets = [`${tag}:expiry`, ...keys.filter((key) => key.includes(":owner:"))];
          expect(sets.length).toBeGreaterThan(0);
          for (const key of sets) for (const id of await client.smembers(key)) expect(ids.has(id)).toBe(true);
          for (const key of zsets) for (const id of await client.zrange(key, 0, -1)) expect(ids.has(id)).toBe(true);
          const owned = await Promise.all(owners.map((owner) => client.zcard(`${tag}:owner:${owner}`)));
          expect(owned.reduce((sum, n) => sum + n, 0)).toBe(3);
          expect(await client.zcard(`${tag}:expiry`)).toBe(3);
          expect((await client.hkeys(`${tag}:targets`)).sort()).toEqual([...ids].sort());
          expect((await client.hkeys(`${tag}:subscriptions`)).sort()).toEqual([...ids].sort());
          expect(await client.hlen(`${tag}:endpoints`)).toBe(3);
        } finally {
          client.disconnect();
        }
      });
    });

    it("never prunes an endpoint another node renews meanwhile, and prunes every one nobody renewed", async () => {
      await withStores("push-prune-race", async (a, b) => {
        const endpoints = Array.from({ length: 40 }, pushEndpoint);
        for (const endpoint of endpoints) await a.save(pushDraft(endpoint, "sub:alice", ["p"], T + 100), ROOMY, T);
        const renewing = endpoints.filter((_, i) => i % 2 === 0);
        const [pruned, ...renewals] = await Promise.all([
          a.prune(T + 1000, 100),
          ...renewing.map((endpoint) => b.save(pushDraft(endpoint, "sub:alice", ["p"]), ROOMY, T + 1000)),
        ]);
        // A renewal that came after its endpoint was pruned created it again.
        const recreated = renewals.filter((result) => typeof result === "object" && result.status === "created");
        expect(pruned).toBe(endpoints.length - renewing.length + recreated.length);
        const left = await a.targets("p", T + 1000);
        expect(left.map((target) => target.endpoint).sort()).toEqual([...renewing].sort());
        expect(await a.count()).toBe(renewing.length);
        expect(await a.prune(T + 1000, 100)).toBe(0);
      });
    });
  });
}

/** On a real (local, three-master) Redis Cluster: every script touches one slot. */
const canRunCluster = hasRedisServerBinary() && hasRedisCli();
if (!canRunCluster) {
  console.warn(
    `Redis Cluster push subscription tests skipped: ${skipBecause("redis-server or redis-cli missing").reason}`,
  );
}

const clusterDir = canRunCluster ? await mkdtemp(join(tmpdir(), "herald-push-cluster-")) : "";
const cluster = canRunCluster ? await startRedisCluster(clusterDir) : undefined;
afterAll(async () => {
  await cluster?.stop();
  if (clusterDir) await rm(clusterDir, { recursive: true, force: true });
});

describe.runIf(canRunCluster)("Redis push subscriptions on a Redis Cluster", () => {
  const url = cluster?.url as string;
  const open = async (prefix: string): Promise<RedisPushSubscriptions> => {
    const store = createRedisPushSubscriptions({ url, keyPrefix: prefix });
    await store.whenReady(10_000);
    return store;
  };
  // The cluster is thrown away after the run, keys and all.
  describePushSubscriptionContract("redis cluster", async () => {
    const prefix = uniquePrefix("push-cluster");
    return sharedPushSubscriptions(() => open(prefix));
  });
});
