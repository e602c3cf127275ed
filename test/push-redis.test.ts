import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type HeraldChild, spawnHerald } from "./helpers/child.js";
import { publish } from "./helpers/clients.js";
import { type PushFixture, startPushFixture, subscribePush } from "./helpers/push.js";
import { deleteKeys, testRedis, uniquePrefix } from "./helpers/redis.js";

const redis = await testRedis();
const MESSAGES = 20;

// Skips only on a machine with neither REDIS_URL, a Redis on 127.0.0.1:6379, nor redis-server;
// .ci/run sets HERALD_REQUIRE_REDIS=1, which makes testRedis() throw instead, so CI never skips.
if ("reason" in redis) {
  console.warn(`Web Push on Redis skipped: ${redis.reason}`);
  describe.skip(`Web Push on Redis, two nodes (skipped: ${redis.reason})`, () => {
    it("needs Redis", () => {});
  });
} else {
  const prefix = uniquePrefix("push");
  const nodes: HeraldChild[] = [];
  let fixture: PushFixture | undefined;
  let dir: string | undefined;
  afterAll(async () => {
    for (const node of nodes) {
      node.process.kill("SIGKILL");
      await node.exited;
    }
    await fixture?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
    await deleteKeys(redis.url, prefix);
    await redis.stop();
  });

  describe("Web Push on Redis, two nodes", () => {
    it("shares subscriptions, and pushes each message once, from the node that stored it", async () => {
      fixture = await startPushFixture();
      dir = await mkdtemp(join(tmpdir(), "herald-push-redis-"));
      const configFile = join(dir, "herald.json");
      await writeFile(configFile, JSON.stringify({ push: fixture.section(), schedule: { pollSeconds: 0.1 } }));
      const start = async () => {
        const args = ["--store", "redis", "--redis-url", redis.url, "--redis-prefix", prefix, "--config", configFile];
        const node = await spawnHerald(args, { NODE_EXTRA_CA_CERTS: fixture?.service.caFile });
        nodes.push(node);
        return node;
      };
      const [a, b] = await Promise.all([start(), start()]);
      if (!a || !b) throw new Error("nodes did not start");

      const subscription = fixture.service.subscribe();
      const response = await subscribePush(a.url, subscription, ["room:shared"]);
      expect(response.status).toBe(201);
      const { id } = (await response.json()) as { id: string };
      // Node B knows it: subscriptions live in Redis.
      expect((await fetch(`${b.url}/v1/push/subscriptions/${id}`)).status).toBe(200);

      const published: string[] = [];
      for (let n = 1; n <= MESSAGES; n++) {
        const node = n % 2 === 0 ? a : b;
        published.push((await publish(node.url, "room:shared", { body: `m${n}` })).id);
      }
      // A scheduled message is claimed by one node's scheduler and pushed by that node only.
      const scheduled = await fetch(`${b.url}/v1/mailboxes/room:shared/messages?delay=0.5`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ body: "scheduled" }),
      });
      expect(scheduled.status).toBe(202);
      published.push(((await scheduled.json()) as { id: string }).id);

      await fixture.service.waitFor(MESSAGES + 1, { subscription, timeoutMs: 15_000 });
      // Anything sent twice would arrive within this; nothing more may.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const ids = fixture.service.received
        .filter((push) => push.subscription === subscription)
        .map((push) => (push.payload as { id: string }).id);
      expect(ids.sort()).toEqual([...published].sort());

      // Removed on one node, gone for both.
      expect((await fetch(`${b.url}/v1/push/subscriptions/${id}`, { method: "DELETE" })).status).toBe(204);
      expect((await fetch(`${a.url}/v1/push/subscriptions/${id}`)).status).toBe(404);
    }, 40_000);
  });
}
