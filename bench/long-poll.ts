import { Pool } from "undici";
import { Publisher, sleep } from "./lib/publisher.js";
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
import { HERALD, references, type Target } from "./lib/targets.js";

ensureFileLimit(import.meta.filename);

const CLIENTS = 1000;
const MESSAGES = 100;
const RATE = 10;
const MAILBOX = "bench:long-poll";
/** Seconds each long-poll holds; longer than the gap between messages, so most polls are woken. */
const WAIT_S = 30;
/** Longest the run waits for every client to see every message after the last publish. */
const SETTLE_TIMEOUT_MS = 30_000;

interface Message {
  seq: number;
  data?: { t?: number };
}

/** One client's way of asking for what follows what it holds; `state` is its cursor. */
interface PollProtocol {
  start(pool: Pool): Promise<string>;
  poll(pool: Pool, state: string): Promise<{ messages: Message[]; state: string }>;
}

/** Herald's (and the bare baseline's): `?cursor=` and `&wait=`, the messages and the next cursor in JSON. */
const CURSOR_POLLS: PollProtocol = {
  async start(pool) {
    return (await get(pool, `/v1/mailboxes/${MAILBOX}/messages?cursor=now`)).cursor;
  },
  async poll(pool, cursor) {
    const answer = await get(pool, `/v1/mailboxes/${MAILBOX}/messages?cursor=${cursor}&wait=${WAIT_S}`);
    return { messages: answer.messages, state: answer.cursor };
  },
};

async function get(pool: Pool, path: string): Promise<{ messages: Message[]; cursor: string }> {
  const response = await pool.request({ method: "GET", path });
  const text = await response.body.text();
  if (response.statusCode !== 200) throw new Error(`${response.statusCode} ${text}`);
  return JSON.parse(text);
}

/**
 * Nchan's: one message per answer, its id in Last-Modified and Etag, sent back as
 * If-Modified-Since and If-None-Match; the first poll waits for the next publish.
 */
const NCHAN_POLLS: PollProtocol = {
  start: async () => "",
  async poll(pool, state) {
    const [since, tag] = state === "" ? [] : state.split("\n");
    const response = await pool.request({
      method: "GET",
      path: `/sub/lp/${MAILBOX}`,
      headers: since === undefined ? {} : { "if-modified-since": since, "if-none-match": tag ?? "" },
    });
    const text = await response.body.text();
    if (response.statusCode === 408) return { messages: [], state };
    if (response.statusCode !== 200) throw new Error(`${response.statusCode} ${text}`);
    return {
      messages: [JSON.parse(text)],
      state: `${response.headers["last-modified"]}\n${response.headers.etag}`,
    };
  },
};

interface LongPollRun {
  readonly lost: number;
  readonly duplicated: number;
  readonly outOfOrder: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly deliveriesPerSecond: number;
  readonly polls: number;
  readonly errors: number;
  readonly settled: boolean;
  readonly serverCpuMs: number;
  readonly serverCpuUsPerPoll: number;
  readonly rssBefore: number;
  readonly rssAfter: number;
  readonly cpu: { cpuMs: number; wallMs: number; cpuPercent: number };
}

