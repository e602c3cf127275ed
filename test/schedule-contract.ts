import { nanoid } from "nanoid";
import { afterEach, describe, expect, it } from "vitest";
import type { ScheduleBounds, ScheduledDraft, ScheduledEntry, ScheduleStore } from "../src/store/schedule-store.js";
import { type ContractHandles, sharedHandles } from "./helpers/contract-handles.js";

export type ContractSchedule = ContractHandles<ScheduleStore>;

export type ScheduleFactory = () => Promise<ContractSchedule>;

/** A ContractSchedule on a backend shared by handles (nodes); see sharedHandles. */
export const sharedSchedule = sharedHandles<ScheduleStore>;

const ROOMY: ScheduleBounds = { maxPerMailbox: 1000, maxTotal: 100_000 };
const LEASE_MS = 30_000;
const HOUR_MS = 60 * 60_000;

interface DraftOptions {
  readonly key?: string;
  readonly fingerprint?: string;
  readonly id?: string;
}

/** An entry of `mailbox` due at `dueAtMs`, with a key (and fingerprint "fp" unless given) when asked. */
export function scheduledDraft(
  mailbox: string,
  dueAtMs: number,
  fields: Record<string, unknown> = {},
  options: DraftOptions = {},
): ScheduledDraft {
  return {
    id: options.id ?? nanoid(),
    mailbox,
    dueAtMs,
    fieldsJson: JSON.stringify(fields),
    ttlMs: HOUR_MS,
    ...(options.key === undefined ? {} : { idempotencyKey: options.key, fingerprint: options.fingerprint ?? "fp" }),
  };
}

const ids = (entries: readonly ScheduledEntry[]) => entries.map((entry) => entry.id);

/**
 * The ScheduleStore contract (src/store/schedule-store.ts), run against every
 * backend. Times are explicit (`now` arguments) around the real clock, which
 * backends use only to expire delivered keys.
 */
