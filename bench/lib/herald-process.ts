import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
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
  /** Resident set size of the server process, from /proc. */
  rssBytes(): number;
  stop(): Promise<void>;
}

export function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return match ? Number(match[1]) * 1024 : 0;
}

/** Starts `herald serve` on a free port, memory store, with `ulimit -n` raised; extra flags as given. */
export async function startHerald(flags: readonly string[] = []): Promise<HeraldProcess> {
  const nodeFlags = process.env.HERALD_BENCH_NODE_FLAGS ?? "";
  const command = `ulimit -n ${BENCH_FILE_LIMIT}; exec node ${nodeFlags} bin/herald.js serve --port 0 --store memory ${flags.join(" ")}`;
  const child: ChildProcess = spawn("bash", ["-c", command], {
    cwd: ROOT,
    env: { ...process.env, NODE_ENV: "production" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => reject(new Error(`herald did not start: ${seen}`)), START_TIMEOUT_MS);
    child.stdout?.setEncoding("utf8");
    child.stdout?.on("data", (chunk: string) => {
      seen += chunk;
      const match = /Herald listening on (\S+)/.exec(seen);
      if (match) {
        clearTimeout(timer);
        resolve(match[1] as string);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`herald exited with ${code}: ${seen}`));
    });
  });
  child.stdout?.resume();
  const parsed = new URL(url);
  const pid = child.pid as number;
  return {
    url,
    host: parsed.hostname,
    port: Number(parsed.port),
    pid,
    rssBytes: () => rssOf(pid),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
        child.once("exit", () => {
          clearTimeout(timer);
          resolve();
        });
        child.kill("SIGTERM");
      }),
  };
}
