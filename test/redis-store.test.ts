import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import type { AppendResult } from "../src/store/mailbox-store.js";
import { APPEND_SCRIPT } from "../src/store/redis-scripts.js";
import { createRedisStore, type RedisStore, type RedisStoreOptions } from "../src/store/redis-store.js";
import {
  deleteKeys,
  freePort,
  hasRedisServerBinary,
  RedisServerProcess,
  skipBecause,
  testRedis,
  uniquePrefix,
} from "./helpers/redis.js";
import { until } from "./helpers/until.js";
import { describeStoreContract, draft } from "./store-contract.js";

const redis = await testRedis();
const CHECK_INTERVAL_MS = 100;
/** How long a wake-up, a check or a reconnect may take to arrive. */
const WAIT_MS = 10_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// Skips only on a machine with neither REDIS_URL, a Redis on 127.0.0.1:6379, nor redis-server;
// .ci/run sets HERALD_REQUIRE_REDIS=1, which makes testRedis() throw instead, so CI never skips.
if ("reason" in redis) {
  console.warn(`Redis store tests skipped: ${redis.reason}`);
  describe.skip(`Redis store (skipped: ${redis.reason})`, () => {
    it("needs Redis", () => {});
  });
} else {
  const { url } = redis;
  const opened: { store: RedisStore; url: string; prefix: string }[] = [];
  const open = async (options: Partial<RedisStoreOptions> & { prefix?: string } = {}): Promise<RedisStore> => {
    const prefix = options.prefix ?? uniquePrefix("store");
    const storeUrl = options.url ?? url;
    const store = createRedisStore({
      url: storeUrl,
      keyPrefix: prefix,
      maxMessagesPerMailbox: 1000,
      checkIntervalMs: CHECK_INTERVAL_MS,
      ...options,
    });
    opened.push({ store, url: storeUrl, prefix });
    expect(await store.whenReady(5000)).toBe(true);
    return store;
  };
  afterAll(async () => {
    for (const { store, url: at, prefix } of opened.splice(0)) {
      await store.close();
      await deleteKeys(at, prefix).catch(() => {});
    }
    await redis.stop();
  });

  describeStoreContract(
    "redis",
    async (options) => {
      const prefix = uniquePrefix("contract");
      const store = createRedisStore({
        url,
        keyPrefix: prefix,
        maxMessagesPerMailbox: options.maxMessagesPerMailbox,
        checkIntervalMs: CHECK_INTERVAL_MS,
        onListenerError: options.onListenerError,
      });
      await store.whenReady(5000);
      return {
        store,
        cleanup: async () => {
          await store.close();
          await deleteKeys(url, prefix);
        },
      };
    },
    // Redis has its own memory limit (maxmemory); stats are per node, the data is shared.
    { byteBudget: false, exactStats: false },
  );

  describe("Redis store across nodes", () => {
    it("wakes other nodes with no messages and hands its own node the committed ones", async () => {
      const prefix = uniquePrefix("nodes");
      const [a, b] = [await open({ prefix }), await open({ prefix })];
      const heard: { node: string; mailbox: string; seqs: number[] | undefined }[] = [];
      a.watch((mailbox, messages) => heard.push({ node: "a", mailbox, seqs: messages?.map((m) => m.seq) }));
      b.watch((mailbox, messages) => heard.push({ node: "b", mailbox, seqs: messages?.map((m) => m.seq) }));
      await a.append([
        { mailbox: "m", draft: draft({ n: 1 }) },
        { mailbox: "m", draft: draft({ n: 2 }) },
      ]);
      await until(() => heard.some((h) => h.node === "b"), "b's wake-up", WAIT_MS);
      await sleep(200);
      // The two nodes hear on different connections, so their order is not defined.
      expect(heard).toHaveLength(2);
      expect(heard).toContainEqual({ node: "a", mailbox: "m", seqs: [1, 2] });
      expect(heard).toContainEqual({ node: "b", mailbox: "m", seqs: undefined });
      const read = await b.read("m", { epoch: "", seq: 0 }, 10);
      expect(read.messages.map((m) => JSON.parse(m.json).n)).toEqual([1, 2]);
    });

    it("catches up on a mailbox it reads when the pub/sub wake-up was lost", async () => {
      const prefix = uniquePrefix("lost");
      const b = await open({ prefix });
      const heard: { mailbox: string; seqs: number[] | undefined }[] = [];
      b.watch((mailbox, messages) => heard.push({ mailbox, seqs: messages?.map((m) => m.seq) }));
      const [first] = await b.append([{ mailbox: "watched", draft: draft({ n: 1 }) }]);
      const epoch = (first as AppendResult).message.epoch;
      await b.read("watched", { epoch, seq: 0 }, 10);
      // Another node's append whose wake-up goes to a channel nobody listens on: a dropped PUBLISH.
      const raw = new Redis(url);
      const d = draft({ n: 2 });
      const keys = ["meta", "log", "idem", "latest"].map((k) => `${prefix}{watched}:${k}`);
      await raw.eval(
        APPEND_SCRIPT,
        4,
        ...keys,
        "other-node",
        Date.now(),
        1000,
        `${prefix}nowhere`,
        1000,
        "0",
        1,
        "watched",
        "unused",
        1,
        1,
        d.id,
        d.timeMs,
        d.expiresAtMs,
        d.fieldsJson,
        "",
        "",
        "",
      );
      raw.disconnect();
      // The periodic check notices and hands the listeners the message, read once for the node.
      await until(() => heard.length >= 2, "the periodic check", WAIT_MS);
      expect(heard).toEqual([
        { mailbox: "watched", seqs: [1] },
        { mailbox: "watched", seqs: [2] },
      ]);
    });

    it("reads another node's appends once and hands them to the listeners of a node that reads the mailbox", async () => {
      const prefix = uniquePrefix("pull");
      // No periodic check within the test: the pulls must come from the wake-ups.
      const quiet = { prefix, checkIntervalMs: 60 * 60_000 };
      const [a, b] = [await open(quiet), await open(quiet)];
      const heard: { mailbox: string; seqs: number[] | undefined }[] = [];
      b.watch((mailbox, messages) => heard.push({ mailbox, seqs: messages?.map((m) => m.seq) }));
      // b reads "watched" (a subscriber there replays it); "other" nobody on b reads.
      await b.read("watched", { epoch: "", seq: 0 }, 10);
      for (let n = 1; n <= 5; n++) {
        await a.append([
          { mailbox: "watched", draft: draft({ n }) },
          { mailbox: "other", draft: draft({ n }) },
        ]);
      }
      await until(
        () => heard.filter((h) => h.mailbox === "watched").flatMap((h) => h.seqs ?? []).length >= 5,
        "pulls",
        WAIT_MS,
      );
      const watched = heard.filter((h) => h.mailbox === "watched");
      // Every message exactly once, in order, however the wake-ups were batched into pulls.
      expect(watched.flatMap((h) => h.seqs)).toEqual([1, 2, 3, 4, 5]);
      await until(
        () => heard.filter((h) => h.mailbox === "other").length >= 5,
        "wake-ups of the untracked mailbox",
        WAIT_MS,
      );
      expect(heard.filter((h) => h.mailbox === "other").every((h) => h.seqs === undefined)).toBe(true);
    });

    it("starts a new epoch cleanly when the meta hash is gone but an old log is left", async () => {
      const prefix = uniquePrefix("evicted");
      const store = await open({ prefix });
      const [old] = await store.append([
        { mailbox: "m", draft: draft({ n: 1, key: "cpu" }, { key: "k", fingerprint: "f1" }) },
        { mailbox: "m", draft: draft({ n: 2, key: "mem" }) },
      ]);
      // What an eviction policy may do: drop one key of a mailbox and keep the others.
      const raw = new Redis(url);
      await raw.del(`${prefix}{m}:meta`);
      raw.disconnect();
      const [fresh] = await store.append([
        { mailbox: "m", draft: draft({ n: 3, key: "disk" }, { key: "k", fingerprint: "f2" }) },
      ]);
      expect(fresh?.status).toBe("stored");
      expect(fresh?.message.seq).toBe(1);
      expect(fresh?.message.epoch).not.toBe(old?.message.epoch);
      const read = await store.read("m", { epoch: "", seq: 0 }, 10);
      expect(read.messages.map((m) => JSON.parse(m.json).n)).toEqual([3]);
      // The old life's keys went with it: "cpu" must not point at the new seq 1.
      expect((await store.latest("m", 10)).messages).toEqual([fresh?.message]);
    });

    it("keeps every key of a mailbox under one hash tag", async () => {
      const prefix = uniquePrefix("tags");
      const store = await open({ prefix });
      await store.append([
        { mailbox: "user:alice@x.y", draft: draft({ n: 1, key: "cpu" }, { key: "k", fingerprint: "f" }) },
      ]);
      const raw = new Redis(url);
      const [, keys] = await raw.scan("0", "MATCH", `${prefix}*`, "COUNT", 1000);
      raw.disconnect();
      expect(keys.sort()).toEqual(["idem", "latest", "log", "meta"].map((k) => `${prefix}{user:alice@x.y}:${k}`));
    });
  });

  if (!hasRedisServerBinary())
    console.warn(`Redis outage test skipped: ${skipBecause("no redis-server binary").reason}`);
  describe.runIf(hasRedisServerBinary())("Redis store while Redis is down", () => {
    it("rejects appends and reads, reports not ready, and recovers by itself", async () => {
      const dir = await mkdtemp(join(tmpdir(), "herald-redis-"));
      const server = new RedisServerProcess({ port: await freePort(), dir, appendonly: true });
      await server.start();
      try {
        const prefix = uniquePrefix("down");
        const [a, b] = [await open({ url: server.url, prefix }), await open({ url: server.url, prefix })];
        const woken: string[] = [];
        b.watch((mailbox, messages) => {
          if (messages === undefined) woken.push(mailbox);
        });
        const [first] = await a.append([{ mailbox: "m", draft: draft({ n: 1 }) }]);
        const epoch = (first as AppendResult).message.epoch;
        await b.read("m", { epoch, seq: 1 }, 10);
        await server.stop();
        await until(() => !a.ready() && !b.ready(), "not ready", WAIT_MS);
        const unavailable = { code: "store_unavailable", headers: { "Retry-After": "1" } };
        await expect(a.append([{ mailbox: "m", draft: draft({ n: 2 }) }])).rejects.toMatchObject(unavailable);
        await expect(b.read("m", { epoch, seq: 1 }, 10)).rejects.toMatchObject(unavailable);
        await expect(b.head("m")).rejects.toMatchObject(unavailable);
        await server.start();
        await until(() => a.ready() && b.ready(), "ready again", WAIT_MS);
        // b hears of it by its resubscribed channel or, if that is not back yet, by its periodic check.
        const [second] = await a.append([{ mailbox: "m", draft: draft({ n: 3 }) }]);
        expect(second?.message).toMatchObject({ epoch, seq: 2 });
        await until(() => woken.includes("m"), "b catching up after the restart", WAIT_MS);
        const read = await b.read("m", { epoch, seq: 0 }, 10);
        expect(read.messages.map((m) => JSON.parse(m.json).n)).toEqual([1, 3]);
      } finally {
        await server.stop();
        await rm(dir, { recursive: true, force: true });
      }
    });
  });
}
