import { once } from "node:events";
import { connect, createServer, type Server, type Socket } from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { createRedisStore, type RedisStore } from "../src/store/redis-store.js";
import { deleteKeys, testRedis, uniquePrefix } from "./helpers/redis.js";
import { until } from "./helpers/until.js";
import { draft } from "./store-contract.js";

const redis = await testRedis();
const READS = 20;
const IN_FLIGHT = 4;

/**
 * Relays a store's connections to Redis and can hold Redis's replies back, so
 * a test sees which commands the store sent while none was answered.
 */
class HoldingRelay {
  readonly server: Server;
  sent = "";
  #holding = false;
  #held: (() => void)[] = [];
  readonly #sockets = new Set<Socket>();

  constructor(target: URL) {
    this.server = createServer((client) => {
      const upstream = connect(Number(target.port), target.hostname);
      this.#sockets.add(client).add(upstream);
      client.on("data", (chunk) => {
        this.sent += chunk.toString("latin1");
        upstream.write(chunk);
      });
      upstream.on("data", (chunk) => {
        if (this.#holding) this.#held.push(() => client.write(chunk));
        else client.write(chunk);
      });
      for (const socket of [client, upstream]) {
        socket.on("error", () => {});
        socket.on("close", () => {
          client.destroy();
          upstream.destroy();
        });
      }
    });
  }

  async listen(): Promise<string> {
    this.server.listen(0, "127.0.0.1");
    await once(this.server, "listening");
    const address = this.server.address();
    return `redis://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  }

  hold(): void {
    this.#holding = true;
  }

  release(): void {
    this.#holding = false;
    for (const write of this.#held.splice(0)) write();
  }

  close(): void {
    for (const socket of this.#sockets) socket.destroy();
    this.server.close();
  }
}

// Skips only on a machine with neither REDIS_URL, a Redis on 127.0.0.1:6379, nor redis-server;
// .ci/run sets HERALD_REQUIRE_REDIS=1, which makes testRedis() throw instead, so CI never skips.
if ("reason" in redis) {
  describe.skip(`Redis store read bound (skipped: ${redis.reason})`, () => {
    it("needs Redis", () => {});
  });
} else {
  const prefix = uniquePrefix("readbound");
  const relay = new HoldingRelay(new URL(redis.url));
  let store: RedisStore | undefined;
  afterAll(async () => {
    await store?.close();
    relay.close();
    await deleteKeys(redis.url, prefix);
    await redis.stop();
  });

  describe("Redis store read bound", () => {
    it("sends at most maxReadsInFlight reads to Redis at once; the rest wait their turn and all answer", async () => {
      const url = await relay.listen();
      store = createRedisStore({ url, keyPrefix: prefix, maxMessagesPerMailbox: 100, maxReadsInFlight: IN_FLIGHT });
      expect(await store.whenReady(5000)).toBe(true);
      const opened = store;
      const mailboxes = Array.from({ length: READS }, (_, i) => `bound-${i}-`);
      await opened.append(mailboxes.map((mailbox, n) => ({ mailbox, draft: draft({ n }) })));
      relay.hold();
      relay.sent = "";
      const reads = mailboxes.map((mailbox) => opened.read(mailbox, { epoch: "", seq: 0 }, 10));
      const asked = () => mailboxes.filter((mailbox) => relay.sent.includes(mailbox)).length;
      await until(
        () => asked() === IN_FLIGHT,
        () => `${IN_FLIGHT} reads sent, saw ${asked()}`,
      );
      // Nothing is answered yet: more time sends nothing more.
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(asked()).toBe(IN_FLIGHT);
      relay.release();
      const answers = await Promise.all(reads);
      expect(asked()).toBe(READS);
      expect(answers.map((read) => JSON.parse(read.messages[0]?.json ?? "{}").n)).toEqual(mailboxes.map((_, n) => n));
    });
  });
}
