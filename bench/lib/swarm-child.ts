import { SseSwarm } from "./sse-swarm.js";

/**
 * One load-generator process of a SwarmFleet: holds its share of the SSE
 * subscribers (a process may open only ~20,000 files) and answers the
 * fleet's commands over IPC.
 */

export interface ChildOpen {
  readonly kind: "open";
  readonly host: string;
  readonly port: number;
  readonly path: string;
  readonly count: number;
  /**
   * This process's own source addresses, so its sockets do not share another's ~28k ephemeral
   * ports; several, because binding a port grows slow as an address's ports fill up.
   */
  readonly localAddresses: readonly string[];
  readonly connectConcurrency: number;
}

export interface ChildAwait {
  readonly kind: "await";
  /** Distinct messages every subscriber must hold. */
  readonly messages: number;
  readonly timeoutMs: number;
}

export type ChildCommand = ChildOpen | ChildAwait | { readonly kind: "close" };

export interface ChildOpened {
  readonly kind: "opened";
  readonly connectMs: number;
  readonly failed: number;
  readonly firstError: string | undefined;
}

export interface ChildReport {
  readonly kind: "report";
  readonly complete: boolean;
  readonly received: number;
  readonly lost: number;
  readonly duplicated: number;
  readonly outOfOrder: number;
  readonly gaps: number;
  readonly unexpectedCloses: number;
  readonly lastReceiveAt: number;
  /** CPU this process has used so far. */
  readonly cpuMs: number;
  /** Delivery latencies in ms (publish to receipt), unsorted. */
  readonly latencies: number[];
}

export type ChildAnswer = { readonly kind: "ready" } | ChildOpened | ChildReport;

let swarm: SseSwarm | undefined;

function answer(message: ChildAnswer): void {
  process.send?.(message);
}

async function open(command: ChildOpen): Promise<void> {
  swarm = new SseSwarm({
    host: command.host,
    port: command.port,
    count: command.count,
    path: () => command.path,
    localAddresses: command.localAddresses,
    connectConcurrency: command.connectConcurrency,
  });
  const opening = swarm;
  const started = performance.now();
  let failed = 0;
  let firstError: string | undefined;
  let next = 0;
  // Like SseSwarm.open, but a subscriber refused is counted, not fatal: the run reports how many.
  const worker = async () => {
    while (next < command.count) {
      const i = next++;
      await opening.openOne(i).catch((error: Error) => {
        failed += 1;
        firstError ??= error.message;
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(command.connectConcurrency, command.count) }, worker));
  answer({ kind: "opened", connectMs: performance.now() - started, failed, firstError });
}

async function report(command: ChildAwait): Promise<void> {
  const held = swarm as SseSwarm;
  const expected = held.options.count * command.messages;
  const complete = await held.until(() => held.totalReceived >= expected, command.timeoutMs);
  answer({
    kind: "report",
    complete,
    received: held.totalReceived,
    lost: held.lost(command.messages),
    duplicated: held.sum(held.duplicates),
    outOfOrder: held.sum(held.outOfOrder),
    gaps: held.gapEvents,
    unexpectedCloses: held.unexpectedCloses,
    lastReceiveAt: held.lastReceiveAt,
    cpuMs: Math.round((process.cpuUsage().user + process.cpuUsage().system) / 1000),
    latencies: Array.from(held.latencies.subarray(0, held.samples)),
  });
}

answer({ kind: "ready" });
process.on("message", (command: ChildCommand) => {
  if (command.kind === "open") void open(command);
  else if (command.kind === "await") void report(command);
  else {
    swarm?.close();
    process.exit(0);
  }
});
