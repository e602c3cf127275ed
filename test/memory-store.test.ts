import { describe, expect, it, vi } from "vitest";
import type { StoredMessage } from "../src/store/mailbox-store.js";
import { createMemoryStore } from "../src/store/memory-store.js";
import { describeStoreContract, draft } from "./store-contract.js";

describeStoreContract("memory", async (options) => {
  // Frequent sweeps, so the suite also sees expired messages actually being removed.
  const store = createMemoryStore({ maxMailboxes: 1000, sweepIntervalMs: 20, ...options });
  return { store, cleanup: () => store.close() };
});

describe("memory store specifics", () => {
  const ALL = 1000;

  it("keeps at most maxReadPositions read positions, forgetting the least recently used", async () => {
    const store = createMemoryStore({
      maxMailboxes: 10,
      maxMessagesPerMailbox: 10,
      maxBytes: 1 << 20,
      maxReadPositions: 2,
    });
    await store.append([1, 2, 3].map((n) => ({ mailbox: "a", draft: draft({ n }) })));
    await store.markRead("a", "alice", { seq: 1 });
    await store.markRead("a", "bob", { seq: 2 });
    expect((await store.readState("a", "alice")).position.seq).toBe(1);
    await store.markRead("a", "carol", { seq: 3 });
    // Bob's was used least recently (alice's was just read): his is forgotten, as if he had read nothing.
    expect((await store.readState("a", "bob")).position.seq).toBe(0);
    expect((await store.readState("a", "alice")).position.seq).toBe(1);
    expect((await store.readState("a", "carol")).position.seq).toBe(3);
    await store.close();
  });

  it("evicts the least recently used mailbox; a recreated one has a new epoch", async () => {
    const store = createMemoryStore({ maxMailboxes: 2, maxMessagesPerMailbox: 100, maxBytes: 1 << 20 });
    const [first] = await store.append([{ mailbox: "a", draft: draft({ body: "a1" }) }]);
    const old = first?.message as StoredMessage;
    await store.append([{ mailbox: "b", draft: draft({ body: "b1" }) }]);
    await store.append([{ mailbox: "c", draft: draft({ body: "c1" }) }]);
    expect(await store.head("a")).toBeUndefined();
    expect(store.stats()).toMatchObject({ mailboxes: 2, messages: 2 });
    const [again] = await store.append([{ mailbox: "a", draft: draft({ body: "a again" }) }]);
    const recreated = again?.message as StoredMessage;
    expect(recreated.seq).toBe(1);
    expect(recreated.epoch).not.toBe(old.epoch);
    // The old cursor names an epoch that is gone: the read starts at the earliest.
    const read = await store.read("a", { epoch: old.epoch, seq: 1 }, ALL);
    expect(read.messages).toEqual([recreated]);
    await store.close();
  });

  it("spends the byte budget by evicting idle mailboxes before trimming the busy one", async () => {
    const maxBytes = 4000;
    const store = createMemoryStore({ maxMailboxes: 100, maxMessagesPerMailbox: 100, maxBytes });
    const padding = "p".repeat(300);
    await store.append([{ mailbox: "idle", draft: draft({ body: padding }) }]);
    await store.append([{ mailbox: "busy", draft: draft({ body: padding }) }]);
    expect(store.stats().mailboxes).toBe(2);
    for (let n = 0; n < 20; n++) await store.append([{ mailbox: "busy", draft: draft({ body: padding }) }]);
    expect(await store.head("idle")).toBeUndefined();
    const stats = store.stats();
    expect(stats.bytes).toBeLessThanOrEqual(maxBytes);
    expect(stats.mailboxes).toBe(1);
    const read = await store.read("busy", { epoch: "", seq: 0 }, ALL);
    expect(read.messages.length).toBe(stats.messages);
    expect(read.log?.trimmedThrough).toBe(21 - stats.messages);
    await store.close();
  });

  it("sweeps expired messages out of the counts", async () => {
    let now = 1_000_000;
    const store = createMemoryStore({ maxMailboxes: 10, maxMessagesPerMailbox: 10, maxBytes: 1 << 20, now: () => now });
    const short = { ...draft({ body: "short" }), timeMs: now, expiresAtMs: now + 1000 };
    const long = { ...draft({ body: "long" }), timeMs: now, expiresAtMs: now + 60_000 };
    await store.append([
      { mailbox: "a", draft: short },
      { mailbox: "a", draft: long },
    ]);
    const before = store.stats();
    now += 2000;
    store.sweepExpired();
    const after = store.stats();
    expect(after.messages).toBe(1);
    expect(after.bytes).toBeLessThan(before.bytes);
    expect((await store.head("a"))?.trimmedThrough).toBe(0);
    await store.close();
  });

  it("keeps remembering a key reused after its original expired, once the original is swept", async () => {
    let now = 1_000_000;
    const store = createMemoryStore({ maxMailboxes: 10, maxMessagesPerMailbox: 10, maxBytes: 1 << 20, now: () => now });
    const keyed = (body: string, ttlMs: number) => ({
      ...draft({ body }),
      timeMs: now,
      expiresAtMs: now + ttlMs,
      idempotencyKey: "k",
      fingerprint: body,
    });
    await store.append([{ mailbox: "a", draft: keyed("one", 1000) }]);
    now += 2000;
    const [second] = await store.append([{ mailbox: "a", draft: keyed("two", 60_000) }]);
    expect(second?.status).toBe("stored");
    store.sweepExpired();
    const [repeat] = await store.append([{ mailbox: "a", draft: keyed("two", 60_000) }]);
    expect(repeat).toEqual({ status: "duplicate", message: second?.message });
    await store.close();
  });

  it("remembers at most maxDeliveries, forgetting the oldest remembered first, and expires them by its clock", async () => {
    let now = 1_000_000;
    const store = createMemoryStore({
      maxMailboxes: 10,
      maxMessagesPerMailbox: 10,
      maxBytes: 1 << 20,
      maxDeliveries: 2,
      now: () => now,
    });
    await store.rememberDelivery("a", "A", 60_000);
    await store.rememberDelivery("b", "B", 1000);
    // Recalling does not make "a" younger: it is still the oldest remembered.
    expect(await store.recallDelivery("a")).toBe("A");
    await store.rememberDelivery("c", "C", 60_000);
    expect(await store.recallDelivery("a")).toBeUndefined();
    expect(await store.recallDelivery("b")).toBe("B");
    now += 1000;
    expect(await store.recallDelivery("b")).toBeUndefined();
    expect(await store.recallDelivery("c")).toBe("C");
    await store.close();
  });

  it("by default throws a listener's error again on a later microtask, after the append and the other listeners", async () => {
    const store = createMemoryStore({ maxMailboxes: 10, maxMessagesPerMailbox: 10, maxBytes: 1 << 20 });
    const bug = new Error("a listener's bug");
    const heard: string[] = [];
    store.watch(() => {
      throw bug;
    });
    store.watch((mailbox) => heard.push(mailbox));
    const later: (() => void)[] = [];
    // The memory store tells its listeners before its first await: the stub is in place only while it does.
    vi.stubGlobal("queueMicrotask", (callback: () => void) => later.push(callback));
    let appended: ReturnType<typeof store.append>;
    try {
      appended = store.append([{ mailbox: "a", draft: draft({ body: "a1" }) }]);
    } finally {
      vi.unstubAllGlobals();
    }
    expect((await appended)[0]).toMatchObject({ status: "stored", message: { mailbox: "a", seq: 1 } });
    expect(heard).toEqual(["a"]);
    expect(later).toHaveLength(1);
    expect(() => later[0]?.()).toThrow(bug);
    await store.close();
  });
});
