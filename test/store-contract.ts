import { nanoid } from "nanoid";
import { afterEach, describe, expect, it } from "vitest";
import { HeraldError } from "../src/errors.js";
import type { ListenerErrorHandler } from "../src/store/append-listeners.js";
import type {
  AppendItem,
  AppendResult,
  MailboxStore,
  MessageDraft,
  StoredMessage,
} from "../src/store/mailbox-store.js";
import { describeLatestContract } from "./latest-contract.js";
import { describeReadStateContract } from "./read-state-contract.js";

/** Backend knobs the suite sets per test; a factory maps them onto its own options. */
export interface ContractStoreOptions {
  /** Messages retained per mailbox (the cap). */
  readonly maxMessagesPerMailbox: number;
  /** Byte budget over the whole store. */
  readonly maxBytes: number;
  /** Where the store reports an error an append listener threw (each backend's option of that name). */
  readonly onListenerError?: ListenerErrorHandler;
}

export interface ContractStore {
  readonly store: MailboxStore;
  /** Closes the store if still open and removes whatever the backend left behind. */
  cleanup(): Promise<void>;
}

export type ContractStoreFactory = (options: ContractStoreOptions) => Promise<ContractStore>;

export interface ContractCapabilities {
  /** The backend enforces `maxBytes` by trimming the oldest messages (default true). */
  readonly byteBudget?: boolean;
  /** stats() counts exactly what this store holds (default true); false when shared with other nodes. */
  readonly exactStats?: boolean;
}

export const CONTRACT_DEFAULTS: ContractStoreOptions = { maxMessagesPerMailbox: 1000, maxBytes: 64 * 1024 * 1024 };

/** Retention may be applied in the background; the suite waits at most this long for it. */
const RETENTION_WAIT_MS = 5000;
const POLL_MS = 20;
/** Short enough to keep the suite quick, long enough that an append finishes before expiry. */
export const SHORT_TTL_MS = 300;
const LONG_TTL_MS = 60 * 60 * 1000;
/** Time given to a backend's background expiry sweep (factories should sweep often in tests). */
export const SWEEP_GRACE_MS = 300;
export const ALL = 10_000;

interface DraftOptions {
  readonly key?: string;
  readonly fingerprint?: string;
  readonly ttlMs?: number;
}

/** A draft as createDraft makes it: a `key` among the fields is also the draft's key. */
export function draft(fields: Record<string, unknown>, options: DraftOptions = {}): MessageDraft {
  const now = Date.now();
  return {
    id: nanoid(),
    timeMs: now,
    expiresAtMs: now + (options.ttlMs ?? LONG_TTL_MS),
    fieldsJson: JSON.stringify(fields),
    ...(typeof fields.key === "string" ? { key: fields.key } : {}),
    ...(options.key === undefined ? {} : { idempotencyKey: options.key }),
    ...(options.fingerprint === undefined ? {} : { fingerprint: options.fingerprint }),
  };
}

export function item(mailbox: string, fields: Record<string, unknown>, options?: DraftOptions): AppendItem {
  return { mailbox, draft: draft(fields, options) };
}

export function stored(result: AppendResult | undefined): StoredMessage {
  expect(result?.status).toBe("stored");
  return (result as AppendResult).message;
}

export function seqs(messages: readonly StoredMessage[]): number[] {
  return messages.map((message) => message.seq);
}

export function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What every backend rejects with once it cannot answer. */
async function expectUnavailable(pending: Promise<unknown>): Promise<void> {
  const error = await pending.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(HeraldError);
  expect(error).toMatchObject({ code: "store_unavailable", status: 503, headers: { "Retry-After": "1" } });
}

/** Polls until `check` stops throwing; rethrows its last failure after the deadline. */
export async function eventually(check: () => Promise<void>, timeoutMs = RETENTION_WAIT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(POLL_MS);
    }
  }
}

