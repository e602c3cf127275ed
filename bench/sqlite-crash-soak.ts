import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCrashCycles } from "../test/helpers/sqlite-crash.js";

/**
 * The crash test at length: kill -9 a child Herald on SQLite over and over while
 * publishers hammer it, then check every acknowledged message survived in order.
 * Bounded in cycles and time: SOAK_CYCLES (default 200), SOAK_SECONDS (default 600),
 * SOAK_SYNC full|normal (default full), SOAK_SEED to replay a failing run.
 */

const CYCLES = Number(process.env.SOAK_CYCLES ?? 200);
const MAX_SECONDS = Number(process.env.SOAK_SECONDS ?? 600);
const SYNC = process.env.SOAK_SYNC === "normal" ? "normal" : "full";
const PUBLISHERS = 8;

const dataDir = mkdtempSync(join(tmpdir(), "herald-soak-"));
try {
  const report = await runCrashCycles({
    dataDir,
    cycles: CYCLES,
    maxMs: MAX_SECONDS * 1000,
    publishers: PUBLISHERS,
    mailboxes: ["soak-a", "soak-b", "soak-c"],
    minKillMs: 10,
    maxKillMs: 1500,
    sync: SYNC,
    ...(process.env.SOAK_SEED ? { seed: Number(process.env.SOAK_SEED) } : {}),
    log: (line) => console.log(line),
  });
  console.log(JSON.stringify({ sync: SYNC, ...report }));
} catch (error) {
  console.error("soak failed:", error);
  process.exitCode = 1;
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
