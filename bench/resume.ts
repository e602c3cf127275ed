import { Pool } from "undici";
import { startHerald } from "./lib/herald-process.js";
import { Publisher, sleep } from "./lib/publisher.js";
import { cpuMeter, ensureFileLimit, machine, startLoadavg, writeResult } from "./lib/report.js";
import { SseSwarm } from "./lib/sse-swarm.js";

ensureFileLimit(import.meta.filename);

/** Subscribers that drop and resume at once, per transport. */
const CLIENTS = 100;
const BEFORE = 10;
const WHILE_AWAY = 50;
/** Published while the subscribers reconnect, to race the replay against the live path. */
const DURING_RECONNECT = 50;
const MAILBOX = "bench:resume";
const SETTLE_TIMEOUT_MS = 30_000;

const loadavgAtStart = startLoadavg();
const herald = await startHerald([]);
const publisher = new Publisher(herald.url, 1);
const pool = new Pool(herald.url, { connections: 16 });
const path = `/v1/mailboxes/${MAILBOX}/events`;
const swarm = new SseSwarm({
  host: herald.host,
  port: herald.port,
  count: CLIENTS,
  path: (i) => (swarm.lastEventId[i] ? path : `${path}?cursor=now`),
  headers: (i) => (swarm.lastEventId[i] ? `Last-Event-ID: ${swarm.lastEventId[i]}\r\n` : ""),
  keepLastEventId: true,
});

async function readAll(cursor: string): Promise<{ seqs: number[]; cursor: string; gap: boolean }> {
  const response = await pool.request({
    method: "GET",
    path: `/v1/mailboxes/${MAILBOX}/messages?cursor=${cursor}&limit=1000`,
  });
  const answer = (await response.body.json()) as { messages: { seq: number }[]; cursor: string; gap: boolean };
  return { seqs: answer.messages.map((m) => m.seq), cursor: answer.cursor, gap: answer.gap };
}

function exactly(seqs: readonly number[], from: number, count: number): boolean {
  return seqs.length === count && seqs.every((seq, k) => seq === from + k);
}

try {
  const rssBefore = herald.rssBytes();
  const meter = cpuMeter();
  const serverCpuBefore = herald.cpuMs();
  await swarm.open();
  const pollCursors: string[] = [];
  const start = await readAll("now");
  for (let i = 0; i < CLIENTS; i++) pollCursors.push(start.cursor);
  for (let m = 0; m < BEFORE; m++) await publisher.publish(MAILBOX);
  await swarm.until(() => swarm.totalReceived >= CLIENTS * BEFORE, SETTLE_TIMEOUT_MS);
  for (let i = 0; i < CLIENTS; i++) pollCursors[i] = (await readAll(pollCursors[i] as string)).cursor;

  // Drop every subscriber, publish while they are away, then resume.
  for (let i = 0; i < CLIENTS; i++) swarm.drop(i);
  await sleep(100);
  const receivedBefore = Int32Array.from(swarm.received);
  for (let m = 0; m < WHILE_AWAY; m++) await publisher.publish(MAILBOX);
  let pollExact = 0;
  let pollGaps = 0;
  for (let i = 0; i < CLIENTS; i++) {
    const answer = await readAll(pollCursors[i] as string);
    if (exactly(answer.seqs, BEFORE + 1, WHILE_AWAY)) pollExact += 1;
    if (answer.gap) pollGaps += 1;
    pollCursors[i] = answer.cursor;
  }
  const seenAfter: number[][] = Array.from({ length: CLIENTS }, () => []);
  // Reconnect with Last-Event-ID while more messages publish.
  const publishing = (async () => {
    for (let m = 0; m < DURING_RECONNECT; m++) await publisher.publish(MAILBOX);
  })();
  swarm.onMessage = (i, seq) => seenAfter[i]?.push(seq);
  await Promise.all(Array.from({ length: CLIENTS }, (_, i) => swarm.openOne(i)));
  await publishing;
  const total = BEFORE + WHILE_AWAY + DURING_RECONNECT;
  await swarm.until(() => swarm.totalReceived >= CLIENTS * total, SETTLE_TIMEOUT_MS);
  let sseExact = 0;
  let sseAllAfter = 0;
  for (let i = 0; i < CLIENTS; i++) {
    const seqs = seenAfter[i] as number[];
    if (exactly(seqs.slice(0, WHILE_AWAY), BEFORE + 1, WHILE_AWAY)) sseExact += 1;
    if (exactly(seqs, BEFORE + 1, WHILE_AWAY + DURING_RECONNECT)) sseAllAfter += 1;
  }
  const phase = meter();
  const serverCpuMs = herald.cpuMs() - serverCpuBefore;
  writeResult({
    scenario: "resume",
    description: `${CLIENTS} SSE subscribers and ${CLIENTS} long-poll clients drop, ${WHILE_AWAY} messages publish, they resume (Last-Event-ID, cursor); ${DURING_RECONNECT} more publish during the SSE reconnect`,
    date: new Date().toISOString(),
    machine: machine(),
    loadavgAtStart,
    metrics: [
      {
        name: "SSE resumes with exactly the 50, in order",
        value: sseExact,
        unit: `of ${CLIENTS}`,
        target: `== ${CLIENTS}`,
      },
      {
        name: "long-poll resumes with exactly the 50, in order",
        value: pollExact,
        unit: `of ${CLIENTS}`,
        target: `== ${CLIENTS}`,
      },
      {
        name: "SSE resumes racing 50 more publishes: all 100 exactly once, in order",
        value: sseAllAfter,
        unit: `of ${CLIENTS}`,
        target: `== ${CLIENTS}`,
      },
      { name: "lost", value: swarm.lost(total), unit: "", target: "== 0" },
      { name: "duplicated", value: swarm.sum(swarm.duplicates), unit: "", target: "== 0" },
    ],
    loadGenerator: phase,
    server: { rssBytesBefore: rssBefore, rssBytesAfter: herald.rssBytes(), flags: [], cpuMs: serverCpuMs },
    details: {
      receivedBeforeDrop: swarm.sum(receivedBefore),
      gapEvents: swarm.gapEvents,
      pollGaps,
      outOfOrder: swarm.sum(swarm.outOfOrder),
      unexpectedCloses: swarm.unexpectedCloses,
    },
  });
} finally {
  swarm.close();
  await pool.close();
  await publisher.close();
  await herald.stop();
}
