import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, loadavg } from "node:os";
import { join } from "node:path";
import { BENCH_FILE_LIMIT, ROOT } from "./herald-process.js";

export const RESULTS_DIR = join(ROOT, "bench", "results");

export interface Metric {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  /** e.g. ">= 50000" or "<= 250"; absent for metrics reported without a target. */
  readonly target?: string;
}

export interface ScenarioResult {
  readonly scenario: string;
  readonly description: string;
  readonly date: string;
  readonly machine: Machine;
  /** 1, 5 and 15 minute load averages when the run started: other work on the machine skews numbers. */
  readonly loadavgAtStart: number[];
  readonly metrics: Metric[];
  /** CPU the load generator itself used during the measured phase. */
  readonly loadGenerator: { readonly cpuMs: number; readonly wallMs: number; readonly cpuPercent: number };
  readonly server: {
    readonly rssBytesBefore: number;
    readonly rssBytesAfter: number;
    readonly flags: string[];
    /** CPU the server used during the measured phase: steadier than throughput on a shared machine. */
    readonly cpuMs?: number;
  };
  readonly details: Record<string, unknown>;
  /** Every run of this `npm run bench` session, each with its own loadavg; `metrics` summarises them. */
  readonly runs?: RunRecord[];
  readonly session?: string;
}

export type RunRecord = Omit<ScenarioResult, "runs" | "session" | "machine" | "scenario" | "description">;

/** A loss or repeat in any run counts; other metrics are the median of the runs. */
export function combineMetrics(runs: readonly RunRecord[]): Metric[] {
  const last = runs[runs.length - 1] as RunRecord;
  return last.metrics.map((metric) => {
    const values = runs
      .map((run) => run.metrics.find((m) => m.name === metric.name)?.value)
      .filter((value): value is number => typeof value === "number" && !Number.isNaN(value))
      .sort((a, b) => a - b);
    if (values.length === 0) return metric;
    const middle = (values.length - 1) / 2;
    const value = metric.target?.startsWith("== 0")
      ? (values[values.length - 1] as number)
      : ((values[Math.floor(middle)] as number) + (values[Math.ceil(middle)] as number)) / 2;
    return { ...metric, value: Math.abs(value) >= 100 ? Math.round(value) : Math.round(value * 10) / 10 };
  });
}

function readPrevious(path: string): ScenarioResult | undefined {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as ScenarioResult;
  } catch {
    return undefined;
  }
}

export interface Machine {
  readonly nproc: number;
  readonly cpuModel: string;
  readonly node: string;
  readonly openFileLimit: number;
}

export function machine(): Machine {
  const cpuinfo = existsSync("/proc/cpuinfo") ? readFileSync("/proc/cpuinfo", "utf8") : "";
  return {
    nproc: availableParallelism(),
    cpuModel: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? "unknown",
    node: process.version,
    openFileLimit: BENCH_FILE_LIMIT,
  };
}

export function startLoadavg(): number[] {
  return loadavg().map((value) => Math.round(value * 100) / 100);
}

/** Measures the load generator's own CPU over a phase. */
export function cpuMeter(): () => { cpuMs: number; wallMs: number; cpuPercent: number } {
  const cpu = process.cpuUsage();
  const wall = performance.now();
  return () => {
    const used = process.cpuUsage(cpu);
    const cpuMs = (used.user + used.system) / 1000;
    const wallMs = performance.now() - wall;
    return { cpuMs: Math.round(cpuMs), wallMs: Math.round(wallMs), cpuPercent: Math.round((cpuMs / wallMs) * 100) };
  };
}

export function met(metric: Metric): boolean | undefined {
  if (!metric.target) return undefined;
  const [op, raw] = metric.target.split(" ");
  const bound = Number(raw);
  if (op === ">=") return metric.value >= bound;
  if (op === "<=") return metric.value <= bound;
  if (op === "==") return metric.value === bound;
  return undefined;
}

/**
 * Writes a scenario's result. Within one session (BENCH_SESSION, set by
 * run-all) repeated runs accumulate in `runs`; a lone run replaces the file.
 */
