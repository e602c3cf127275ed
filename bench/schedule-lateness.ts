import { mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Pool } from "undici";
import { answers, deleteKeys, uniquePrefix } from "../test/helpers/redis.js";
import { startHerald } from "./lib/herald-process.js";
import { sleep } from "./lib/publisher.js";
import {
  cpuMeter,
  ensureFileLimit,
  type Metric,
  machine,
  percentile,
  round1,
  startLoadavg,
  writeResult,
} from "./lib/report.js";
import { now } from "./lib/sse-swarm.js";

/**
 * Scheduled delivery under load: 10,000 messages scheduled (`at`) for the
 * same second, over 10 mailboxes (the default bound is 1,000 pending per
 * mailbox), and one ndjson subscriber of all 10. Lateness is arrival at the
 * subscriber minus the scheduled time; the last message's is the max. Run on
 * the memory store, SQLite (`--sync full`) and Redis (REDIS_URL, else
 * 127.0.0.1:6379; left out when it does not answer). Writes
 * bench/results/schedule-lateness.json.
 */

ensureFileLimit(import.meta.filename);

const MESSAGES = Number(process.env.BENCH_SCHEDULED ?? 10_000);
const MAILBOXES = 10;
const BATCH = 100;
/** Batch publishes in flight while scheduling. */
const CONCURRENCY = 4;
/** Seconds from the start of scheduling to the due second: room to schedule everything first. */
const LEAD_S = 8;
const SETTLE_TIMEOUT_MS = 120_000;
const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const STORES = (process.env.BENCH_STORES ?? "memory,sqlite,redis").split(",");

interface LatenessRun {
  readonly store: string;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly received: number;
  readonly duplicated: number;
  readonly outOfOrder: number;
  /** Times the subscriber was cut as a slow consumer and resumed with its cursor. */
  readonly reconnects: number;
  readonly scheduleMs: number;
  readonly serverCpuMs: number;
  readonly rssAfter: number;
}

const mailboxes = Array.from({ length: MAILBOXES }, (_, i) => `bench:sched:${i}`);

/**
 * One ndjson stream of every mailbox; records each message's arrival time by
 * its `n`. A subscriber the server cuts as a slow consumer (10,000 messages at
 * once pass the 1 MiB queue) resumes with its cursor, as a client does.
 */
class Subscriber {
  readonly arrivals = new Map<number, number>();
  duplicated = 0;
  outOfOrder = 0;
  reconnects = 0;
  readonly ready: Promise<void>;
  #opened!: () => void;
  #cursor = "now";
  #closed = false;
  #request: ReturnType<typeof request> | undefined;
  readonly #lastSeq = new Map<string, number>();

  constructor(readonly url: string) {
    this.ready = new Promise((resolve) => {
      this.#opened = resolve;
    });
    this.#connect();
  }

  close(): void {
    this.#closed = true;
    this.#request?.destroy();
  }

  #connect(): void {
    const query = mailboxes.map((mailbox) => `mailbox=${encodeURIComponent(mailbox)}`).join("&");
    let buffer = "";
    let ended = false;
    const reconnect = () => {
      if (ended || this.#closed) return;
      ended = true;
      this.reconnects += 1;
      setTimeout(() => this.#connect(), 10);
    };
    const req = request(`${this.url}/v1/stream?${query}&cursor=${encodeURIComponent(this.#cursor)}`, (response) => {
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => {
        const at = now();
        buffer += chunk;
        let newline = buffer.indexOf("\n");
        while (newline !== -1) {
          this.#line(buffer.slice(0, newline), at);
          buffer = buffer.slice(newline + 1);
          newline = buffer.indexOf("\n");
        }
      });
      response.once("close", reconnect);
    });
    req.once("error", reconnect);
    req.end();
    this.#request = req;
  }

  #line(line: string, at: number): void {
    if (line.startsWith('{"type":"cursor"')) {
      this.#cursor = (JSON.parse(line) as { cursor: string }).cursor;
      this.#opened();
      return;
    }
    if (!line.startsWith('{"type":"message"')) return;
    const message = JSON.parse(line) as { mailbox: string; seq: number; data: { n: number }; cursor: string };
    this.#cursor = message.cursor;
    if (message.seq <= (this.#lastSeq.get(message.mailbox) ?? 0)) this.outOfOrder += 1;
    this.#lastSeq.set(message.mailbox, message.seq);
    if (this.arrivals.has(message.data.n)) this.duplicated += 1;
    else this.arrivals.set(message.data.n, at);
  }
}

async function scheduleAll(url: string, at: string): Promise<void> {
  const pool = new Pool(url, { connections: CONCURRENCY, pipelining: 1 });
  let next = 0;
  const worker = async () => {
    while (next < MESSAGES) {
      const from = next;
      next += BATCH;
      const messages = Array.from({ length: Math.min(BATCH, MESSAGES - from) }, (_, i) => ({
        mailbox: mailboxes[(from + i) % MAILBOXES],
        data: { n: from + i },
        at,
      }));
      const response = await pool.request({
        method: "POST",
        path: "/v1/messages",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ messages }),
      });
      const text = await response.body.text();
      if (response.statusCode !== 202) throw new Error(`schedule: ${response.statusCode} ${text}`);
    }
  };
  try {
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  } finally {
    await pool.close();
  }
}

