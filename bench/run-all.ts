import { spawnSync } from "node:child_process";
import { BENCH_FILE_LIMIT, ROOT } from "./lib/herald-process.js";

/** Every scenario, each in its own load-generator process with the open-file limit raised. */
const SCENARIOS = ["fanout", "fanout-light", "idle", "ingest", "long-poll", "resume", "many-mailboxes", "redis"];

const only = process.argv.slice(2);
let failed = 0;
for (const scenario of SCENARIOS) {
  if (only.length > 0 && !only.includes(scenario)) continue;
  console.log(`\n=== ${scenario}`);
  const run = spawnSync(
    "bash",
    ["-c", `ulimit -n ${BENCH_FILE_LIMIT} && exec node --import tsx bench/${scenario}.ts`],
    {
      cwd: ROOT,
      stdio: "inherit",
      env: { ...process.env, HERALD_BENCH_LIMITED: "1" },
    },
  );
  if (run.status !== 0) {
    failed += 1;
    console.error(`${scenario} failed with status ${run.status}`);
  }
}
console.log("\nTable written to bench/results/summary.md");
process.exitCode = failed > 0 ? 1 : 0;
