import { spawnSync } from "node:child_process";
import { BENCH_FILE_LIMIT, ROOT } from "./lib/herald-process.js";

/** Every scenario, each in its own load-generator process with the open-file limit raised. */
const SCENARIOS = [
  "fanout",
  "fanout-presence",
  "fanout-light",
  "mercure-fanout",
  "idle",
  "ingest",
  "long-poll",
  "resume",
  "many-mailboxes",
  "conflation",
  "sqlite",
  "redis",
  "workers-scaling",
  "replay-herd",
  "schedule-lateness",
  "push-burst",
  "pressure",
  "startup",
];

/** Runs of each scenario: the machine is shared, so one run can be skewed by other work. */
const REPEAT = Number(process.env.BENCH_REPEAT ?? 2);

const only = process.argv.slice(2);
const session = new Date().toISOString();
let failed = 0;
for (const scenario of SCENARIOS) {
  if (only.length > 0 && !only.includes(scenario)) continue;
  for (let attempt = 1; attempt <= REPEAT; attempt++) {
    console.log(`\n=== ${scenario} (run ${attempt} of ${REPEAT})`);
    if (runScenario(scenario) !== 0) failed += 1;
  }
}
console.log("\nTable written to bench/results/summary.md");
process.exitCode = failed > 0 ? 1 : 0;

function runScenario(scenario: string): number {
  const run = spawnSync(
    "bash",
    ["-c", `ulimit -n ${BENCH_FILE_LIMIT} && exec node --import tsx bench/${scenario}.ts`],
    {
      cwd: ROOT,
      stdio: "inherit",
      env: { ...process.env, HERALD_BENCH_LIMITED: "1", BENCH_SESSION: session },
    },
  );
  if (run.status !== 0) console.error(`${scenario} failed with status ${run.status}`);
  return run.status ?? 1;
}
