import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

export const HERALD_BIN = fileURLToPath(new URL("../../bin/herald.js", import.meta.url));

export interface HeraldChild {
  readonly process: ChildProcess;
  readonly url: string;
  output(): string;
  /** Resolves with the exit code (or signal name) once the process is gone. */
  readonly exited: Promise<number | string>;
}

/** Runs `herald serve` as a child process and waits for the URL it prints. */
export async function spawnHerald(args: string[], env: NodeJS.ProcessEnv = {}): Promise<HeraldChild> {
  const child = spawn(process.execPath, [HERALD_BIN, "serve", "--port", "0", ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const exited = new Promise<number | string>((resolve) => {
    child.on("exit", (code, signal) => resolve(code ?? signal ?? -1));
  });
  const url = await new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /Herald listening on (http:\/\/\S+)/.exec(output);
      if (match) resolve(match[1] as string);
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    void exited.then((code) => reject(new Error(`herald exited (${code}) before listening:\n${output}`)));
  });
  return { process: child, url, output: () => output, exited };
}

export interface HeraldRun {
  /** Exit code, or null when a signal ended it. */
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `herald <args>` to completion. */
export function runHerald(args: string[], env: NodeJS.ProcessEnv = {}): Promise<HeraldRun> {
  const child = spawn(process.execPath, [HERALD_BIN, ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
}
