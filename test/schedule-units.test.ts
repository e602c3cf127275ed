import { describe, expect, it } from "vitest";
import { parseFileConfig } from "../src/config-file.js";
import {
  parseScheduleValue,
  resolveDueAt,
  rfc3339Ms,
  scheduleFingerprint,
  scheduleFromQuery,
  splitSchedule,
} from "../src/core/schedule-input.js";
import { Scheduler } from "../src/core/scheduler.js";
import { DEFAULT_SCHEDULE_SETTINGS } from "../src/schedule-config.js";
import type { AppendResult, StoredMessage } from "../src/store/mailbox-store.js";
import { createMemorySchedule } from "../src/store/memory-schedule.js";
import type { ScheduledEntry } from "../src/store/schedule-store.js";
import { until } from "./helpers/until.js";
import { scheduledDraft } from "./schedule-contract.js";

const delayOf = (value: unknown) => {
  const spec = parseScheduleValue("delay", value, '"delay"');
  return spec.kind === "delay" ? spec.ms : Number.NaN;
};

describe("delay and at", () => {
  it("reads a delay as seconds or a duration", () => {
    expect(delayOf(90)).toBe(90_000);
    expect(delayOf(0.5)).toBe(500);
    expect(delayOf("90")).toBe(90_000);
    expect(delayOf("90s")).toBe(90_000);
    expect(delayOf("30m")).toBe(1_800_000);
    expect(delayOf("2h")).toBe(7_200_000);
    expect(delayOf("1d")).toBe(86_400_000);
    expect(delayOf("1h30m")).toBe(5_400_000);
    expect(delayOf("1.5h")).toBe(5_400_000);
    expect(delayOf("250ms")).toBe(250);
    for (const bad of [0, -1, "0s", "", "m", "5x", "5 m", "1h 30m", "soon", Number.NaN, Infinity, null, true, {}]) {
      expect(() => delayOf(bad), String(bad)).toThrow(/"delay" must be a number of seconds greater than 0/);
    }
  });

  it("reads an RFC 3339 time with a zone, refusing impossible dates", () => {
    expect(rfc3339Ms("2030-01-31T09:00:00Z")).toBe(Date.UTC(2030, 0, 31, 9));
    expect(rfc3339Ms("2030-01-31T10:00:00+01:00")).toBe(Date.UTC(2030, 0, 31, 9));
    expect(rfc3339Ms("2030-01-31t09:00:00.123456z")).toBe(Date.UTC(2030, 0, 31, 9, 0, 0, 123));
    expect(rfc3339Ms("2030-01-31 09:00:00Z")).toBe(Date.UTC(2030, 0, 31, 9));
    for (const bad of ["2030-01-31", "2030-01-31T09:00:00", "2030-02-30T00:00:00Z", "2030-01-31T25:00:00Z", 1e12]) {
      expect(rfc3339Ms(bad), String(bad)).toBeNaN();
    }
  });

  it("takes delay and at out of a message, never both, and leaves anything else alone", () => {
    const split = splitSchedule({ title: "t", delay: "5m" });
    expect(split.message).toEqual({ title: "t" });
    expect(split.when).toMatchObject({ kind: "delay", ms: 300_000 });
    expect(splitSchedule({ title: "t" })).toEqual({ message: { title: "t" }, when: undefined });
    expect(splitSchedule("text")).toEqual({ message: "text", when: undefined });
    expect(() => splitSchedule({ delay: 1, at: "2030-01-01T00:00:00Z" }, "messages[3]: ")).toThrow(
      'messages[3]: give "delay" or "at", not both',
    );
    expect(scheduleFromQuery(undefined, "")).toBeUndefined();
    expect(scheduleFromQuery("", "2030-01-01T00:00:00Z")).toMatchObject({ kind: "at", code: "bad_parameter" });
    expect(() => scheduleFromQuery("1", "2030-01-01T00:00:00Z")).toThrow(/not both/);
  });

  it("resolves a due time within the bound, and fingerprints the schedule as asked", () => {
    const week = 7 * 86_400_000;
    const now = Date.UTC(2030, 0, 1);
    expect(resolveDueAt(parseScheduleValue("delay", "1h", "d"), now, week)).toBe(now + 3_600_000);
    expect(() => resolveDueAt(parseScheduleValue("delay", "8d", '"delay"'), now, week)).toThrow(
      '"delay" may be at most 604800 seconds (7 days) ahead',
    );
    const at = parseScheduleValue("at", "2030-01-01T00:00:00Z", '"at"');
    expect(() => resolveDueAt(at, now, week)).toThrow(/"at" must be in the future; it is 2030-01-01T00:00:00.000Z/);
    expect(resolveDueAt(at, now - 1, week)).toBe(now);
    const thirtyMinutes = parseScheduleValue("delay", "30m", "d");
    expect(scheduleFingerprint("{}", thirtyMinutes)).toBe(
      scheduleFingerprint("{}", parseScheduleValue("delay", 1800, "d")),
    );
    expect(scheduleFingerprint("{}", thirtyMinutes)).not.toBe(
      scheduleFingerprint("{}", parseScheduleValue("delay", 1, "d")),
    );
    expect(scheduleFingerprint("{}", thirtyMinutes)).not.toBe(scheduleFingerprint('{"a":1}', thirtyMinutes));
  });
});