export function describeScheduleContract(name: string, factory: ScheduleFactory): void {
  describe(`schedule store contract: ${name}`, () => {
    const opened: ContractSchedule[] = [];
    afterEach(async () => {
      for (const schedule of opened.splice(0)) await schedule.cleanup();
    });
    const open = async (): Promise<ContractSchedule> => {
      const schedule = await factory();
      opened.push(schedule);
      return schedule;
    };

    it("keeps every field, lists a mailbox's entries earliest due first (ties in the order added)", async () => {
      const { store } = await open();
      const t = Date.now() + HOUR_MS;
      const late = scheduledDraft("box", t + 2000, { title: "late", data: { n: [1, 2] } });
      const tieA = scheduledDraft("box", t + 1000, { body: "a" }, { key: "k-a", fingerprint: "f-a" });
      const tieB = scheduledDraft("box", t + 1000, { body: "b" });
      const other = scheduledDraft("other", t, { body: "elsewhere" });
      const results = await store.add([late, tieA, tieB, other], ROOMY);
      expect(results.map((result) => result.status)).toEqual(["scheduled", "scheduled", "scheduled", "scheduled"]);
      expect(results[0]).toEqual({ status: "scheduled", entry: { id: late.id, mailbox: "box", dueAtMs: t + 2000 } });
      expect(await store.list("box", 10)).toEqual([tieA, tieB, late]);
      expect(ids(await store.list("box", 2))).toEqual([tieA.id, tieB.id]);
      expect(await store.list("nobody", 10)).toEqual([]);
      expect(await store.get(tieA.id)).toEqual(tieA);
      expect(await store.get("no-such-id")).toBeUndefined();
      expect(await store.pending()).toBe(4);
    });

    it("claims only what is due, earliest first, at most max, under a lease; re-claims once the lease ended", async () => {
      const { store } = await open();
      const t = Date.now();
      const drafts = [3, 1, 2, 10].map((n) => scheduledDraft(`m${n % 2}`, t + n * 1000, { n }));
      await store.add(drafts, ROOMY);
      expect(await store.claim(t, t + LEASE_MS, 10)).toEqual([]);
      const first = await store.claim(t + 3000, t + 3000 + LEASE_MS, 2);
      expect(first.map((entry) => JSON.parse(entry.fieldsJson).n)).toEqual([1, 2]);
      const second = await store.claim(t + 3000, t + 3000 + LEASE_MS, 10);
      expect(second.map((entry) => JSON.parse(entry.fieldsJson).n)).toEqual([3]);
      // Leased: nothing but 10 (due by then) until the leases end; then 3, 1, 2 again (leases ending
      // together go in the order added).
      expect(await store.claim(t + 9000, t + 9000 + LEASE_MS, 10)).toEqual([]);
      const again = await store.claim(t + 3000 + LEASE_MS, t + 4000 + 2 * LEASE_MS, 10);
      expect(again.map((entry) => JSON.parse(entry.fieldsJson).n)).toEqual([10, 3, 1, 2]);
      // Claimed entries stay listed (and countable) until completed.
      expect((await store.list("m1", 10)).length).toBe(2);
      expect(await store.pending()).toBe(4);
    });

    it("hands each entry to one of several concurrent claimers", async () => {
      const schedule = await open();
      const t = Date.now();
      const drafts = Array.from({ length: 60 }, (_, n) => scheduledDraft(`c${n % 3}`, t - 1000 + n, { n }));
      await schedule.store.add(drafts, ROOMY);
      const claimers = [schedule.store, ...(schedule.twin ? [await schedule.twin(), await schedule.twin()] : [])];
      const claims = await Promise.all(
        Array.from({ length: 6 }, (_, i) =>
          (claimers[i % claimers.length] as ScheduleStore).claim(t, t + LEASE_MS, 15),
        ),
      );
      const claimed = claims.flatMap(ids);
      expect(claimed.length).toBe(60);
      expect(new Set(claimed).size).toBe(60);
    });

    it("completes entries: gone from claims, lists and gets; completing again or a gone one does nothing", async () => {
      const { store } = await open();
      const t = Date.now();
      const [a, b] = [scheduledDraft("done", t - 10, { n: 1 }), scheduledDraft("done", t - 5, { n: 2 })];
      await store.add([a, b] as ScheduledDraft[], ROOMY);
      const claimed = await store.claim(t, t + LEASE_MS, 10);
      await store.complete([{ entry: claimed[0] as ScheduledEntry, expiresAtMs: t + HOUR_MS }]);
      await store.complete([{ entry: claimed[0] as ScheduledEntry, expiresAtMs: t + HOUR_MS }]);
      expect(await store.get((a as ScheduledDraft).id)).toBeUndefined();
      expect(ids(await store.list("done", 10))).toEqual([(b as ScheduledDraft).id]);
      expect(ids(await store.claim(t + LEASE_MS + 1, t + 2 * LEASE_MS, 10))).toEqual([(b as ScheduledDraft).id]);
      await store.complete([{ entry: b as ScheduledDraft, expiresAtMs: undefined }]);
      expect(await store.list("done", 10)).toEqual([]);
      expect(await store.pending()).toBe(0);
      expect(await store.claim(t + 10 * LEASE_MS, t + 11 * LEASE_MS, 10)).toEqual([]);
    });

    it("tells when the next entry can be claimed: its due time, or its lease end once claimed", async () => {
      const { store } = await open();
      expect(await store.nextDueAt()).toBeUndefined();
      const t = Date.now();
      await store.add([scheduledDraft("n", t + 5000), scheduledDraft("n", t + 2000)], ROOMY);
      expect(await store.nextDueAt()).toBe(t + 2000);
      await store.claim(t + 2000, t + 9000, 10);
      expect(await store.nextDueAt()).toBe(t + 5000);
      await store.claim(t + 5000, t + 8000, 10);
      expect(await store.nextDueAt()).toBe(t + 8000);
    });

    it("cancels a pending entry and frees its key; not one being delivered; unknown ones are missing", async () => {
      const { store } = await open();
      const t = Date.now();
      const pending = scheduledDraft("cx", t + HOUR_MS, { n: 1 }, { key: "order-1" });
      const due = scheduledDraft("cx", t - 1, { n: 2 });
      await store.add([pending, due], ROOMY);
      expect(await store.cancel(pending.id, t)).toBe("cancelled");
      expect(await store.cancel(pending.id, t)).toBe("missing");
      expect(await store.get(pending.id)).toBeUndefined();
      // The key is free again: the same publish is scheduled anew.
      const again = scheduledDraft("cx", t + HOUR_MS, { n: 1 }, { key: "order-1" });
      expect((await store.add([again], ROOMY))[0]?.status).toBe("scheduled");
      await store.claim(t, t + LEASE_MS, 10);
      expect(await store.cancel(due.id, t + 1000)).toBe("delivering");
      // The claimer died: once its lease ended, the entry may be cancelled.
      expect(await store.cancel(due.id, t + LEASE_MS + 1)).toBe("cancelled");
      expect(await store.claim(t + 2 * LEASE_MS, t + 3 * LEASE_MS, 10)).toEqual([]);
      expect(await store.cancel("never-was", t)).toBe("missing");
      expect(await store.pending()).toBe(1);
    });

    it("refuses to pass the bounds per mailbox and in all, adding nothing of the call", async () => {
      const { store } = await open();
      const t = Date.now() + HOUR_MS;
      const bounds = { maxPerMailbox: 3, maxTotal: 5 };
      expect((await store.add([scheduledDraft("a", t), scheduledDraft("a", t)], bounds))[0]?.status).toBe("scheduled");
      const over = await store.add([scheduledDraft("b", t), scheduledDraft("a", t), scheduledDraft("a", t)], bounds);
      expect(over).toEqual([{ status: "full", mailbox: "a" }]);
      expect((await store.list("b", 10)).length).toBe(0);
      await store.add([scheduledDraft("a", t), scheduledDraft("b", t)], bounds);
      expect(await store.add([scheduledDraft("c", t), scheduledDraft("d", t)], bounds)).toEqual([
        { status: "full", mailbox: undefined },
      ]);
      expect(await store.pending()).toBe(4);
      // A duplicate adds nothing, so it does not count.
      const keyed = scheduledDraft("c", t, {}, { key: "once" });
      await store.add([keyed], bounds);
      const repeat = await store.add([scheduledDraft("c", t + 1, {}, { key: "once" })], bounds);
      expect(repeat).toEqual([{ status: "duplicate", entry: { id: keyed.id, mailbox: "c", dueAtMs: t } }]);
    });

    it("answers a reused key with the original: the same fingerprint is a duplicate, another a conflict", async () => {
      const { store } = await open();
      const t = Date.now() + HOUR_MS;
      const original = scheduledDraft("idem", t, { body: "paid" }, { key: "inv-9", fingerprint: "F1" });
      await store.add([original], ROOMY);
      const same = scheduledDraft("idem", t + 5, { body: "paid" }, { key: "inv-9", fingerprint: "F1" });
      const fresh = scheduledDraft("idem", t, { body: "new" });
      expect(await store.add([fresh, same], ROOMY)).toEqual([
        { status: "scheduled", entry: { id: fresh.id, mailbox: "idem", dueAtMs: t } },
        { status: "duplicate", entry: { id: original.id, mailbox: "idem", dueAtMs: t } },
      ]);
      const other = scheduledDraft("idem", t, { body: "refund" }, { key: "inv-9", fingerprint: "F2" });
      const bystander = scheduledDraft("idem", t, { body: "bystander" });
      expect(await store.add([bystander, other], ROOMY)).toEqual([
        { status: "conflict", entry: { id: original.id, mailbox: "idem", dueAtMs: t } },
      ]);
      expect(await store.get(bystander.id)).toBeUndefined();
      // Keys are per mailbox; within one call a repeated key is a duplicate of the first.
      const elsewhere = scheduledDraft("idem-2", t, {}, { key: "inv-9", fingerprint: "F2" });
      const twice = scheduledDraft("idem-2", t, {}, { key: "inv-9", fingerprint: "F2" });
      const results = await store.add([elsewhere, twice], ROOMY);
      expect(results.map((result) => result.status)).toEqual(["scheduled", "duplicate"]);
      expect(await store.pending()).toBe(3);
    });

    it("remembers a delivered entry's key until its message expires, then forgets it", async () => {
      const { store } = await open();
      const t = Date.now();
      const kept = scheduledDraft("kept", t - 10, { n: 1 }, { key: "k1", fingerprint: "F" });
      const gone = scheduledDraft("kept", t - 5, { n: 2 }, { key: "k2", fingerprint: "F" });
      await store.add([kept, gone], ROOMY);
      const claimed = await store.claim(t, t + LEASE_MS, 10);
      expect(ids(claimed)).toEqual([kept.id, gone.id]);
      await store.complete([
        { entry: claimed[0] as ScheduledEntry, expiresAtMs: Date.now() + HOUR_MS },
        { entry: claimed[1] as ScheduledEntry, expiresAtMs: Date.now() - 1 },
      ]);
      const later = Date.now() + HOUR_MS;
      const repeatKept = await store.add(
        [scheduledDraft("kept", later, { n: 1 }, { key: "k1", fingerprint: "F" })],
        ROOMY,
      );
      expect(repeatKept).toEqual([{ status: "duplicate", entry: { id: kept.id, mailbox: "kept", dueAtMs: t - 10 } }]);
      const conflicting = await store.add([scheduledDraft("kept", later, {}, { key: "k1", fingerprint: "G" })], ROOMY);
      expect(conflicting[0]?.status).toBe("conflict");
      const repeatGone = await store.add(
        [scheduledDraft("kept", later, { n: 2 }, { key: "k2", fingerprint: "F" })],
        ROOMY,
      );
      expect(repeatGone[0]?.status).toBe("scheduled");
    });

    it("rejects with store_unavailable once closed", async () => {
      const { store } = await open();
      await store.close();
      await expect(store.add([scheduledDraft("x", Date.now())], ROOMY)).rejects.toMatchObject({
        code: "store_unavailable",
      });
      await expect(store.claim(Date.now(), Date.now() + LEASE_MS, 1)).rejects.toMatchObject({
        code: "store_unavailable",
      });
    });
  });
}