export function writeResult(result: ScenarioResult): void {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const path = join(RESULTS_DIR, `${result.scenario}.json`);
  const session = process.env.BENCH_SESSION;
  const previous = session === undefined ? undefined : readPrevious(path);
  const { scenario: _s, description: _d, machine: _m, runs: _r, session: _x, ...run } = result;
  const runs = [...(previous?.session === session ? (previous?.runs ?? []) : []), run];
  const combined: ScenarioResult = { ...result, metrics: combineMetrics(runs), session, runs };
  writeFileSync(path, `${JSON.stringify(combined, null, 2)}\n`);
  writeSummary();
  console.log(`\n${result.scenario} (loadavg ${result.loadavgAtStart.join(" ")}):`);
  for (const metric of result.metrics) {
    const ok = met(metric);
    const verdict = ok === undefined ? "" : ok ? "  met" : "  NOT MET";
    console.log(
      `  ${metric.name}: ${metric.value} ${metric.unit}${metric.target ? ` (target ${metric.target})` : ""}${verdict}`,
    );
  }
  const lg = result.loadGenerator;
  console.log(`  load generator CPU: ${lg.cpuMs} ms over ${lg.wallMs} ms (${lg.cpuPercent}%)`);
  if (result.server.cpuMs !== undefined) console.log(`  server CPU: ${result.server.cpuMs} ms`);
}

const SCENARIO_ORDER = [
  "fanout",
  "fanout-presence",
  "fanout-light",
  "idle",
  "ingest",
  "long-poll",
  "resume",
  "many-mailboxes",
  "conflation",
  "sqlite",
  "redis",
  "workers-scaling",
  "workers-100k",
  "replay-herd",
  "schedule-lateness",
  "push-burst",
  "startup",
];

function formatValue(metric: Metric): string {
  const value = Number.isInteger(metric.value) ? metric.value.toLocaleString("en-US") : metric.value.toFixed(1);
  return `${value} ${metric.unit}`.trim();
}

/** Rebuilds summary.md from every result JSON present, so scenarios can be rerun one at a time. */
export function writeSummary(): void {
  // Other benches write their own JSON here; the table covers the suite's scenarios only.
  const files = readdirSync(RESULTS_DIR).filter((name) => SCENARIO_ORDER.includes(name.replace(/\.json$/, "")));
  const results = files
    .map((name) => JSON.parse(readFileSync(join(RESULTS_DIR, name), "utf8")) as ScenarioResult)
    .sort((a, b) => SCENARIO_ORDER.indexOf(a.scenario) - SCENARIO_ORDER.indexOf(b.scenario));
  if (results.length === 0) return;
  const first = results[0] as ScenarioResult;
  const lines = [
    "# Herald benchmark results",
    "",
    `Machine: ${first.machine.nproc} cores, ${first.machine.cpuModel}, Node ${first.machine.node}, open-file limit ${first.machine.openFileLimit}.`,
    "Server and load generator share the machine (and other work on it: see loadavg). Generated by `npm run bench`.",
    "",
    "| scenario | metric | result | target | met? |",
    "|---|---|---|---|---|",
  ];
  for (const result of results) {
    for (const metric of result.metrics) {
      const ok = met(metric);
      lines.push(
        `| ${result.scenario} | ${metric.name} | ${formatValue(metric)} | ${metric.target ?? ""} | ${ok === undefined ? "" : ok ? "yes" : "**no**"} |`,
      );
    }
  }
  lines.push(
    "",
    "Each run (results above: median over runs; lost / duplicated / out of order: worst run):",
    "",
    "| scenario | run | date (UTC) | loadavg at start | load generator CPU | server CPU | server RSS after |",
    "|---|---|---|---|---|---|---|",
  );
  for (const result of results) {
    const runs: RunRecord[] = result.runs ?? [result];
    runs.forEach((run, index) => {
      const lg = run.loadGenerator;
      lines.push(
        `| ${result.scenario} | ${index + 1} | ${run.date.replace("T", " ").slice(0, 16)} | ${run.loadavgAtStart.join(" ")} | ${lg.cpuPercent}% (${lg.cpuMs} ms / ${lg.wallMs} ms) | ${run.server.cpuMs === undefined ? "" : `${run.server.cpuMs} ms`} | ${(run.server.rssBytesAfter / 1048576).toFixed(0)} MiB |`,
      );
    });
  }
  writeFileSync(join(RESULTS_DIR, "summary.md"), `${lines.join("\n")}\n`);
}

