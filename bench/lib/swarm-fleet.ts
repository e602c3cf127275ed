import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { ChildAnswer, ChildCommand, ChildOpened, ChildReport } from "./swarm-child.js";

const CHILD = fileURLToPath(new URL("./swarm-child.ts", import.meta.url));
/** Loopback source addresses per process: binding a port grows slow as one address's ports fill up. */
const ADDRESSES_PER_PROCESS = 8;
/** Connections each generator process opens at once; all of them together must fit the listen backlogs. */
const CONNECT_CONCURRENCY = 128;

export interface FleetOptions {
  readonly host: string;
  readonly port: number;
  readonly path: string;
  readonly subscribers: number;
  /** Load-generator processes; each holds subscribers / processes sockets (under its open-file limit). */
  readonly processes: number;
}

/** Every process's report added up. */
export interface FleetReport extends Omit<ChildReport, "kind" | "latencies"> {
  /** Sorted, in ms. */
  readonly latencies: Float64Array;
}

/**
 * SSE subscribers spread over several load-generator processes (bench/lib/swarm-child.ts),
 * each on its own loopback source address: one process can hold only ~20,000 sockets, and
 * one source address has ~28,000 ephemeral ports.
 */
export class SwarmFleet {
  readonly #children: ChildProcess[] = [];
  readonly #options: FleetOptions;

  private constructor(options: FleetOptions) {
    this.#options = options;
  }

  /** Starts the processes and resolves once each is ready, so that their start-up is not timed as connecting. */
  static async start(options: FleetOptions): Promise<SwarmFleet> {
    const fleet = new SwarmFleet(options);
    const children = fleet.#children;
    process.once("exit", () => {
      for (const child of children) child.kill("SIGKILL");
    });
    await Promise.all(
      Array.from({ length: options.processes }, () => {
        const child = fork(CHILD, [], { execArgv: ["--import", "tsx"], stdio: "inherit" });
        children.push(child);
        return new Promise<void>((resolve, reject) => {
          child.once("message", () => resolve());
          child.once("exit", (code) => reject(new Error(`load generator exited (${code}) while starting`)));
        });
      }),
    );
    return fleet;
  }

  #ask<T extends ChildAnswer>(child: ChildProcess, command: ChildCommand, kind: T["kind"]): Promise<T> {
    return new Promise((resolve, reject) => {
      const onMessage = (message: ChildAnswer) => {
        if (message.kind !== kind) return;
        child.off("message", onMessage);
        child.off("exit", onExit);
        resolve(message as T);
      };
      const onExit = (code: number | null) => reject(new Error(`load generator exited (${code})`));
      child.on("message", onMessage);
      child.once("exit", onExit);
      child.send(command);
    });
  }

  /** Opens every subscriber at once across the processes; resolves the wall time and the refusals. */
  async open(): Promise<{ connectMs: number; failed: number; firstError: string | undefined }> {
    const { host, port, path, subscribers, processes } = this.#options;
    const started = performance.now();
    const opened = await Promise.all(
      this.#children.map((child, i) => {
        const count = Math.floor(subscribers / processes) + (i < subscribers % processes ? 1 : 0);
        return this.#ask<ChildOpened>(
          child,
          {
            kind: "open",
            host,
            port,
            path,
            count,
            localAddresses: Array.from({ length: ADDRESSES_PER_PROCESS }, (_, a) => `127.0.${10 + i}.${a + 1}`),
            connectConcurrency: CONNECT_CONCURRENCY,
          },
          "opened",
        );
      }),
    );
    return {
      connectMs: performance.now() - started,
      failed: opened.reduce((sum, each) => sum + each.failed, 0),
      firstError: opened.find((each) => each.firstError !== undefined)?.firstError,
    };
  }

  /** Waits until every subscriber holds `messages` distinct messages (or `timeoutMs`), then adds up every process. */
  async report(messages: number, timeoutMs: number): Promise<FleetReport> {
    const reports = await Promise.all(
      this.#children.map((child) => this.#ask<ChildReport>(child, { kind: "await", messages, timeoutMs }, "report")),
    );
    const sum = (key: "received" | "lost" | "duplicated" | "outOfOrder" | "gaps" | "unexpectedCloses") =>
      reports.reduce((total, each) => total + each[key], 0);
    const latencies = Float64Array.from(reports.flatMap((each) => each.latencies)).sort();
    return {
      complete: reports.every((each) => each.complete),
      received: sum("received"),
      lost: sum("lost"),
      duplicated: sum("duplicated"),
      outOfOrder: sum("outOfOrder"),
      gaps: sum("gaps"),
      unexpectedCloses: sum("unexpectedCloses"),
      lastReceiveAt: Math.max(...reports.map((each) => each.lastReceiveAt)),
      cpuMs: reports.reduce((total, each) => total + each.cpuMs, 0),
      latencies,
    };
  }

  close(): void {
    for (const child of this.#children) {
      if (child.connected) child.send({ kind: "close" } satisfies ChildCommand);
    }
  }
}