async function run(store: string, flags: readonly string[]): Promise<LatenessRun> {
  const herald = await startHerald(flags);
  try {
    const stream = new Subscriber(herald.url);
    await stream.ready;
    const dueAt = Math.ceil((Date.now() + LEAD_S * 1000) / 1000) * 1000;
    const started = now();
    await scheduleAll(herald.url, new Date(dueAt).toISOString());
    const scheduleMs = now() - started;
    if (Date.now() >= dueAt) throw new Error(`scheduling took ${Math.round(scheduleMs)} ms, past the due second`);
    const cpuBefore = herald.cpuMs();
    const deadline = Date.now() + SETTLE_TIMEOUT_MS;
    while (stream.arrivals.size < MESSAGES && Date.now() < deadline) await sleep(50);
    stream.close();
    const lateness = [...stream.arrivals.values()].map((at) => at - dueAt).sort((a, b) => a - b);
    return {
      store,
      p50Ms: round1(percentile(lateness, 50)),
      p99Ms: round1(percentile(lateness, 99)),
      maxMs: round1(lateness[lateness.length - 1] ?? Number.NaN),
      received: stream.arrivals.size,
      duplicated: stream.duplicated,
      outOfOrder: stream.outOfOrder,
      reconnects: stream.reconnects,
      scheduleMs: Math.round(scheduleMs),
      serverCpuMs: herald.cpuMs() - cpuBefore,
      rssAfter: herald.rssBytes(),
    };
  } finally {
    await herald.stop();
  }
}

const loadavgAtStart = startLoadavg();
const meter = cpuMeter();
const runs: LatenessRun[] = [];
for (const store of STORES) {
  if (store === "memory") runs.push(await run("memory", []));
  if (store === "sqlite") {
    const dataDir = mkdtempSync(join(tmpdir(), "herald-bench-schedule-"));
    try {
      runs.push(await run("sqlite", ["--store", "sqlite", "--data-dir", dataDir, "--sync", "full"]));
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }
  if (store === "redis") {
    if (!(await answers(REDIS_URL))) {
      console.warn(`schedule-lateness: no Redis at ${REDIS_URL}; the Redis run is left out`);
      continue;
    }
    const prefix = uniquePrefix("bench-schedule");
    try {
      runs.push(await run("redis", ["--store", "redis", "--redis-url", REDIS_URL, "--redis-prefix", prefix]));
    } finally {
      await deleteKeys(REDIS_URL, prefix);
    }
  }
}

const metrics: Metric[] = runs.flatMap((result) => [
  { name: `${result.store}: last delivered, late by`, value: result.maxMs, unit: "ms" },
  { name: `${result.store}: p50 lateness`, value: result.p50Ms, unit: "ms" },
  { name: `${result.store}: p99 lateness`, value: result.p99Ms, unit: "ms" },
  { name: `${result.store}: lost`, value: MESSAGES - result.received, unit: "", target: "== 0" },
  { name: `${result.store}: duplicated`, value: result.duplicated, unit: "", target: "== 0" },
  { name: `${result.store}: out of order`, value: result.outOfOrder, unit: "", target: "== 0" },
]);
const last = runs[runs.length - 1];
writeResult({
  scenario: "schedule-lateness",
  description: `${MESSAGES.toLocaleString("en-US")} messages scheduled for the same second over ${MAILBOXES} mailboxes, one ndjson subscriber of all; lateness = arrival minus the scheduled time`,
  date: new Date().toISOString(),
  machine: machine(),
  loadavgAtStart,
  metrics,
  loadGenerator: meter(),
  server: {
    rssBytesBefore: 0,
    rssBytesAfter: last?.rssAfter ?? 0,
    flags: [],
    cpuMs: runs.reduce((sum, result) => sum + result.serverCpuMs, 0),
  },
  details: { messages: MESSAGES, mailboxes: MAILBOXES, batch: BATCH, runs },
});
