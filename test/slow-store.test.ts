import { afterAll, describe, expect, it } from "vitest";
import type { RunningHerald } from "../src/server.js";
import type { AppendItem, MailboxStore } from "../src/store/mailbox-store.js";
import { createMemoryStore } from "../src/store/memory-store.js";
import { publish, StreamClient } from "./helpers/clients.js";
import { startTestServer } from "./helpers/server.js";

/**
 * A store whose appends to one mailbox wait for a gate, as a slow disk or a
 * stalled Redis would make one append wait: injected at the store seam.
 */
function slowFor(
  store: MailboxStore,
  slowMailbox: string,
): { store: MailboxStore; release: () => void; held: () => number } {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  let held = 0;
  const slowed = new Proxy(store, {
    get(target, property, receiver) {
      if (property === "append") {
        return async (items: readonly AppendItem[]) => {
          if (items.some((item) => item.mailbox === slowMailbox)) {
            held += 1;
            await gate;
          }
          return target.append(items);
        };
      }
      const value = Reflect.get(target, property, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { store: slowed, release, held: () => held };
}

const clients: StreamClient[] = [];
let server: RunningHerald | undefined;
afterAll(async () => {
  for (const client of clients) client.close();
  await server?.shutdown();
});

describe("one slow append", () => {
  it("holds up its own publish only: other mailboxes publish and deliver meanwhile, and it completes once the store answers", async () => {
    const slow = slowFor(
      createMemoryStore({ maxMailboxes: 100, maxMessagesPerMailbox: 1000, maxBytes: 1 << 24 }),
      "stuck",
    );
    server = await startTestServer({ customStore: slow.store });
    const base = server.url;
    const fastReader = new StreamClient(`${base}/v1/mailboxes/flowing/events?cursor=now`);
    const stuckReader = new StreamClient(`${base}/v1/mailboxes/stuck/events?cursor=now`);
    clients.push(fastReader, stuckReader);
    await Promise.all([fastReader.opened, stuckReader.opened]);
    await Promise.all([
      fastReader.until(() => fastReader.raw.length > 0),
      stuckReader.until(() => stuckReader.raw.length > 0),
    ]);

    let stuckDone = false;
    const stuckPublish = publish(base, "stuck", { body: "waited" }).then((message) => {
      stuckDone = true;
      return message;
    });
    // The slow append has begun before anything else is published.
    const deadline = Date.now() + 5000;
    while (slow.held() === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(slow.held()).toBe(1);

    for (let i = 1; i <= 20; i++) await publish(base, "flowing", { body: `f${i}` });
    const delivered = await fastReader.untilMessages(20);
    expect(delivered.map((message) => message.body)).toEqual(Array.from({ length: 20 }, (_, i) => `f${i + 1}`));
    expect(stuckDone).toBe(false);
    expect(stuckReader.messages()).toEqual([]);

    slow.release();
    const stored = await stuckPublish;
    expect(stored.body).toBe("waited");
    expect((await stuckReader.untilMessages(1)).map((message) => message.body)).toEqual(["waited"]);
  });
});