async function appendMany(store: MailboxStore, mailbox: string, count: number, from = 1): Promise<StoredMessage[]> {
  const items = range(from, from + count - 1).map((n) => item(mailbox, { body: `m${n}` }));
  return (await store.append(items)).map(stored);
}

/**
 * Registers the MailboxStore contract for one backend. Every test gets a fresh
 * store from `makeStore`; mailbox names are unique per test so a backend that
 * shares state between stores (Redis) does not leak between tests.
 */
export function describeStoreContract(
  name: string,
  makeStore: ContractStoreFactory,
  capabilities: ContractCapabilities = {},
): void {
  const { byteBudget = true, exactStats = true } = capabilities;

  describe(`MailboxStore contract: ${name}`, () => {
    const open: ContractStore[] = [];
    afterEach(async () => {
      for (const made of open.splice(0)) await made.cleanup();
    });
    const fresh = async (options: Partial<ContractStoreOptions> = {}): Promise<MailboxStore> => {
      const made = await makeStore({ ...CONTRACT_DEFAULTS, ...options });
      open.push(made);
      return made.store;
    };
    const box = (label: string) => `${label}-${nanoid(8)}`;

    describeReadStateContract(fresh);

    describe("append", () => {
      it("assigns consecutive seqs from 1 in one epoch, results in item order", async () => {
        const store = await fresh();
        const a = box("a");
        const first = await appendMany(store, a, 3);
        const second = await appendMany(store, a, 2, 4);
        expect(seqs([...first, ...second])).toEqual([1, 2, 3, 4, 5]);
        const epoch = first[0]?.epoch;
        expect(epoch).toMatch(/.+/);
        for (const message of [...first, ...second]) {
          expect(message.epoch).toBe(epoch);
          expect(message.mailbox).toBe(a);
        }
        expect(second.map((m) => JSON.parse(m.json).body)).toEqual(["m4", "m5"]);
      });

      it("keeps the draft's id, times and fields in the stored message", async () => {
        const store = await fresh();
        const a = box("a");
        const fields = { title: "Grüße ✓", body: 'line\nbreak "quoted"', data: { n: [1, 2.5, null] }, tags: ["x"] };
        const d = draft(fields);
        const [result] = await store.append([{ mailbox: a, draft: d }]);
        const message = stored(result);
        expect(message).toMatchObject({ mailbox: a, seq: 1, id: d.id, timeMs: d.timeMs, expiresAtMs: d.expiresAtMs });
        expect(JSON.parse(message.json)).toMatchObject({ id: d.id, mailbox: a, seq: 1, ...fields });
        const read = await store.read(a, { epoch: "", seq: 0 }, ALL);
        expect(read.messages).toEqual([message]);
      });

      it("numbers several mailboxes in one call independently, in item order", async () => {
        const store = await fresh();
        const [a, b] = [box("a"), box("b")];
        const results = await store.append([
          item(a, { body: "a1" }),
          item(b, { body: "b1" }),
          item(a, { body: "a2" }),
          item(b, { body: "b2" }),
          item(a, { body: "a3" }),
        ]);
        const messages = results.map(stored);
        expect(messages.map((m) => [m.mailbox, m.seq, JSON.parse(m.json).body])).toEqual([
          [a, 1, "a1"],
          [b, 1, "b1"],
          [a, 2, "a2"],
          [b, 2, "b2"],
          [a, 3, "a3"],
        ]);
        expect((await store.head(a))?.lastSeq).toBe(3);
        expect((await store.head(b))?.lastSeq).toBe(2);
      });

      it("gives concurrent appends distinct consecutive seqs", async () => {
        const store = await fresh();
        const a = box("a");
        const results = await Promise.all(range(1, 100).map((n) => store.append([item(a, { body: `m${n}` })])));
        const all = results.map((r) => stored(r[0]));
        expect(seqs(all).sort((x, y) => x - y)).toEqual(range(1, 100));
        const read = await store.read(a, { epoch: "", seq: 0 }, ALL);
        expect(read.messages.map((m) => m.id)).toEqual([...all].sort((x, y) => x.seq - y.seq).map((m) => m.id));
      });
    });

    describe("read", () => {
      it("returns the messages after a position in the current epoch, with the log state", async () => {
        const store = await fresh();
        const a = box("a");
        const messages = await appendMany(store, a, 5);
        const epoch = (messages[0] as StoredMessage).epoch;
        const read = await store.read(a, { epoch, seq: 2 }, ALL);
        expect(read.log).toEqual({ epoch, lastSeq: 5, trimmedThrough: 0 });
        expect(read.messages).toEqual(messages.slice(2));
        expect((await store.read(a, { epoch, seq: 5 }, ALL)).messages).toEqual([]);
        expect((await store.read(a, { epoch, seq: 0 }, ALL)).messages).toEqual(messages);
      });

      it("starts at the earliest retained message when the epoch differs", async () => {
        const store = await fresh();
        const a = box("a");
        const messages = await appendMany(store, a, 4);
        const read = await store.read(a, { epoch: "another-epoch", seq: 3 }, ALL);
        expect(read.messages).toEqual(messages);
      });

      it("starts at the earliest retained message when the position is beyond lastSeq", async () => {
        const store = await fresh();
        const a = box("a");
        const messages = await appendMany(store, a, 3);
        const epoch = (messages[0] as StoredMessage).epoch;
        const read = await store.read(a, { epoch, seq: 7 }, ALL);
        expect(read.log?.lastSeq).toBe(3);
        expect(read.messages).toEqual(messages);
      });

      it("honours the limit", async () => {
        const store = await fresh();
        const a = box("a");
        const messages = await appendMany(store, a, 10);
        const epoch = (messages[0] as StoredMessage).epoch;
        expect(seqs((await store.read(a, { epoch, seq: 0 }, 3)).messages)).toEqual([1, 2, 3]);
        expect(seqs((await store.read(a, { epoch, seq: 4 }, 2)).messages)).toEqual([5, 6]);
        expect(seqs((await store.read(a, { epoch, seq: 8 }, 5)).messages)).toEqual([9, 10]);
        expect((await store.read(a, { epoch: "x", seq: 4 }, 1)).messages).toEqual([messages[0]]);
      });

      it("answers an unknown mailbox with no log and creates nothing", async () => {
        const store = await fresh();
        const a = box("never");
        const before = store.stats();
        const read = await store.read(a, { epoch: "e", seq: 3 }, ALL);
        expect(read).toEqual({ log: undefined, messages: [] });
        expect(await store.head(a)).toBeUndefined();
        if (exactStats) expect(store.stats()).toEqual(before);
        const [result] = await store.append([item(a, { body: "first" })]);
        expect(stored(result).seq).toBe(1);
      });

      it("never returns an expired message, nor counts its removal as trimming", async () => {
        const store = await fresh();
        const a = box("a");
        const results = await store.append([
          item(a, { body: "keeps" }),
          item(a, { body: "expires" }, { ttlMs: SHORT_TTL_MS }),
          item(a, { body: "keeps too" }),
          item(a, { body: "expires too" }, { ttlMs: SHORT_TTL_MS }),
        ]);
        const [keeps, expiring, keepsToo, expiringToo] = results.map(stored) as StoredMessage[];
        const epoch = (keeps as StoredMessage).epoch;
        expect((await store.read(a, { epoch, seq: 0 }, ALL)).messages).toHaveLength(4);
        await sleep(
          Math.max((expiring as StoredMessage).expiresAtMs, (expiringToo as StoredMessage).expiresAtMs) -
            Date.now() +
            50,
        );
        const read = await store.read(a, { epoch, seq: 0 }, ALL);
        expect(read.messages).toEqual([keeps, keepsToo]);
        expect(read.log).toEqual({ epoch, lastSeq: 4, trimmedThrough: 0 });
        expect((await store.read(a, { epoch, seq: 1 }, 1)).messages).toEqual([keepsToo]);
        const [next] = await store.append([item(a, { body: "after" })]);
        expect(stored(next).seq).toBe(5);
      });
    });

    describeLatestContract(fresh, box);

    describe("retention", () => {
      it("trims to the per-mailbox cap and advances trimmedThrough", async () => {
        const store = await fresh({ maxMessagesPerMailbox: 3 });
        const [a, b] = [box("a"), box("b")];
        const messages = await appendMany(store, a, 5);
        const other = await appendMany(store, b, 2);
        const epoch = (messages[0] as StoredMessage).epoch;
        await eventually(async () => {
          const read = await store.read(a, { epoch, seq: 0 }, ALL);
          expect(read.messages).toEqual(messages.slice(2));
          expect(read.log).toEqual({ epoch, lastSeq: 5, trimmedThrough: 2 });
        });
        // A cursor into the trimmed range resumes at the earliest retained message.
        expect(seqs((await store.read(a, { epoch, seq: 1 }, ALL)).messages)).toEqual([3, 4, 5]);
        expect((await store.read(b, { epoch: "", seq: 0 }, ALL)).messages).toEqual(other);
        await appendMany(store, a, 4, 6);
        await eventually(async () => {
          const read = await store.read(a, { epoch, seq: 0 }, ALL);
          expect(seqs(read.messages)).toEqual([7, 8, 9]);
          expect(read.log?.trimmedThrough).toBe(6);
        });
        if (exactStats) await eventually(async () => expect(store.stats().messages).toBe(5));
      });

      it.runIf(byteBudget)("keeps the store within its byte budget by trimming the oldest", async () => {
        const maxBytes = 8 * 1024;
        const store = await fresh({ maxBytes });
        const a = box("a");
        const padding = "x".repeat(400);
        let last: StoredMessage | undefined;
        for (let n = 1; n <= 60; n++) {
          const [result] = await store.append([item(a, { body: `m${n}`, data: padding })]);
          last = stored(result);
        }
        const epoch = (last as StoredMessage).epoch;
        await eventually(async () => {
          expect(store.stats().bytes).toBeLessThanOrEqual(maxBytes);
          const read = await store.read(a, { epoch, seq: 0 }, ALL);
          expect(read.log?.lastSeq).toBe(60);
          expect(read.log?.trimmedThrough).toBeGreaterThan(0);
          expect(read.messages.at(-1)).toEqual(last);
          // What is left is contiguous and starts right after what was trimmed.
          const trimmed = read.log?.trimmedThrough ?? 0;
          expect(seqs(read.messages)).toEqual(range(trimmed + 1, 60));
        });
      });
    });

    describe("idempotency", () => {
      it("answers a repeated key and fingerprint with the original, storing nothing", async () => {
        const store = await fresh();
        const a = box("a");
        const [first] = await store.append([item(a, { body: "one" }, { key: "k1", fingerprint: "f1" })]);
        const original = stored(first);
        await appendMany(store, a, 1, 2);
        const [again] = await store.append([item(a, { body: "one" }, { key: "k1", fingerprint: "f1" })]);
        expect(again).toEqual({ status: "duplicate", message: original });
        const read = await store.read(a, { epoch: "", seq: 0 }, ALL);
        expect(seqs(read.messages)).toEqual([1, 2]);
        expect(read.log?.lastSeq).toBe(2);
      });

      it("treats a repeated key within one call as a duplicate of the earlier item", async () => {
        const store = await fresh();
        const a = box("a");
        const results = await store.append([
          item(a, { body: "one" }, { key: "k", fingerprint: "f" }),
          item(a, { body: "one" }, { key: "k", fingerprint: "f" }),
          item(a, { body: "two" }),
        ]);
        const original = stored(results[0]);
        expect(results[1]).toEqual({ status: "duplicate", message: original });
        expect(stored(results[2]).seq).toBe(2);
      });

      it("answers a key reused with another fingerprint as a conflict and stores nothing of the call", async () => {
        const store = await fresh();
        const [a, b] = [box("a"), box("b")];
        const [first] = await store.append([item(a, { body: "one" }, { key: "k1", fingerprint: "f1" })]);
        const original = stored(first);
        const results = await store.append([
          item(b, { body: "innocent" }),
          item(a, { body: "fresh" }),
          item(a, { body: "changed" }, { key: "k1", fingerprint: "f2" }),
          item(a, { body: "later" }),
        ]);
        const conflict = results.find((result) => result.status === "conflict");
        expect(conflict).toEqual({ status: "conflict", message: original });
        expect(results.some((result) => result.status === "stored")).toBe(false);
        expect(await store.head(b)).toBeUndefined();
        const read = await store.read(a, { epoch: "", seq: 0 }, ALL);
        expect(read.messages).toEqual([original]);
        expect(read.log?.lastSeq).toBe(1);
        const [next] = await store.append([item(a, { body: "next" })]);
        expect(stored(next).seq).toBe(2);
      });

      it("accepts any characters in a key: one with a space is distinct from its printable look-alike", async () => {
        const store = await fresh();
        const a = box("a");
        const results = await store.append([
          item(a, { body: "publisher" }, { key: "hook:gh:d-1", fingerprint: "f1" }),
          item(a, { body: "hook" }, { key: "hook gh id d-1", fingerprint: "f2" }),
        ]);
        expect(results.map((r) => r.status)).toEqual(["stored", "stored"]);
        const [again] = await store.append([item(a, { body: "hook" }, { key: "hook gh id d-1", fingerprint: "f2" })]);
        expect(again).toEqual({ status: "duplicate", message: stored(results[1]) });
      });

      it("scopes keys to their mailbox", async () => {
        const store = await fresh();
        const [a, b] = [box("a"), box("b")];
        const results = await store.append([
          item(a, { body: "x" }, { key: "k", fingerprint: "f1" }),
          item(b, { body: "y" }, { key: "k", fingerprint: "f2" }),
        ]);
        expect(results.map((r) => r.status)).toEqual(["stored", "stored"]);
      });

      it("forgets a key once its original is trimmed by the cap", async () => {
        const store = await fresh({ maxMessagesPerMailbox: 2 });
        const a = box("a");
        const [first] = await store.append([item(a, { body: "one" }, { key: "k", fingerprint: "f1" })]);
        stored(first);
        await appendMany(store, a, 2, 2);
        await eventually(async () => expect((await store.head(a))?.trimmedThrough).toBe(1));
        const [again] = await store.append([item(a, { body: "one again" }, { key: "k", fingerprint: "f2" })]);
        expect(stored(again).seq).toBe(4);
        const [repeat] = await store.append([item(a, { body: "one again" }, { key: "k", fingerprint: "f2" })]);
        expect(repeat).toEqual({ status: "duplicate", message: stored(again) });
      });

      it("forgets a key once its original expires", async () => {
        const store = await fresh();
        const a = box("a");
        const [first] = await store.append([
          item(a, { body: "one" }, { key: "k", fingerprint: "f1", ttlMs: SHORT_TTL_MS }),
        ]);
        const original = stored(first);
        await sleep(original.expiresAtMs - Date.now() + 50);
        const [again] = await store.append([item(a, { body: "two" }, { key: "k", fingerprint: "f2" })]);
        const replacement = stored(again);
        expect(replacement.seq).toBe(2);
        // Removing the expired original must not make the store forget the key's new owner.
        await sleep(SWEEP_GRACE_MS);
        const [repeat] = await store.append([item(a, { body: "two" }, { key: "k", fingerprint: "f2" })]);
        expect(repeat).toEqual({ status: "duplicate", message: replacement });
      });
    });

    describe("remembered deliveries", () => {
      it("recalls what was remembered under a key, and nothing under any other", async () => {
        const store = await fresh();
        const key = `hook ${box("h")} id d-1`;
        expect(await store.recallDelivery(key)).toBeUndefined();
        await store.rememberDelivery(key, '{"id":"m1","seq":1}', LONG_TTL_MS);
        expect(await store.recallDelivery(key)).toBe('{"id":"m1","seq":1}');
        // Keys are opaque: ones differing in a space, a newline, a brace or case are distinct.
        for (const other of [key.replaceAll(" ", ":"), `${key}\n`, `${key} `, `{${key}}`, key.toUpperCase()]) {
          expect(await store.recallDelivery(other)).toBeUndefined();
        }
      });

      it("keeps what a second remember stored, with its expiry", async () => {
        const store = await fresh();
        const [longer, shorter] = [`d ${box("longer")}`, `d ${box("shorter")}`];
        await store.rememberDelivery(longer, "first", SHORT_TTL_MS);
        await store.rememberDelivery(longer, "second", LONG_TTL_MS);
        await store.rememberDelivery(shorter, "first", LONG_TTL_MS);
        await store.rememberDelivery(shorter, "second", SHORT_TTL_MS);
        expect(await store.recallDelivery(longer)).toBe("second");
        expect(await store.recallDelivery(shorter)).toBe("second");
        await sleep(SHORT_TTL_MS + SWEEP_GRACE_MS);
        expect(await store.recallDelivery(longer)).toBe("second");
        expect(await store.recallDelivery(shorter)).toBeUndefined();
      });

      it("never recalls an answer whose ttl has passed, and keeps the others", async () => {
        const store = await fresh();
        const [brief, lasting] = [`d ${box("brief")}`, `d ${box("lasting")}`];
        await store.rememberDelivery(brief, "gone soon", SHORT_TTL_MS);
        await store.rememberDelivery(lasting, "stays", LONG_TTL_MS);
        expect(await store.recallDelivery(brief)).toBe("gone soon");
        await sleep(SHORT_TTL_MS + 50);
        expect(await store.recallDelivery(brief)).toBeUndefined();
        // The sweep that removes it must not take anything else.
        await sleep(SWEEP_GRACE_MS);
        expect(await store.recallDelivery(lasting)).toBe("stays");
        await store.rememberDelivery(brief, "again", LONG_TTL_MS);
        expect(await store.recallDelivery(brief)).toBe("again");
      });

      it("rejects after close as store_unavailable", async () => {
        const store = await fresh();
        await store.close();
        await expectUnavailable(store.rememberDelivery(`d ${box("closed")}`, "x", LONG_TTL_MS));
        await expectUnavailable(store.recallDelivery(`d ${box("closed")}`));
      });
    });

    describe("watch", () => {
      it("tells listeners about committed messages, in seq order, until unsubscribed", async () => {
        const store = await fresh();
        const [a, b] = [box("a"), box("b")];
        const seen = new Map<string, StoredMessage[]>();
        const checks: Promise<void>[] = [];
        const unwatch = store.watch((mailbox, messages) => {
          const list = seen.get(mailbox) ?? [];
          seen.set(mailbox, list);
          if (messages === undefined) {
            // A backend that only signals movement: re-read from what was seen.
            const last = list.at(-1);
            checks.push(
              store.read(mailbox, { epoch: last?.epoch ?? "", seq: last?.seq ?? 0 }, ALL).then((read) => {
                list.push(...read.messages);
              }),
            );
            return;
          }
          list.push(...messages);
          // Committed means readable from the moment the listener hears of it.
          const newest = messages.at(-1) as StoredMessage;
          checks.push(
            store.read(mailbox, { epoch: newest.epoch, seq: newest.seq - 1 }, 1).then((read) => {
              expect(read.messages[0]?.id).toBe(newest.id);
            }),
          );
        });
        const expected: StoredMessage[] = [];
        expected.push(...(await store.append([item(a, { n: 1 }), item(b, { n: 1 }), item(a, { n: 2 })])).map(stored));
        const concurrent = await Promise.all(range(3, 12).map((n) => store.append([item(a, { n })])));
        expected.push(...concurrent.map((r) => stored(r[0])));
        const [dup] = await store.append([item(a, { n: 13 }, { key: "k", fingerprint: "f" })]);
        expected.push(stored(dup));
        await store.append([item(a, { n: 13 }, { key: "k", fingerprint: "f" })]);
        await eventually(async () => {
          await Promise.all(checks);
          expect(seqs(seen.get(a) ?? [])).toEqual(range(1, 13));
          expect(seqs(seen.get(b) ?? [])).toEqual([1]);
        });
        const byId = (list: StoredMessage[]) => [...list].sort((x, y) => x.id.localeCompare(y.id));
        expect(byId([...(seen.get(a) ?? []), ...(seen.get(b) ?? [])])).toEqual(byId(expected));
        unwatch();
        const countBefore = (seen.get(a) ?? []).length;
        await store.append([item(a, { n: 14 })]);
        await sleep(100);
        await Promise.all(checks);
        expect((seen.get(a) ?? []).length).toBe(countBefore);
      });

      it("goes on appending and telling the other listeners when one throws, and reports what it threw", async () => {
        const reported: unknown[] = [];
        const store = await fresh({ onListenerError: (error) => reported.push(error) });
        const [a, b] = [box("a"), box("b")];
        const bug = new Error("a listener's bug");
        const heard: string[] = [];
        store.watch(() => {
          throw bug;
        });
        store.watch((mailbox, messages) => {
          for (const message of messages ?? []) heard.push(`${mailbox === a ? "a" : "b"}${message.seq}`);
        });
        const [first] = await store.append([item(a, { n: 1 })]);
        expect(stored(first).seq).toBe(1);
        const [second, other] = await store.append([item(a, { n: 2 }), item(b, { n: 1 })]);
        expect([stored(second).seq, stored(other).seq]).toEqual([2, 1]);
        await eventually(async () => expect(heard.sort()).toEqual(["a1", "a2", "b1"]));
        // One report per time the listener was called: each append told it of each mailbox.
        expect(reported.length).toBeGreaterThanOrEqual(3);
        expect(reported.every((error) => error === bug)).toBe(true);
        expect(seqs((await store.read(a, { epoch: "", seq: 0 }, ALL)).messages)).toEqual([1, 2]);
      });
    });

    describe("head, stats, close", () => {
      it("head reports the log state and matches read", async () => {
        const store = await fresh();
        const a = box("a");
        expect(await store.head(a)).toBeUndefined();
        const messages = await appendMany(store, a, 3);
        const head = await store.head(a);
        expect(head).toEqual({ epoch: (messages[0] as StoredMessage).epoch, lastSeq: 3, trimmedThrough: 0 });
        expect((await store.read(a, { epoch: "", seq: 0 }, 1)).log).toEqual(head);
      });

      it("stats count mailboxes, messages and bytes", async () => {
        const store = await fresh();
        const [a, b] = [box("a"), box("b")];
        await appendMany(store, a, 3);
        const small = store.stats();
        await store.append([item(b, { body: "y".repeat(2000) })]);
        const stats = store.stats();
        if (exactStats) {
          expect(small.mailboxes).toBe(1);
          expect(small.messages).toBe(3);
          expect(stats.mailboxes).toBe(2);
          expect(stats.messages).toBe(4);
          expect(stats.bytes).toBeGreaterThanOrEqual(small.bytes + 2000);
        }
        expect(small.bytes).toBeGreaterThan(0);
        for (const value of Object.values(stats)) expect(Number.isFinite(value) && value >= 0).toBe(true);
      });

      it("is ready until closed; appends after close reject as store_unavailable", async () => {
        const store = await fresh();
        const a = box("a");
        expect(store.ready()).toBe(true);
        const [result] = await store.append([item(a, { body: "before" })]);
        stored(result);
        await store.close();
        expect(store.ready()).toBe(false);
        await expectUnavailable(store.append([item(a, { body: "after" })]));
      });
    });
  });
}