async function run(target: Target): Promise<LongPollRun> {
  const protocol = target.name === "nchan" ? NCHAN_POLLS : CURSOR_POLLS;
  const server = await target.start();
  const pool = new Pool(server.url, { connections: CLIENTS, pipelining: 1, bodyTimeout: 0, headersTimeout: 0 });
  const publisher = new Publisher(server.url, 2, target);
  const lastSeq = new Int32Array(CLIENTS);
  const received = new Int32Array(CLIENTS);
  const duplicates = new Int32Array(CLIENTS);
  const outOfOrder = new Int32Array(CLIENTS);
  const latencies: number[] = [];
  let errors = 0;
  let polls = 0;
  let lastDeliveryAt = 0;
  let stopping = false;
  const client = async (i: number, first: string) => {
    let state = first;
    while (!stopping && (lastSeq[i] as number) < MESSAGES) {
      let answer: { messages: Message[]; state: string };
      try {
        answer = await protocol.poll(pool, state);
      } catch {
        errors += 1;
        await sleep(100);
        continue;
      }
      polls += 1;
      const at = now();
      for (const message of answer.messages) {
        if (message.seq <= (lastSeq[i] as number)) duplicates[i] = (duplicates[i] as number) + 1;
        else {
          if (message.seq !== (lastSeq[i] as number) + 1) outOfOrder[i] = (outOfOrder[i] as number) + 1;
          lastSeq[i] = message.seq;
        }
        received[i] = (received[i] as number) + 1;
        lastDeliveryAt = at;
        const sent = message.data?.t;
        if (typeof sent === "number") latencies.push(at - sent);
      }
      state = answer.state;
    }
  };
  try {
    const rssBefore = server.rssBytes();
    const first = await protocol.start(pool);
    const meter = cpuMeter();
    const serverCpuBefore = server.cpuMs();
    const clients = Array.from({ length: CLIENTS }, (_, i) => client(i, first));
    // Let every client's first poll reach the server before publishing.
    await sleep(1000);
    const firstPublishAt = now();
    const t0 = performance.now();
    for (let m = 0; m < MESSAGES; m++) {
      const due = t0 + (m * 1000) / RATE - performance.now();
      if (due > 0) await sleep(due);
      await publisher.publish(MAILBOX);
    }
    const settled = await Promise.race([
      Promise.all(clients).then(() => true),
      sleep(SETTLE_TIMEOUT_MS).then(() => false),
    ]);
    stopping = true;
    const cpu = meter();
    const serverCpuMs = server.cpuMs() - serverCpuBefore;
    let lost = 0;
    let delivered = 0;
    for (let i = 0; i < CLIENTS; i++) {
      const unique = (received[i] as number) - (duplicates[i] as number);
      lost += Math.max(0, MESSAGES - unique);
      delivered += unique;
    }
    const sorted = latencies.sort((a, b) => a - b);
    const sum = (array: Int32Array) => array.reduce((a, b) => a + b, 0);
    return {
      lost,
      duplicated: sum(duplicates),
      outOfOrder: sum(outOfOrder),
      p50Ms: round1(percentile(sorted, 50)),
      p99Ms: round1(percentile(sorted, 99)),
      maxMs: round1(sorted[sorted.length - 1] ?? Number.NaN),
      deliveriesPerSecond: Math.round(delivered / Math.max(0.001, (lastDeliveryAt - firstPublishAt) / 1000)),
      polls,
      errors,
      settled,
      serverCpuMs,
      serverCpuUsPerPoll: Math.round((serverCpuMs * 1000) / Math.max(1, polls)),
      rssBefore,
      rssAfter: server.rssBytes(),
      cpu,
    };
  } finally {
    stopping = true;
    await pool.destroy();
    await publisher.close();
    await server.stop();
  }
}

const loadavgAtStart = startLoadavg();
const herald = await run(HERALD);
const reference: Record<string, LongPollRun> = {};
for (const target of references()) reference[target.name] = await run(target);
const metrics: Metric[] = [
  { name: "lost", value: herald.lost, unit: "", target: "== 0" },
  { name: "duplicated", value: herald.duplicated, unit: "", target: "== 0" },
  { name: "out of order", value: herald.outOfOrder, unit: "", target: "== 0" },
  { name: "p50 latency", value: herald.p50Ms, unit: "ms" },
  { name: "p99 latency", value: herald.p99Ms, unit: "ms", target: "<= 500" },
  { name: "deliveries/s", value: herald.deliveriesPerSecond, unit: "/s" },
  { name: "server CPU per poll", value: herald.serverCpuUsPerPoll, unit: "µs" },
];
const { bare, nchan } = reference;
if (bare) {
  metrics.push(
    { name: "bare node:http: server CPU per poll", value: bare.serverCpuUsPerPoll, unit: "µs" },
    {
      name: "server CPU per poll, × bare node:http",
      value: round1(herald.serverCpuUsPerPoll / Math.max(1, bare.serverCpuUsPerPoll)),
      unit: "×",
      target: "<= 3",
    },
  );
}
if (nchan) {
  metrics.push(
    { name: "Nchan: deliveries/s", value: nchan.deliveriesPerSecond, unit: "/s" },
    { name: "Nchan: p99 latency", value: nchan.p99Ms, unit: "ms" },
    { name: "Nchan: server CPU per poll", value: nchan.serverCpuUsPerPoll, unit: "µs" },
    { name: "Nchan: lost", value: nchan.lost, unit: "" },
    {
      name: "deliveries/s, % of Nchan",
      value: round1((herald.deliveriesPerSecond / Math.max(1, nchan.deliveriesPerSecond)) * 100),
      unit: "%",
      target: ">= 100",
    },
    {
      name: "p99 latency, % of Nchan's",
      value: round1((herald.p99Ms / Math.max(0.1, nchan.p99Ms)) * 100),
      unit: "%",
      target: "<= 100",
    },
  );
}
writeResult({
  scenario: "long-poll",
  description: `${CLIENTS.toLocaleString("en-US")} clients looping GET with their cursor while ${MESSAGES} messages publish at ${RATE}/s; Herald, the bare node:http baseline and Nchan (1 worker) in the same run`,
  date: new Date().toISOString(),
  machine: machine(),
  loadavgAtStart,
  metrics,
  loadGenerator: herald.cpu,
  server: { rssBytesBefore: herald.rssBefore, rssBytesAfter: herald.rssAfter, flags: [], cpuMs: herald.serverCpuMs },
  details: { clients: CLIENTS, messages: MESSAGES, rate: RATE, herald, reference },
});
