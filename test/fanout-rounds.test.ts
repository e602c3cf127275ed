import { setImmediate as nextTurn } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import type { CloseReason, FrameFormat, StreamSink } from "../src/core/delivery.js";
import { inDeliveryOrder } from "../src/core/fanout.js";
import { createHub, type Hub } from "../src/core/hub.js";
import type { Publisher } from "../src/core/publish-command.js";
import type { StoredMessage } from "../src/store/mailbox-store.js";
import { createMemoryStore } from "../src/store/memory-store.js";
import { storedMessage } from "../src/store/stored-message.js";
import { draft } from "./store-contract.js";

/**
 * The fan-out loop yields every chunk of subscribers; publishes that land
 * during a yield join the rest of the round. These drive the hub directly with
 * a tiny chunk size so that happens on every yield, and count what each
 * subscriber was written.
 */

const SEQ_FORMAT: FrameFormat = {
  message: (message) => `${message.mailbox}#${message.seq};`,
  gap: () => "gap;",
  moved: () => "moved;",
  event: () => "",
};

class RecordingSink implements StreamSink {
  readonly format = SEQ_FORMAT;
  text = "";
  writes = 0;
  write(frames: string): void {
    this.text += frames;
    this.writes += 1;
  }
  bufferedBytes(): number {
    return 0;
  }
  whenDrained(): Promise<void> {
    return Promise.resolve();
  }
  end(_reason: CloseReason): void {}
  seqs(mailbox: string): number[] {
    return [...this.text.matchAll(/([^;#]+)#(\d+);/g)].filter((m) => m[1] === mailbox).map((m) => Number(m[2]));
  }
}

/** Publishes as the server itself: any mailbox, no rate. */
const SERVER: Publisher = { name: "test", authorize: () => {}, charge: () => {} };

const hubs: Hub[] = [];
afterEach(() => {
  for (const hub of hubs.splice(0)) hub.close();
});

function newHub(fanoutChunkSize: number, maxPendingFanout?: number): Hub {
  const store = createMemoryStore({ maxMailboxes: 100, maxMessagesPerMailbox: 10_000, maxBytes: 64 * 1024 * 1024 });
  const hub = createHub({
    store,
    defaultTtlSeconds: 3600,
    maxQueueBytes: 1024 * 1024,
    fanoutChunkSize,
    ...(maxPendingFanout === undefined ? {} : { maxPendingFanout }),
  });
  hubs.push(hub);
  return hub;
}

async function subscribeAll(hub: Hub, count: number, mailboxes: string[]): Promise<RecordingSink[]> {
  const sinks: RecordingSink[] = [];
  for (let i = 0; i < count; i++) {
    const sink = new RecordingSink();
    const subscription = await hub.subscribe(mailboxes, "now", sink);
    subscription.start();
    sinks.push(sink);
  }
  // Let every first replay finish, so all are live.
  for (let i = 0; i < 5; i++) await nextTurn();
  return sinks;
}

async function settle(done: () => boolean): Promise<void> {
  for (let i = 0; i < 10_000 && !done(); i++) await nextTurn();
}

const range = (from: number, count: number) => Array.from({ length: count }, (_, i) => from + i);

describe("fan-out rounds", () => {
  it("delivers publishes that land mid-round exactly once, in order, in fewer writes", async () => {
    const hub = newHub(3);
    const sinks = await subscribeAll(hub, 40, ["feed"]);
    const total = 60;
    for (let m = 0; m < total; m++) {
      await hub.publishing.publish(SERVER, [{ mailbox: "feed", fields: { body: `m${m}` } }]);
      // Publish during the fan-out's yields, not only between rounds.
      if (m % 2 === 0) await nextTurn();
    }
    await settle(() => sinks.every((sink) => sink.seqs("feed").length >= total));
    for (const sink of sinks) expect(sink.seqs("feed")).toEqual(range(1, total));
    const writes = sinks.reduce((sum, sink) => sum + sink.writes, 0);
    expect(writes).toBeLessThan(sinks.length * total);
    expect(hub.counters.delivered).toBe(sinks.length * total);
  });

  it("keeps per-mailbox order for subscribers of several mailboxes while rounds absorb late publishes", async () => {
    const hub = newHub(2);
    const single = await subscribeAll(hub, 10, ["a"]);
    const both = await subscribeAll(hub, 10, ["a", "b"]);
    const perMailbox = 30;
    for (let m = 0; m < perMailbox; m++) {
      await hub.publishing.publish(SERVER, [
        { mailbox: "a", fields: { body: `a${m}` } },
        { mailbox: "b", fields: { body: `b${m}` } },
      ]);
      if (m % 3 === 0) await nextTurn();
    }
    await settle(() => both.every((sink) => sink.seqs("b").length >= perMailbox));
    await settle(() => single.every((sink) => sink.seqs("a").length >= perMailbox));
    for (const sink of single) {
      expect(sink.seqs("a")).toEqual(range(1, perMailbox));
      expect(sink.seqs("b")).toEqual([]);
    }
    for (const sink of both) {
      expect(sink.seqs("a")).toEqual(range(1, perMailbox));
      expect(sink.seqs("b")).toEqual(range(1, perMailbox));
    }
  });

  it("keeps the fan-out queue bounded: what overflows reaches subscribers from the store, once and in order", async () => {
    const hub = newHub(2, 5);
    const sinks = await subscribeAll(hub, 20, ["burst"]);
    const total = 80;
    // Many publishes in one turn: far more than the queue holds before the round runs.
    await Promise.all(
      range(1, total).map((m) => hub.publishing.publish(SERVER, [{ mailbox: "burst", fields: { body: `m${m}` } }])),
    );
    await settle(() => sinks.every((sink) => sink.seqs("burst").length >= total));
    for (const sink of sinks) expect(sink.seqs("burst")).toEqual(range(1, total));
  });
});

describe("delivery order of a round", () => {
  const at = (mailbox: string, seq: number, timeMs: number) =>
    storedMessage(mailbox, "e", seq, { ...draft({ body: `${mailbox}${seq}` }), timeMs });
  const order = (messages: StoredMessage[]) => inDeliveryOrder(messages).map((m) => `${m.mailbox}${m.seq}`);

  it("keeps each mailbox in seq order when another node stamped a later seq earlier", () => {
    // Two nodes publish to "a": seq 3 was stamped before seq 2 on a clock of its own.
    expect(order([at("a", 1, 100), at("a", 2, 105), at("a", 3, 103), at("b", 1, 104)])).toEqual([
      "a1",
      "b1",
      "a2",
      "a3",
    ]);
  });

  it("orders mailboxes by publish time", () => {
    expect(order([at("a", 1, 100), at("a", 2, 110), at("b", 1, 105), at("b", 2, 101)])).toEqual([
      "a1",
      "b1",
      "b2",
      "a2",
    ]);
  });
});
