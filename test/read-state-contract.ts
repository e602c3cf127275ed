import { nanoid } from "nanoid";
import { describe, expect, it } from "vitest";
import type { MailboxStore, MarkReadResult, ReadState } from "../src/store/mailbox-store.js";
import { draft } from "./store-contract.js";

/** How the store contract hands this part a fresh store with a message cap. */
export type FreshStore = (options?: { maxMessagesPerMailbox?: number }) => Promise<MailboxStore>;

const SHORT_TTL_MS = 300;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function append(store: MailboxStore, mailbox: string, count: number, ttlMs?: number): Promise<string> {
  const items = Array.from({ length: count }, (_, i) => ({
    mailbox,
    draft: draft({ body: `m${i}` }, ttlMs === undefined ? {} : { ttlMs }),
  }));
  const results = await store.append(items);
  return results[0]?.message.epoch as string;
}

function state(result: MarkReadResult): ReadState {
  expect(result.status).not.toBe("past-head");
  return (result as { state: ReadState }).state;
}

/**
 * The read-state part of the MailboxStore contract: positions move only
 * forward, are checked against the head, are per reader and mailbox, count
 * only retained messages as unread, and every move is heard by read listeners.
 */
export function describeReadStateContract(fresh: FreshStore): void {
  const box = (label: string) => `${label}-${nanoid(8)}`;

  describe("read state", () => {
    it("of a mailbox that does not exist is nothing read, nothing unread; only seq 0 may be marked", async () => {
      const store = await fresh();
      const a = box("a");
      expect(await store.readState(a, "alice")).toEqual({ position: { epoch: "", seq: 0 }, unread: 0, lastSeq: 0 });
      expect((await store.markRead(a, "alice", { seq: 0 })).status).toBe("unchanged");
      expect(await store.markRead(a, "alice", { seq: 1 })).toEqual({ status: "past-head", lastSeq: 0 });
      expect(await store.head(a)).toBeUndefined();
    });

    it("moves only forward, refuses a mark past the head, ignores an earlier epoch", async () => {
      const store = await fresh();
      const a = box("a");
      const epoch = await append(store, a, 5);
      expect(await store.readState(a, "alice")).toEqual({ position: { epoch, seq: 0 }, unread: 5, lastSeq: 5 });
      const moved = await store.markRead(a, "alice", { seq: 2 });
      expect(moved).toEqual({ status: "moved", state: { position: { epoch, seq: 2 }, unread: 3, lastSeq: 5 } });
      const older = await store.markRead(a, "alice", { seq: 1 });
      expect(older).toEqual({ status: "unchanged", state: { position: { epoch, seq: 2 }, unread: 3, lastSeq: 5 } });
      expect(await store.markRead(a, "alice", { seq: 6 })).toEqual({ status: "past-head", lastSeq: 5 });
      expect((await store.markRead(a, "alice", { epoch: "an-older-epoch", seq: 4 })).status).toBe("unchanged");
      expect(state(await store.markRead(a, "alice", { epoch, seq: 5 }))).toEqual({
        position: { epoch, seq: 5 },
        unread: 0,
        lastSeq: 5,
      });
      await append(store, a, 2);
      expect(await store.readState(a, "alice")).toEqual({ position: { epoch, seq: 5 }, unread: 2, lastSeq: 7 });
    });

    it("is kept per reader and per mailbox", async () => {
      const store = await fresh();
      const [a, b] = [box("a"), box("b")];
      await append(store, a, 3);
      await append(store, b, 3);
      await store.markRead(a, "alice", { seq: 3 });
      await store.markRead(b, "alice", { seq: 1 });
      expect((await store.readState(a, "alice")).unread).toBe(0);
      expect((await store.readState(b, "alice")).unread).toBe(2);
      expect((await store.readState(a, "bob")).unread).toBe(3);
      expect((await store.readState(a, "bob")).position.seq).toBe(0);
    });

    it("counts as unread only messages still retained: trimmed and expired ones are not", async () => {
      const store = await fresh({ maxMessagesPerMailbox: 3 });
      const a = box("a");
      await append(store, a, 6);
      // Retention may trim in the background; the count never exceeds what is retained.
      await expect.poll(async () => (await store.readState(a, "alice")).unread, { timeout: 5000 }).toBe(3);
      // A position among trimmed messages still counts what follows it and is retained.
      expect(state(await store.markRead(a, "alice", { seq: 1 })).unread).toBe(3);
      expect(state(await store.markRead(a, "alice", { seq: 5 })).unread).toBe(1);
      const b = box("b");
      await append(store, b, 2, SHORT_TTL_MS);
      await append(store, b, 1);
      await sleep(SHORT_TTL_MS + 50);
      expect(await store.readState(b, "alice")).toMatchObject({ unread: 1, lastSeq: 3 });
    });

    it("tells read listeners of each move, not of marks that change nothing", async () => {
      const store = await fresh();
      const a = box("a");
      const epoch = await append(store, a, 4);
      const heard: [string, string, ReadState][] = [];
      const unwatch = store.watchReads((mailbox, reader, moved) => {
        if (mailbox === a) heard.push([mailbox, reader, moved]);
      });
      await store.markRead(a, "alice", { seq: 3 });
      await store.markRead(a, "alice", { seq: 2 });
      await store.markRead(a, "alice", { seq: 9 });
      await expect.poll(() => heard.length).toBe(1);
      expect(heard[0]).toEqual([a, "alice", { position: { epoch, seq: 3 }, unread: 1, lastSeq: 4 }]);
      unwatch();
      await store.markRead(a, "alice", { seq: 4 });
      await sleep(100);
      expect(heard).toHaveLength(1);
    });

    it("accepts reader names with any characters a token subject may hold", async () => {
      const store = await fresh();
      const a = box("a");
      await append(store, a, 2);
      const reader = 'auth0|user 42 ✓ "quoted"';
      expect(state(await store.markRead(a, reader, { seq: 1 })).unread).toBe(1);
      expect((await store.readState(a, reader)).position.seq).toBe(1);
    });
  });
}
