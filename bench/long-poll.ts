import { Pool } from "undici";
import { startHerald } from "./lib/herald-process.js";
import { Publisher, sleep } from "./lib/publisher.js";
import { cpuMeter, ensureFileLimit, machine, percentile, round1, startLoadavg, writeResult } from "./lib/report.js";
import { now } from "./lib/sse-swarm.js";

ensureFileLimit(import.meta.filename);

const CLIENTS = 1000;
const MESSAGES = 100;
const RATE = 10;
const MAILBOX = "bench:long-poll";
/** Seconds each long-poll holds; longer than the gap between messages, so most polls are woken. */
const WAIT_S = 30;
/** Longest the run waits for every client to see every message after the last publish. */
const SETTLE_TIMEOUT_MS = 30_000;

interface PollAnswer {
  messages: { seq: number; data?: { t?: number } }[];
  cursor: string;
  gap: boolean;
}

const loadavgAtStart = startLoadavg();
const herald = await startHerald([]);
const pool = new Pool(herald.url, { connections: CLIENTS, pipelining: 1, bodyTimeout: 0, headersTimeout: 0 });
const publisher = new Publisher(herald.url, 2);
const lastSeq = new Int32Array(CLIENTS);
const received = new Int32Array(CLIENTS);
const duplicates = new Int32Array(CLIENTS);
const outOfOrder = new Int32Array(CLIENTS);
const latencies: number[] = [];
let gaps = 0;
let errors = 0;
let polls = 0;
let stopping = false;

async function get(path: string): Promise<PollAnswer> {
  const response = await pool.request({ method: "GET", path });
  const text = await response.body.text();
  if (response.statusCode !== 200) throw new Error(`${response.statusCode} ${text}`);
  return JSON.parse(text) as PollAnswer;
}

async function client(i: number, startCursor: string): Promise<void> {
  let cursor = startCursor;
  while (!stopping && (lastSeq[i] as number) < MESSAGES) {
    let answer: PollAnswer;
    try {
      answer = await get(`/v1/mailboxes/${MAILBOX}/messages?cursor=${cursor}&wait=${WAIT_S}`);
    } catch {
      errors += 1;
      await sleep(100);
      continue;
    }
    polls += 1;
    const at = now();
    if (answer.gap) gaps += 1;
    for (const message of answer.messages) {
      if (message.seq <= (lastSeq[i] as number)) duplicates[i] = (duplicates[i] as number) + 1;
      else {
        if (message.seq !== (lastSeq[i] as number) + 1) outOfOrder[i] = (outOfOrder[i] as number) + 1;
        lastSeq[i] = message.seq;
      }
      received[i] = (received[i] as number) + 1;
      const sent = message.data?.t;
      if (typeof sent === "number") latencies.push(at - sent);
    }
    cursor = answer.cursor;
  }
}

try {
  const rssBefore = herald.rssBytes();
  const start = await get(`/v1/mailboxes/${MAILBOX}/messages?cursor=now`);
  const meter = cpuMeter();
  const serverCpuBefore = herald.cpuMs();
  const clients = Array.from({ length: CLIENTS }, (_, i) => client(i, start.cursor));
  // Let every client's first poll reach the server before publishing.
  await sleep(1000);
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
  const phase = meter();
  const serverCpuMs = herald.cpuMs() - serverCpuBefore;
  const rssAfter = herald.rssBytes();
  let lost = 0;
  for (let i = 0; i < CLIENTS; i++)
    lost += Math.max(0, MESSAGES - ((received[i] as number) - (duplicates[i] as number)));
  const sorted = latencies.sort((a, b) => a - b);
  const sum = (array: Int32Array) => array.reduce((a, b) => a + b, 0);
  writeResult({
    scenario: "long-poll",
    description: `${CLIENTS.toLocaleString("en-US")} clients looping GET with their cursor while ${MESSAGES} messages publish at ${RATE}/s`,
    date: new Date().toISOString(),
    machine: machine(),
    loadavgAtStart,
    metrics: [
      { name: "lost", value: lost, unit: "", target: "== 0" },
      { name: "duplicated", value: sum(duplicates), unit: "", target: "== 0" },
      { name: "out of order", value: sum(outOfOrder), unit: "", target: "== 0" },
      { name: "p50 latency", value: round1(percentile(sorted, 50)), unit: "ms" },
      { name: "p99 latency", value: round1(percentile(sorted, 99)), unit: "ms", target: "<= 500" },
    ],
    loadGenerator: phase,
    server: { rssBytesBefore: rssBefore, rssBytesAfter: rssAfter, flags: [], cpuMs: serverCpuMs },
    details: {
      clients: CLIENTS,
      messages: MESSAGES,
      rate: RATE,
      settled,
      polls,
      errors,
      gaps,
      samples: sorted.length,
      maxMs: round1(sorted[sorted.length - 1] ?? Number.NaN),
    },
  });
} finally {
  stopping = true;
  await pool.destroy();
  await publisher.close();
  await herald.stop();
}
