// Start-up time and idle RSS of `herald serve`: the compiled dist/ under plain node (how `npm start` and the
// bin run it) against the TypeScript sources through tsx's loader (HERALD_FROM_SOURCE=1, how the bin ran
// before the build existed, and how `npm run dev` and the tests run it).
import { spawn, spawnSync } from "node:child_process";
import { ROOT, rssOf } from "./lib/herald-process.js";
import { sleep } from "./lib/publisher.js";
import { cpuMeter, machine, percentile, round1, startLoadavg, writeResult } from "./lib/report.js";

/** Starts of each kind, alternated so that other work on the machine skews both alike. */
const RUNS = Number(process.env.BENCH_STARTUP_RUNS ?? 7);
/** Time a started server is left alone before its RSS is read. */
const IDLE_MS = 2000;
const START_TIMEOUT_MS = 30_000;

const MODES = {
  dist: {},
  tsx: { HERALD_FROM_SOURCE: "1" },
} as const;
type Mode = keyof typeof MODES;

interface Start {
  /** Process spawned to "Herald listening" on its stdout. */
  readonly startMs: number;
  readonly idleRssBytes: number;
}

/** Time one `herald serve` takes to listen, and its RSS once idle. */
async function startOnce(mode: Mode): Promise<Start> {
  const started = performance.now();
  const child = spawn(process.execPath, ["bin/herald.js", "serve", "--port", "0", "--store", "memory"], {
    cwd: ROOT,
    env: { ...process.env, NODE_ENV: "production", ...MODES[mode] },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  try {
    const startMs = await new Promise<number>((resolve, reject) => {
      let output = "";
      const timer = setTimeout(() => reject(new Error(`herald (${mode}) did not start: ${output}`)), START_TIMEOUT_MS);
      child.stdout?.on("data", (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes("Herald listening")) {
          clearTimeout(timer);
          resolve(performance.now() - started);
        }
      });
      void exited.then(() => reject(new Error(`herald (${mode}) exited before listening: ${output}`)));
    });
    await sleep(IDLE_MS);
    return { startMs, idleRssBytes: rssOf(child.pid as number) };
  } finally {
    child.kill("SIGTERM");
    await exited;
  }
}

function median(values: readonly number[]): number {
  return percentile(
    [...values].sort((a, b) => a - b),
    50,
  );
}

// Measure the sources as they are now: rebuild dist/ first.
const build = spawnSync(process.execPath, ["--import", "tsx", "scripts/build.ts"], { cwd: ROOT, stdio: "inherit" });
if (build.status !== 0) throw new Error("npm run build failed");

const loadavgAtStart = startLoadavg();
const meter = cpuMeter();
const runs: Record<Mode, Start[]> = { dist: [], tsx: [] };
// One start of each first, unmeasured: it warms the page cache for node_modules and the sources.
await startOnce("dist");
await startOnce("tsx");
for (let run = 0; run < RUNS; run++) {
  for (const mode of Object.keys(MODES) as Mode[]) runs[mode].push(await startOnce(mode));
}
const startMs = (mode: Mode) => round1(median(runs[mode].map((start) => start.startMs)));
const rssMiB = (mode: Mode) => round1(median(runs[mode].map((start) => start.idleRssBytes)) / 1048576);
writeResult({
  scenario: "startup",
  description: `herald serve --store memory, ${RUNS} starts each: compiled dist/ under node vs src/ through tsx`,
  date: new Date().toISOString(),
  machine: machine(),
  loadavgAtStart,
  metrics: [
    { name: "start-up, dist (node)", value: startMs("dist"), unit: "ms" },
    { name: "start-up, src (tsx)", value: startMs("tsx"), unit: "ms" },
    { name: "idle RSS, dist (node)", value: rssMiB("dist"), unit: "MiB" },
    { name: "idle RSS, src (tsx)", value: rssMiB("tsx"), unit: "MiB" },
  ],
  loadGenerator: meter(),
  server: {
    rssBytesBefore: median(runs.tsx.map((start) => start.idleRssBytes)),
    rssBytesAfter: median(runs.dist.map((start) => start.idleRssBytes)),
    flags: ["--store", "memory"],
  },
  details: {
    idleMs: IDLE_MS,
    startMs: { dist: runs.dist.map((s) => round1(s.startMs)), tsx: runs.tsx.map((s) => round1(s.startMs)) },
    idleRssMiB: {
      dist: runs.dist.map((s) => round1(s.idleRssBytes / 1048576)),
      tsx: runs.tsx.map((s) => round1(s.idleRssBytes / 1048576)),
    },
  },
});
