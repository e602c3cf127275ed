import { describe, expect, it } from "vitest";
import { createDraft } from "../src/core/message-input.js";
import { PushDispatcher } from "../src/push/push-dispatcher.js";
import type { PushOutcome, PushSender } from "../src/push/push-sender.js";
import { createMemoryPushSubscriptions } from "../src/store/memory-push-subscriptions.js";
import type { PushSubscriptionStore } from "../src/store/push-subscription-store.js";
import { storedMessage } from "../src/store/stored-message.js";
import { until } from "./helpers/until.js";

const KEYS = { p256dh: "BPlaceholderKeyNotCheckedByTheStore", auth: "AAAAAAAAAAAAAAAAAAAAAA" };

function message(mailbox: string, fields: Record<string, unknown>, seq = 1) {
  return storedMessage(mailbox, "e1", seq, createDraft(fields, 3600, undefined, Date.now()));
}

/** A sender that answers from a script, and records what it was asked. */
function scriptedSender(answer: (call: number) => PushOutcome | Promise<PushOutcome>) {
  const sent: { endpoint: string; at: number }[] = [];
  const sender: PushSender = {
    async send(target) {
      sent.push({ endpoint: target.endpoint, at: Date.now() });
      return answer(sent.length);
    },
    close() {},
  };
  return { sender, sent };
}

async function storeWith(endpoints: number): Promise<PushSubscriptionStore> {
  const store = createMemoryPushSubscriptions();
  for (let i = 0; i < endpoints; i++) {
    await store.save(
      {
        endpoint: `https://push.example/${i}`,
        keys: KEYS,
        mailboxes: ["m"],
        owner: `sub:u${i}`,
        expiresAtMs: Date.now() + 60_000,
      },
      { maxPerOwner: 10, maxTotal: 100 },
      Date.now(),
    );
  }
  return store;
}

const OPTIONS = { concurrency: 2, maxQueue: 100, maxAttempts: 3, maxRetryAfterMs: 5000, backoffMs: 10 };

describe("PushDispatcher", () => {
  it("looks nothing up for messages that opted out", async () => {
    const store = await storeWith(1);
    let lookups = 0;
    const counted: PushSubscriptionStore = Object.assign(Object.create(store), {
      targets: (mailbox: string, nowMs: number) => {
        lookups += 1;
        return store.targets(mailbox, nowMs);
      },
    });
    const { sender, sent } = scriptedSender(() => ({ kind: "sent" }));
    const dispatcher = new PushDispatcher({ ...OPTIONS, store: counted, sender });
    dispatcher.enqueue([message("m", { body: "quiet", push: false })]);
    dispatcher.enqueue([message("m", { body: "loud" }, 2)]);
    await until(() => dispatcher.counters.sent === 1);
    expect(lookups).toBe(1);
    expect(sent).toHaveLength(1);
    dispatcher.close();
  });

  it("waits as long as the sender says before a retry", async () => {
    const store = await storeWith(1);
    const { sender, sent } = scriptedSender((call) =>
      call === 1 ? { kind: "retry", status: undefined, retryAfterMs: 300 } : { kind: "sent" },
    );
    const dispatcher = new PushDispatcher({ ...OPTIONS, store, sender });
    dispatcher.enqueue([message("m", { body: "b" })]);
    await until(() => dispatcher.counters.sent === 1);
    expect((sent[1]?.at ?? 0) - (sent[0]?.at ?? 0)).toBeGreaterThanOrEqual(290);
    expect(dispatcher.counters.retried).toBe(1);
    dispatcher.close();
  });

  it("counts what it gives up at close, queued and waiting to retry alike", async () => {
    const store = await storeWith(5);
    // Nothing is answered until the end: two in flight, three queued.
    let release: (outcome: PushOutcome) => void = () => {};
    const held = new Promise<PushOutcome>((resolve) => {
      release = resolve;
    });
    const { sender } = scriptedSender(() => held);
    const dispatcher = new PushDispatcher({ ...OPTIONS, store, sender });
    dispatcher.enqueue([message("m", { body: "b" })]);
    await until(() => dispatcher.inFlight === 2);
    expect(dispatcher.queued).toBe(3);
    expect(dispatcher.close()).toBe(3);
    expect(dispatcher.counters).toMatchObject({ dropped: 3, failed: 3, sent: 0 });
    expect(dispatcher.close()).toBe(0);
    release({ kind: "sent" });
    await new Promise((resolve) => setTimeout(resolve, 20));
    // Answers that come after close are not counted.
    expect(dispatcher.counters.sent).toBe(0);
  });
});
