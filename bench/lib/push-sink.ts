import { type ChildProcess, fork } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { makeThrowawayPki } from "../../test/helpers/throwaway-pki.js";
import { cpuMsOf, ROOT, rssOf } from "./herald-process.js";

/**
 * A stand-in push service for the Web Push benchmarks: an HTTPS server on
 * 127.0.0.1 (throwaway CA and server certificate made by the openssl CLI, as
 * test/helpers/push-service.ts does) that answers every POST /push/<i> with
 * 201 without decrypting anything. It runs in a child process of its own, so
 * that neither its TLS work nor its sockets count against the load generator,
 * and reports over the IPC channel what arrived: per endpoint, per message
 * (the Topic header, which Herald derives from the message's key), arrival
 * times, body sizes, and whether the VAPID and encoding headers were there.
 */

export interface SinkStats {
  /** POSTs answered 201. */
  readonly received: number;
  /** Requests answered otherwise (unknown path, missing or wrong headers). */
  readonly refused: number;
  readonly refusals: Record<string, number>;
  /** Pushes to an (endpoint, topic) pair that had already had one. */
  readonly duplicates: number;
  /** Endpoints 0..endpoints-1 that got exactly `perEndpoint` pushes / fewer / more. */
  readonly endpointsComplete: number;
  readonly endpointsShort: number;
  readonly endpointsOver: number;
  readonly bodyBytesMin: number;
  readonly bodyBytesMax: number;
  readonly bodyBytesTotal: number;
  readonly firstAt: number;
  readonly lastAt: number;
  /** Per topic (message): pushes, first and last arrival (epoch ms). */
  readonly topics: Record<string, { count: number; firstAt: number; lastAt: number }>;
  /** Pushes arriving in each `binMs` bin from `since` (only when asked with `since`). */
  readonly bins?: number[];
  /** Connections the sink accepted (TLS handshakes): Herald's agent should keep reusing a few. */
  readonly connections: number;
  readonly cpuMs: number;
  readonly rssBytes: number;
}

type Request =
  | { readonly id: number; readonly type: "reset"; readonly endpoints: number; readonly perEndpoint: number }
  | { readonly id: number; readonly type: "count" }
  | { readonly id: number; readonly type: "stats"; readonly since?: number; readonly binMs?: number };

type WithoutId<T> = T extends unknown ? Omit<T, "id"> : never;

export interface PushSink {
  /** https://127.0.0.1:<port> — also the VAPID audience. */
  readonly url: string;
  /** PEM file of the CA: NODE_EXTRA_CA_CERTS for the server. */
  readonly caFile: string;
  readonly pid: number;
  /** Forgets everything received; endpoints 0..endpoints-1 each expect `perEndpoint` pushes. */
  reset(endpoints: number, perEndpoint: number): Promise<void>;
  /** Pushes answered 201 so far. */
  count(): Promise<number>;
  stats(since?: number, binMs?: number): Promise<SinkStats>;
  cpuMs(): number;
  close(): Promise<void>;
}