describe("the schedule config section", () => {
  it("takes defaults for what it leaves out and refuses unknown fields and bad numbers", () => {
    expect(parseFileConfig({}, {}).schedule).toBeUndefined();
    expect(parseFileConfig({ schedule: { maxPendingPerMailbox: 10 } }, {}).schedule).toEqual({
      ...DEFAULT_SCHEDULE_SETTINGS,
      maxPendingPerMailbox: 10,
    });
    expect(() => parseFileConfig({ schedule: { maxDelay: 5 } }, {})).toThrow(/schedule: unknown field "maxDelay"/);
    expect(() => parseFileConfig({ schedule: { leaseSeconds: 0 } }, {})).toThrow(/schedule.leaseSeconds must be/);
  });
});

function stored(entry: ScheduledEntry, status: "stored" | "duplicate" | "conflict" = "stored"): AppendResult {
  const message: StoredMessage = {
    mailbox: entry.mailbox,
    epoch: "e",
    seq: 1,
    id: entry.id,
    timeMs: Date.now(),
    expiresAtMs: Date.now() + 60_000,
    json: "{}",
  };
  return { status, message };
}

describe("Scheduler", () => {
  it("delivers due entries in batches in due order, and drops one whose key conflicts, alone", async () => {
    const store = createMemorySchedule();
    const t = Date.now();
    const drafts = Array.from({ length: 7 }, (_, n) => scheduledDraft("s", t - 100 + n, { n }));
    await store.add(drafts, { maxPerMailbox: 100, maxTotal: 100 });
    const calls: number[][] = [];
    const errors: unknown[] = [];
    const conflicting = drafts[4]?.id;
    const scheduler = new Scheduler({
      store,
      leaseMs: 10_000,
      pollMs: 50,
      batchSize: 3,
      onError: (error) => errors.push(error),
      deliver: async (entries) => {
        calls.push(entries.map((entry) => JSON.parse(entry.fieldsJson).n));
        const conflict = entries.some((entry) => entry.id === conflicting);
        return entries.map((entry) => stored(entry, conflict && entry.id === conflicting ? "conflict" : "stored"));
      },
    });
    scheduler.start();
    try {
      await until(async () => (await store.pending()) === 0, "every entry completed");
    } finally {
      await scheduler.stop();
    }
    expect(calls).toEqual([[0, 1, 2], [3, 4, 5], [3], [4], [5], [6]]);
    expect(errors.map((error) => (error as Error).message)).toEqual([
      `scheduled message ${conflicting} for s dropped: its idempotency key names another message`,
    ]);
  });

  it("reports a failing store once per streak, and delivers once it answers again", async () => {
    const store = createMemorySchedule();
    await store.add([scheduledDraft("f", Date.now() - 1)], { maxPerMailbox: 10, maxTotal: 10 });
    let failures = 3;
    const errors: unknown[] = [];
    const delivered: string[] = [];
    const scheduler = new Scheduler({
      store,
      leaseMs: 1,
      pollMs: 20,
      onError: (error) => errors.push(error),
      deliver: async (entries) => {
        if (failures-- > 0) throw new Error("store down");
        delivered.push(...entries.map((entry) => entry.id));
        return entries.map((entry) => stored(entry));
      },
    });
    scheduler.start();
    try {
      await until(() => delivered.length === 1, "the delivery after the failures");
    } finally {
      await scheduler.stop();
    }
    expect(errors.map((error) => (error as Error).message)).toEqual(["store down"]);
  });

  it("wakes for an entry added sooner than its next poll, and takes no round once stopped", async () => {
    const store = createMemorySchedule();
    const delivered: string[] = [];
    const scheduler = new Scheduler({
      store,
      leaseMs: 10_000,
      pollMs: 60_000,
      onError: () => {},
      deliver: async (entries) => {
        delivered.push(...entries.map((entry) => entry.id));
        return entries.map((entry) => stored(entry));
      },
    });
    scheduler.start();
    const soon = scheduledDraft("w", Date.now() + 100);
    await store.add([soon], { maxPerMailbox: 10, maxTotal: 10 });
    scheduler.wake(soon.dueAtMs);
    await until(() => delivered.length === 1, "the woken delivery");
    await scheduler.stop();
    const late = scheduledDraft("w", Date.now() - 1);
    await store.add([late], { maxPerMailbox: 10, maxTotal: 10 });
    scheduler.wake(late.dueAtMs);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(delivered).toEqual([soon.id]);
  });
});