/** Runs this script again as `command` (a bash `-c` line that ends by exec-ing it) and exits with its status. */
function rerun(command: string[], line: string, env: Record<string, string>): never {
  const run = spawnSync(command[0] as string, [...command.slice(1), "-c", line, "bench", ...process.argv.slice(2)], {
    stdio: "inherit",
    env: { ...process.env, ...env },
    cwd: ROOT,
  });
  process.exit(run.status ?? 1);
}

/**
 * Re-runs this script under `ulimit -n` raised to the bench limit when the
 * current soft limit is lower (Node cannot raise it itself).
 */
export function ensureFileLimit(script: string): void {
  if (process.env.HERALD_BENCH_LIMITED === "1") return;
  const probe = spawnSync("bash", ["-c", "ulimit -n"], { encoding: "utf8" });
  if (Number(probe.stdout.trim()) >= BENCH_FILE_LIMIT) return;
  rerun(["bash"], `ulimit -n ${BENCH_FILE_LIMIT} && exec node --import tsx "${script}" "$@"`, {
    HERALD_BENCH_LIMITED: "1",
  });
}

/**
 * Re-runs this script, server and load generator both, in a network namespace
 * of its own (`unshare --net`, so root) whose TCP send buffers grow to at most
 * `maxBytes` (`net.ipv4.tcp_wmem` is per namespace). On loopback Linux lets a
 * socket's send buffer grow to 4 MiB, so a slow reader falls 4 MiB behind in
 * the kernel before the server's own queue sees any of it; over a real network
 * the buffer stays near the path's bandwidth-delay product. Without the rights
 * it says so and runs here unchanged: `sendBufferMax()` records which.
 *
 * `loopbackMtu` sets the namespace's loopback MTU too. Loopback's own is 64 KiB, so with a 64 KiB
 * send buffer a socket holds one segment, waits for the peer's delayed ACK (40 ms) before the next,
 * and moves ~1.6 MB/s: fine for a subscriber, not for a Redis connection carrying a node's reads.
 */
export function ensureSendBufferCap(script: string, maxBytes: number, loopbackMtu?: number): void {
  if (process.env.HERALD_BENCH_NETNS === "1") return;
  const mtu = loopbackMtu === undefined ? "" : ` mtu ${loopbackMtu}`;
  const setup = `ip link set lo up${mtu} && sysctl -q -w net.ipv4.tcp_wmem="4096 16384 ${maxBytes}"`;
  if (spawnSync("unshare", ["--net", "bash", "-c", setup], { stdio: "ignore" }).status !== 0) {
    console.warn(
      `no private network namespace (unshare --net needs root): kernel send buffers keep ${sendBufferMax()} bytes`,
    );
    return;
  }
  rerun(
    ["unshare", "--net", "bash"],
    `${setup} && ulimit -n ${BENCH_FILE_LIMIT} && exec node --import tsx "${script}" "$@"`,
    { HERALD_BENCH_NETNS: "1", HERALD_BENCH_LIMITED: "1" },
  );
}

/** The most a TCP socket's send buffer may grow to here (the third field of net.ipv4.tcp_wmem). */
export function sendBufferMax(): number {
  try {
    return Number(readFileSync("/proc/sys/net/ipv4/tcp_wmem", "utf8").trim().split(/\s+/)[2]);
  } catch {
    return Number.NaN;
  }
}

export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] as number;
}

export function round1(value: number): number {
  return Math.round(value * 10) / 10;
}