/** Starts the sink in a child process; `vapidPublicKey` is the `k=` every Authorization must carry. */
export async function startPushSink(vapidPublicKey: string): Promise<PushSink> {
  const { ca, key, cert } = await makeThrowawayPki("Herald bench push CA");
  const caDir = mkdtempSync(join(tmpdir(), "herald-bench-ca-"));
  const caFile = join(caDir, "ca.pem");
  writeFileSync(caFile, ca);
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), [], {
    cwd: ROOT,
    execArgv: ["--import", "tsx"],
    env: { ...process.env, HERALD_BENCH_PUSH_SINK: "1" },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const killChild = () => child.kill("SIGKILL");
  process.once("exit", killChild);
  const pending = new Map<number, (value: unknown) => void>();
  let nextId = 1;
  const port = await new Promise<number>((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`push sink exited with ${code}`)));
    child.on("message", (message: { type: string; id?: number; port?: number; value?: unknown }) => {
      if (message.type === "listening") resolve(message.port as number);
      else pending.get(message.id as number)?.(message.value);
    });
    child.send({ type: "start", key, cert, vapidPublicKey });
  });
  const ask = <T>(request: WithoutId<Request>): Promise<T> =>
    new Promise<T>((resolve) => {
      const id = nextId++;
      pending.set(id, (value) => {
        pending.delete(id);
        resolve(value as T);
      });
      child.send({ ...request, id });
    });
  const pid = child.pid as number;
  return {
    url: `https://127.0.0.1:${port}`,
    caFile,
    pid,
    reset: (endpoints, perEndpoint) => ask<void>({ type: "reset", endpoints, perEndpoint }),
    count: () => ask<number>({ type: "count" }),
    stats: async (since, binMs) => {
      const stats = await ask<Omit<SinkStats, "cpuMs" | "rssBytes">>({
        type: "stats",
        ...(since === undefined ? {} : { since, binMs: binMs ?? 250 }),
      });
      return { ...stats, cpuMs: cpuMsOf(pid), rssBytes: rssOf(pid) };
    },
    cpuMs: () => cpuMsOf(pid),
    close: () =>
      new Promise<void>((resolve) => {
        process.off("exit", killChild);
        rmSync(caDir, { recursive: true, force: true });
        if (child.exitCode !== null) return resolve();
        child.removeAllListeners("exit");
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

function now(): number {
  return performance.timeOrigin + performance.now();
}

/** The child: one HTTPS server, counters, answers over IPC. */
function sinkMain(): void {
  const ENDPOINT_PATH = /^\/push\/(\d+)$/;
  const AUTHORIZATION = /^vapid t=[\w-]+\.[\w-]+\.[\w-]+, k=([\w-]+)$/;
  let vapidKey = "";
  let perEndpoint = 0;
  let endpointCounts = new Int32Array(0);
  let topics = new Map<string, { count: number; firstAt: number; lastAt: number; seen: Uint8Array }>();
  let arrivals = new Float64Array(1 << 16);
  let received = 0;
  let refused = 0;
  let refusals: Record<string, number> = {};
  let duplicates = 0;
  let bodyMin = Number.POSITIVE_INFINITY;
  let bodyMax = 0;
  let bodyTotal = 0;
  let connections = 0;

  const refuse = (reason: string) => {
    refused += 1;
    refusals[reason] = (refusals[reason] ?? 0) + 1;
  };

  const handle = (req: import("node:http").IncomingMessage, res: import("node:http").ServerResponse) => {
    let bytes = 0;
    req.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
    });
    req.on("end", () => {
      const at = now();
      const index = Number(ENDPOINT_PATH.exec(req.url ?? "")?.[1] ?? -1);
      let reason: string | undefined;
      if (req.method !== "POST") reason = `method ${req.method}`;
      else if (index < 0 || index >= endpointCounts.length) reason = "unknown endpoint";
      else if (AUTHORIZATION.exec(req.headers.authorization ?? "")?.[1] !== vapidKey) reason = "no vapid t=, k=";
      else if (req.headers["content-encoding"] !== "aes128gcm") reason = "content-encoding not aes128gcm";
      else if (req.headers.ttl === undefined) reason = "no TTL";
      else if (bytes === 0 || bytes > 4096) reason = `body of ${bytes} bytes`;
      if (reason !== undefined) {
        refuse(reason);
        res.writeHead(400, { "Content-Type": "text/plain" });
        res.end(reason);
        return;
      }
      if (received === arrivals.length) {
        const grown = new Float64Array(arrivals.length * 2);
        grown.set(arrivals);
        arrivals = grown;
      }
      arrivals[received++] = at;
      endpointCounts[index] = (endpointCounts[index] as number) + 1;
      const topic = String(req.headers.topic ?? "");
      let entry = topics.get(topic);
      if (entry === undefined) {
        entry = { count: 0, firstAt: at, lastAt: at, seen: new Uint8Array(endpointCounts.length) };
        topics.set(topic, entry);
      }
      entry.count += 1;
      entry.lastAt = at;
      if (entry.seen[index] === 1) duplicates += 1;
      entry.seen[index] = 1;
      if (bytes < bodyMin) bodyMin = bytes;
      if (bytes > bodyMax) bodyMax = bytes;
      bodyTotal += bytes;
      res.writeHead(201);
      res.end();
    });
  };

  let server: Server | undefined;
  process.on("message", (message: Record<string, unknown>) => {
    switch (message.type) {
      case "start": {
        vapidKey = message.vapidPublicKey as string;
        const https = createServer({
          key: message.key as string,
          cert: message.cert as string,
          keepAliveTimeout: 60_000,
        });
        server = https;
        https.on("request", handle);
        https.on("secureConnection", () => {
          connections += 1;
        });
        https.listen(0, "127.0.0.1", () => {
          process.send?.({ type: "listening", port: (https.address() as AddressInfo).port });
        });
        return;
      }
      case "reset":
        perEndpoint = message.perEndpoint as number;
        endpointCounts = new Int32Array(message.endpoints as number);
        topics = new Map();
        arrivals = new Float64Array(1 << 16);
        received = 0;
        refused = 0;
        refusals = {};
        duplicates = 0;
        bodyMin = Number.POSITIVE_INFINITY;
        bodyMax = 0;
        bodyTotal = 0;
        connections = 0;
        process.send?.({ type: "reply", id: message.id, value: undefined });
        return;
      case "count":
        process.send?.({ type: "reply", id: message.id, value: received });
        return;
      case "stats": {
        let complete = 0;
        let short = 0;
        let over = 0;
        for (const count of endpointCounts) {
          if (count === perEndpoint) complete += 1;
          else if (count < perEndpoint) short += 1;
          else over += 1;
        }
        let bins: number[] | undefined;
        const since = message.since as number | undefined;
        if (since !== undefined) {
          const binMs = message.binMs as number;
          bins = [];
          for (let i = 0; i < received; i++) {
            const bin = Math.max(0, Math.floor(((arrivals[i] as number) - since) / binMs));
            while (bins.length <= bin) bins.push(0);
            bins[bin] = (bins[bin] as number) + 1;
          }
        }
        const topicStats: Record<string, { count: number; firstAt: number; lastAt: number }> = {};
        for (const [topic, { count, firstAt, lastAt }] of topics) topicStats[topic] = { count, firstAt, lastAt };
        process.send?.({
          type: "reply",
          id: message.id,
          value: {
            received,
            refused,
            refusals,
            duplicates,
            endpointsComplete: complete,
            endpointsShort: short,
            endpointsOver: over,
            bodyBytesMin: received === 0 ? 0 : bodyMin,
            bodyBytesMax: bodyMax,
            bodyBytesTotal: bodyTotal,
            firstAt: received === 0 ? Number.NaN : arrivals[0],
            lastAt: received === 0 ? Number.NaN : arrivals[received - 1],
            topics: topicStats,
            connections,
            ...(bins === undefined ? {} : { bins }),
          },
        });
        return;
      }
    }
  });
  process.on("disconnect", () => process.exit(0));
  process.on("SIGTERM", () => {
    server?.closeAllConnections();
    process.exit(0);
  });
}

if (process.env.HERALD_BENCH_PUSH_SINK === "1" && process.send !== undefined) sinkMain();
