import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** Open files each bench process may hold: 10,000 subscribers plus slack. */
export const BENCH_FILE_LIMIT = 20_000;
/** Longest a server may take to print its listening line. */
const START_TIMEOUT_MS = 30_000;
/** Longest a server may take to drain and exit before it is killed. */
const STOP_TIMEOUT_MS = 15_000;

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

export interface HeraldProcess {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly pid: number;
  /** Resident set size of the server process and its workers, from /proc. */
  rssBytes(): number;
  /** CPU time (user + system) the server process and its live workers have used so far, from /proc. */
  cpuMs(): number;
  stop(): Promise<void>;
}

/** Kernel clock ticks per second for /proc/<pid>/stat times (USER_HZ, 100 on Linux). */
const CLOCK_TICKS_PER_SECOND = 100;

/** A loopback port nothing listens on right now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the parenthesised command name; utime and stime are the 12th and 13th of them.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
}

export function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return match ? Number(match[1]) * 1024 : 0;
}

/** `pid` and every process under it (a `--workers` primary's workers), from /proc. */
export function processTree(pid: number): number[] {
  const pids = [pid];
  for (let i = 0; i < pids.length; i++) {
    try {
      const children = readFileSync(`/proc/${pids[i]}/task/${pids[i]}/children`, "utf8").trim();
      if (children.length > 0) pids.push(...children.split(" ").map(Number));
    } catch {
      // Gone between the listing and the read.
    }
  }
  return pids;
}

function sumOverTree(pid: number, read: (pid: number) => number): number {
  let total = 0;
  for (const each of processTree(pid)) {
    try {
      total += read(each);
    } catch {
      // Exited while being read.
    }
  }
  return total;
}

let exitingOnSignals = false;

/**
 * Makes Ctrl-C and SIGTERM end this process through its "exit" handlers (which stop the
 * servers it started): signals end Node without running them unless something listens.
 */
export function exitOnSignals(): void {
  if (exitingOnSignals) return;
  exitingOnSignals = true;
  process.once("SIGINT", () => process.exit(130));
  process.once("SIGTERM", () => process.exit(143));
}
/** Servers this process started, so each gets its own log file. */
let started = 0;

/** Starts `herald serve` on a free port, memory store, with `ulimit -n` raised; extra flags as given. */
export function startHerald(flags: readonly string[] = []): Promise<HeraldProcess> {
  const nodeFlags = process.env.HERALD_BENCH_NODE_FLAGS ?? "";
  return startListening(
    `exec node ${nodeFlags} bin/herald.js serve --port 0 --store memory ${flags.join(" ")}`,
    /Herald listening on (\S+)/,
  );
}

/**
 * Starts the bare baseline (bench/reference/bare-server.mjs): node:http doing the least work
 * Herald's API allows, so that a result can be read as a share of the runtime's own limit.
 */
export function startBare(): Promise<HeraldProcess> {
  return startListening("exec node bench/reference/bare-server.mjs", /Bare listening on (\S+)/);
}

/** Runs `command` (bash, `ulimit -n` raised) and waits for its stdout to print `listening`'s URL. */
async function startListening(command: string, listening: RegExp): Promise<HeraldProcess> {
  command = `ulimit -n ${BENCH_FILE_LIMIT}; ${command}`;
  // Request logs go to a file, as in production: a pipe the busy load generator drains late would block the server.
  const logPath = join(tmpdir(), `herald-bench-${process.pid}-${++started}.log`);
  const log = openSync(logPath, "w");
  const child: ChildProcess = spawn("bash", ["-c", command], {
    cwd: ROOT,
    env: { ...process.env, NODE_ENV: "production" },
    stdio: ["ignore", log, "inherit"],
  });
  closeSync(log);
  let exited = false;
  // A load process that dies (an exception, Ctrl-C, a closed pipe) must not leave its server running.
  const killChild = () => {
    if (!exited) child.kill("SIGKILL");
  };
  process.once("exit", killChild);
  exitOnSignals();
  child.once("exit", () => {
    exited = true;
    process.off("exit", killChild);
  });
  const deadline = performance.now() + START_TIMEOUT_MS;
  let url: string | undefined;
  while (url === undefined) {
    const seen = readFileSync(logPath, "utf8");
    url = listening.exec(seen)?.[1];
    if (url !== undefined) break;
    if (exited || performance.now() > deadline) throw new Error(`server did not start: ${seen}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const parsed = new URL(url);
  const pid = child.pid as number;
  return {
    url,
    host: parsed.hostname,
    port: Number(parsed.port),
    pid,
    rssBytes: () => sumOverTree(pid, rssOf),
    cpuMs: () => sumOverTree(pid, cpuMsOf),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
        child.once("exit", () => {
          clearTimeout(timer);
          rmSync(logPath, { force: true });
          resolve();
        });
        child.kill("SIGTERM");
      }),
  };
}
