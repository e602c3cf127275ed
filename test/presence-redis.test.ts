import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { RunningHerald } from "../src/server.js";
import { createRedisPresence } from "../src/store/redis-presence.js";
import { createRedisStore } from "../src/store/redis-store.js";
import { type HeraldChild, spawnHerald } from "./helpers/child.js";
import { publishMany } from "./helpers/clients.js";
import { openReader, type ReaderClient } from "./helpers/reader-clients.js";
import { deleteKeys, testRedis, uniquePrefix } from "./helpers/redis.js";
import { startTestServer } from "./helpers/server.js";
import { until } from "./helpers/until.js";

const redis = await testRedis();
/** Node timeout given to the nodes that are killed: their readers must be gone within it and a beat. */
const NODE_TIMEOUT_SECONDS = 2;
const WAIT_MS = 15_000;

async function membersOf(base: string, mailbox: string): Promise<string[]> {
  const answer = (await (await fetch(`${base}/v1/mailboxes/${mailbox}/presence`)).json()) as {
    members?: { sub: string }[];
  };
  return (answer.members ?? []).map((member) => member.sub).sort();
}

// Skips only on a machine with neither REDIS_URL, a Redis on 127.0.0.1:6379, nor redis-server;
// .ci/run sets HERALD_REQUIRE_REDIS=1, which makes testRedis() throw instead, so CI never skips.
if ("reason" in redis) {
  console.warn(`Redis presence tests skipped: ${redis.reason}`);
  describe.skip(`presence and read state on Redis (skipped: ${redis.reason})`, () => {
    it("needs Redis", () => {});
  });
} else {
  const { url } = redis;
  const prefixes: string[] = [];
  const servers: RunningHerald[] = [];
  const clients: ReaderClient[] = [];
  const children: HeraldChild[] = [];
  afterAll(async () => {
    for (const client of clients) client.close();
    for (const server of servers) await server.shutdown();
    for (const child of children) {
      child.process.kill("SIGKILL");
      await child.exited;
    }
    for (const prefix of prefixes) await deleteKeys(url, prefix);
    await redis.stop();
  });

  const node = async (prefix: string): Promise<RunningHerald> => {
    const store = createRedisStore({ url, keyPrefix: prefix, maxMessagesPerMailbox: 1000, checkIntervalMs: 100 });
    await store.whenReady(5000);
    const presence = createRedisPresence({ url, keyPrefix: prefix });
    await presence.whenReady(5000);
    const server = await startTestServer({ customStore: store, presence });
    servers.push(server);
    return server;
  };
  const open = async (...args: Parameters<typeof openReader>) => {
    const client = await openReader(...args);
    clients.push(client);
    return client;
  };

  describe("presence and read state on Redis, two nodes", () => {
    it("is the union of both nodes' readers; joins and leaves reach the other node once", async () => {
      const prefix = uniquePrefix("presence-two");
      prefixes.push(prefix);
      const [a, b] = [await node(prefix), await node(prefix)];
      const watcher = await open("sse", a.url, ["room"], { reader: "watcher", presence: true });
      await watcher.until((c) => c.of("presence").length === 1, "the snapshot");
      const bobOnA = await open("ndjson", a.url, ["room"], { reader: "bob" });
      const bobOnB = await open("ws", b.url, ["room"], { reader: "bob" });
      const carol = await open("sse", b.url, ["room"], { reader: "carol" });
      await watcher.until((c) => c.of("join").length === 2, "bob and carol joining");
      expect(
        watcher
          .of("join")
          .map((join) => join.sub)
          .sort(),
      ).toEqual(["bob", "carol"]);
      expect(await membersOf(b.url, "room")).toEqual(["bob", "carol", "watcher"]);
      bobOnA.close();
      carol.close();
      await watcher.until((c) => c.of("leave").length === 1, "carol leaving");
      expect(watcher.of("leave")[0]?.sub).toBe("carol");
      bobOnB.close();
      await watcher.until((c) => c.of("leave").length === 2, "bob leaving once his last connection went");
      expect(watcher.of("join")).toHaveLength(2);
    });

    it("tells a reader's connection on one node that it read on the other", async () => {
      const prefix = uniquePrefix("read-two");
      prefixes.push(prefix);
      const [a, b] = [await node(prefix), await node(prefix)];
      await publishMany(a.url, "inbox", 3);
      const onB = await open("ws", b.url, ["inbox"], { reader: "alice", unread: true });
      await onB.until((c) => c.of("unread").at(-1)?.unread === 3, "unread 3");
      const marked = await fetch(`${a.url}/v1/mailboxes/inbox/read?reader=alice`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ seq: 2 }),
      });
      expect(marked.status).toBe(200);
      await onB.until((c) => c.of("read").length === 1, "the read event on the other node");
      expect(onB.of("read")[0]).toMatchObject({ mailbox: "inbox", seq: 2, unread: 1 });
      const state = await (await fetch(`${b.url}/v1/mailboxes/inbox/read?reader=alice`)).json();
      expect(state).toMatchObject({ seq: 2, unread: 1 });
    });
  });

  describe("presence on Redis when a node is killed", () => {
    it("withdraws the dead node's readers within the node timeout and announces their leave", async () => {
      const prefix = uniquePrefix("presence-kill");
      prefixes.push(prefix);
      const dir = mkdtempSync(join(tmpdir(), "herald-presence-"));
      const config = join(dir, "herald.json");
      writeFileSync(config, JSON.stringify({ presence: { nodeTimeoutSeconds: NODE_TIMEOUT_SECONDS } }));
      try {
        const args = ["--store", "redis", "--redis-url", url, "--redis-prefix", prefix, "--config", config];
        const [doomed, survivor] = [await spawnHerald(args), await spawnHerald(args)];
        children.push(doomed, survivor);
        const watcher = await open("ndjson", survivor.url, ["room"], { reader: "watcher", presence: true });
        await watcher
          .until((c) => c.of("presence").length === 1, "the snapshot")
          .catch((e) => {
            throw new Error(`${e}\n${JSON.stringify(watcher.frames())}\n${survivor.output()}`);
          });
        await open("sse", doomed.url, ["room"], { reader: "dora" });
        await watcher.until((c) => c.of("join").length === 1, "dora joining through the other node");
        doomed.process.kill("SIGKILL");
        await doomed.exited;
        const killedAt = Date.now();
        await watcher.until((c) => c.of("leave").length === 1, "dora leaving after her node died");
        // Within the timeout and a beat of the survivor (a quarter of it), with room for a loaded machine.
        expect(Date.now() - killedAt).toBeLessThan(NODE_TIMEOUT_SECONDS * 1000 + 5000);
        expect(watcher.of("leave")[0]).toMatchObject({ sub: "dora", mailbox: "room" });
        await until(async () => (await membersOf(survivor.url, "room")).join() === "watcher", "dora gone", WAIT_MS);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}
