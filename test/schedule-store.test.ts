import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createMemorySchedule } from "../src/store/memory-schedule.js";
import { createSqliteSchedule } from "../src/store/sqlite-schedule.js";
import { openTestSqlite, sqliteHandles } from "./helpers/contract-handles.js";
import { describeScheduleContract, scheduledDraft } from "./schedule-contract.js";

const ROOMY = { maxPerMailbox: 1000, maxTotal: 100_000 };

describeScheduleContract("memory", async () => {
  const store = createMemorySchedule();
  return { store, cleanup: () => store.close() };
});

describeScheduleContract("sqlite", () => sqliteHandles("schedule", (db) => createSqliteSchedule({ db })));

describe("sqlite schedule across a restart", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it("keeps pending entries and keys, and frees the claims of the process that held the database", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "herald-schedule-"));
    dirs.push(dataDir);
    const t = Date.now();
    const first = openTestSqlite(dataDir);
    const before = createSqliteSchedule({ db: first.database });
    const claimed = scheduledDraft("r", t - 1000, { n: 1 });
    const waiting = scheduledDraft("r", t + 60_000, { n: 2 }, { key: "k" });
    await before.add([claimed, waiting], ROOMY);
    expect((await before.claim(t, t + 60_000, 10)).map((entry) => entry.id)).toEqual([claimed.id]);
    await before.close();
    await first.close();

    const second = openTestSqlite(dataDir);
    const after = createSqliteSchedule({ db: second.database });
    try {
      expect(await after.pending()).toBe(2);
      expect(await after.list("r", 10)).toEqual([claimed, waiting]);
      // The claim died with its process: due again at once, not when its lease would have ended.
      expect((await after.claim(t, t + 60_000, 10)).map((entry) => entry.id)).toEqual([claimed.id]);
      const repeat = await after.add([scheduledDraft("r", t + 90_000, { n: 2 }, { key: "k" })], ROOMY);
      expect(repeat[0]?.status).toBe("duplicate");
    } finally {
      await after.close();
      await second.close();
    }
  });
});
