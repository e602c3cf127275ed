import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createRedisStore, type RedisStore } from "../src/store/redis-store.js";
import { hasRedisCli, hasRedisServerBinary, skipBecause, startRedisCluster, uniquePrefix } from "./helpers/redis.js";
import { describeStoreContract, draft } from "./store-contract.js";

/**
 * The Redis store on a real (local, three-master) Redis Cluster: the same
 * contract as everywhere, plus a cross-node wake-up through cluster pub/sub.
 */
const canRun = hasRedisServerBinary() && hasRedisCli();
if (!canRun) console.warn(`Redis Cluster tests skipped: ${skipBecause("redis-server or redis-cli missing").reason}`);

const CHECK_INTERVAL_MS = 100;
const NO_CHECK_MS = 60 * 60_000;
const dir = canRun ? await mkdtemp(join(tmpdir(), "herald-redis-cluster-")) : "";
const cluster = canRun ? await startRedisCluster(dir) : undefined;
afterAll(async () => {
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe.runIf(canRun)("Redis store on a Redis Cluster", () => {
  const url = cluster?.url as string;
  const opened: RedisStore[] = [];
  const open = async (prefix: string, checkIntervalMs = CHECK_INTERVAL_MS): Promise<RedisStore> => {
    const store = createRedisStore({ url, keyPrefix: prefix, maxMessagesPerMailbox: 1000, checkIntervalMs });
    opened.push(store);
    expect(await store.whenReady(10_000)).toBe(true);
    return store;
  };
  afterAll(async () => {
    for (const store of opened) await store.close();
  });

  describeStoreContract(
    "redis cluster",
    async (options) => {
      const store = createRedisStore({
        url,
        keyPrefix: uniquePrefix("cluster"),
        maxMessagesPerMailbox: options.maxMessagesPerMailbox,
        checkIntervalMs: CHECK_INTERVAL_MS,
        onListenerError: options.onListenerError,
      });
      await store.whenReady(10_000);
      // The cluster is thrown away after the run, keys and all.
      return { store, cleanup: () => store.close() };
    },
    { byteBudget: false, exactStats: false },
  );

  it("wakes another node about mailboxes on every shard", async () => {
    const prefix = uniquePrefix("cluster-nodes");
    // No periodic check within the test: only cluster pub/sub can tell b.
    const [a, b] = [await open(prefix, NO_CHECK_MS), await open(prefix, NO_CHECK_MS)];
    const mailboxes = Array.from({ length: 12 }, (_, i) => `room:${i}`);
    for (const mailbox of mailboxes) await b.read(mailbox, { epoch: "", seq: 0 }, 10);
    const heard = new Map<string, number[]>();
    b.watch((mailbox, messages) => {
      heard.set(mailbox, [...(heard.get(mailbox) ?? []), ...(messages ?? []).map((m) => m.seq)]);
    });
    // One batch over many slots: split per mailbox on a Cluster, still numbered per mailbox.
    const results = await a.append(
      mailboxes.flatMap((mailbox) => [
        { mailbox, draft: draft({ n: 1 }) },
        { mailbox, draft: draft({ n: 2 }) },
      ]),
    );
    expect(results.map((r) => [r.message.mailbox, r.message.seq])).toEqual(
      mailboxes.flatMap((mailbox) => [
        [mailbox, 1],
        [mailbox, 2],
      ]),
    );
    const deadline = Date.now() + 10_000;
    while (mailboxes.some((mailbox) => (heard.get(mailbox) ?? []).length < 2) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    for (const mailbox of mailboxes) expect(heard.get(mailbox)).toEqual([1, 2]);
  });
});
