import { type HeraldProcess, startHerald } from "./lib/herald-process.js";
import { publishKeyed } from "./lib/keyed-publisher.js";
import { sleep } from "./lib/publisher.js";
import {
  cpuMeter,
  ensureFileLimit,
  ensureSendBufferCap,
  type Metric,
  machine,
  round1,
  sendBufferMax,
  startLoadavg,
  writeResult,
} from "./lib/report.js";
import { readNumber, SseSwarm } from "./lib/sse-swarm.js";

/**
 * Latest-value streams (issue 13 part 2): 1,000 SSE subscribers on one mailbox, every 10th reading
 * at most SLOW_BYTES_PER_SECOND, while one publisher (a worker thread) updates 50 keys at 500
 * messages/s. Run with `mode=latest` (slow readers conflate instead of being cut), then the same
 * with the default `mode=all` (slow readers are cut as slow consumers) for comparison.
 */

/** Kernel send buffer per connection at most, as over a real network (see ensureSendBufferCap). */
const SEND_BUFFER_MAX = 256 * 1024;
ensureSendBufferCap(import.meta.filename, SEND_BUFFER_MAX);
ensureFileLimit(import.meta.filename);

const MAILBOX = "bench:conflation";
const SUBSCRIBERS = Number(process.env.BENCH_SUBSCRIBERS ?? 1000);
/** Subscriber i is slow when i % SLOW_EVERY === 0: 100 of 1,000. */
const SLOW_EVERY = 10;
const KEYS = 50;
const RATE = Number(process.env.BENCH_CONFLATION_RATE ?? 500);
/** Publishes in flight at once: each waits out a fan-out slice (500 writes) on the server. */
const PUBLISH_CONNECTIONS = 16;
const SECONDS = Number(process.env.BENCH_CONFLATION_SECONDS ?? 20);
/** A slow reader's budget: a sixth of the full stream (~400 bytes an event at 500/s, ~200 KB/s). */
const SLOW_BYTES_PER_SECOND = 32 * 1024;
/** Payload padding: the publish body is ~130 bytes, the message delivered ~320 (id, seq, times, cursor), the SSE event ~400. */
const PAD = "x".repeat(60);
/** After the last publish: how long every subscriber still connected may take to reach the head. */
const DRAIN_TIMEOUT_MS = { latest: 40_000, all: 15_000 };
/** Fast-subscriber latency histogram: 0.1 ms buckets up to 10 s (the last bucket holds the rest). */
const BUCKET_MS = 0.1;
const BUCKETS = 100_000;
const MIB = 1024 * 1024;

type Mode = "latest" | "all";

interface MemorySample {
  /** Seconds since the first publish (negative before it). */
  readonly s: number;
  readonly rssMiB: number;
  readonly heapMiB?: number;
}

interface ServerGauges {
  readonly heapBytes: number;
  readonly slowConsumersCut: number;
}

async function scrape(herald: HeraldProcess): Promise<ServerGauges | undefined> {
  try {
    const text = await (await fetch(`${herald.url}/metrics`)).text();
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1] ?? Number.NaN);
    return {
      heapBytes: value("herald_nodejs_heap_size_used_bytes"),
      slowConsumersCut: value("herald_slow_consumers_cut_total"),
    };
  } catch {
    return undefined;
  }
}

/** Server RSS from /proc every 250 ms, heap from /metrics every second. */
function sampleMemory(herald: HeraldProcess, since: () => number) {
  const samples: MemorySample[] = [];
  let peakRss = 0;
  let peakHeap = 0;
  let ticks = 0;
  let scraping = false;
  const timer = setInterval(() => {
    const rss = herald.rssBytes();
    peakRss = Math.max(peakRss, rss);
    const s = round1((performance.now() - since()) / 1000);
    if (ticks++ % 4 !== 0 || scraping) return;
    scraping = true;
    void scrape(herald).then((gauges) => {
      scraping = false;
      if (gauges && !Number.isNaN(gauges.heapBytes)) peakHeap = Math.max(peakHeap, gauges.heapBytes);
      samples.push({
        s,
        rssMiB: round1(rss / MIB),
        ...(gauges ? { heapMiB: round1(gauges.heapBytes / MIB) } : {}),
      });
    });
  }, 250);
  return {
    samples,
    stop: () => clearInterval(timer),
    peakRss: () => peakRss,
    peakHeap: () => peakHeap,
  };
}

function isSlow(i: number): boolean {
  return i % SLOW_EVERY === 0;
}

/** A fixed pseudo-random key sequence (uniform over KEYS), the same in every run. */
function keySequence(count: number): Uint8Array {
  const keys = new Uint8Array(count);
  let state = 12345;
  for (let n = 0; n < count; n++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    keys[n] = (state >>> 16) % KEYS;
  }
  return keys;
}

function atHead(swarm: SseSwarm, i: number, head: number): boolean {
  return (swarm.lastSeq[i] as number) >= head;
}

/**
 * Waits until every subscriber holds the head `head` or is gone. A subscriber the server cut
 * is counted by the server at once, while its client still reads what the kernel had buffered
 * before it sees the close: once the fast ones are done, the server's count settles it.
 */
async function settle(herald: HeraldProcess, swarm: SseSwarm, head: number, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    let behind = 0;
    let fastBehind = 0;
    for (let i = 0; i < SUBSCRIBERS; i++) {
      if (swarm.closedUnexpectedly[i] === 1 || atHead(swarm, i, head)) continue;
      behind += 1;
      if (!isSlow(i)) fastBehind += 1;
    }
    if (behind === 0) return true;
    if (fastBehind === 0) {
      const cut = (await scrape(herald))?.slowConsumersCut ?? 0;
      let cutOrDone = 0;
      for (let i = 0; i < SUBSCRIBERS; i++) if (isSlow(i) && atHead(swarm, i, head)) cutOrDone += 1;
      if (cut + cutOrDone >= Math.ceil(SUBSCRIBERS / SLOW_EVERY)) return true;
    }
    await sleep(50);
  }
  return false;
}

function histogramPercentile(histogram: Int32Array, total: number, p: number): number {
  const rank = Math.max(1, Math.ceil((p / 100) * total));
  let seen = 0;
  for (let b = 0; b < histogram.length; b++) {
    seen += histogram[b] as number;
    if (seen >= rank) return (b + 1) * BUCKET_MS;
  }
  return Number.NaN;
}

async function runMode(mode: Mode) {
  const herald = await startHerald();
  const total = Math.round(RATE * SECONDS);
  // Per subscriber and key: the seq and value (per-key version) of the newest message received.
  const keySeq = new Int32Array(SUBSCRIBERS * KEYS);
  const keyValue = new Int32Array(SUBSCRIBERS * KEYS);
  /** Messages of a key received after a newer one of the same key: a stale value shown. */
  const stale = new Int32Array(SUBSCRIBERS);
  const latency = new Int32Array(BUCKETS);
  let latencySamples = 0;
  const swarm = new SseSwarm({
    host: herald.host,
    port: herald.port,
    count: SUBSCRIBERS,
    path: () => `/v1/mailboxes/${MAILBOX}/events?cursor=now${mode === "latest" ? "&mode=latest" : ""}`,
    readBytesPerSecond: (i) => (isSlow(i) ? SLOW_BYTES_PER_SECOND : undefined),
    conflation: true,
    timestamps: false,
    maxSamples: 1,
    onMessageText: (i, seq, text, data, end, at) => {
      // The payload is {"t":…,"k":…,"v":…,"pad":…} inside the stored message, after its seq.
      const tAt = text.indexOf('"t":', data);
      const kAt = text.indexOf('"k":', tAt);
      const vAt = text.indexOf('"v":', kAt);
      if (tAt < 0 || vAt < 0 || vAt > end) return;
      const key = readNumber(text, kAt + 4);
      const slot = i * KEYS + key;
      if (seq <= (keySeq[slot] as number)) stale[i] = (stale[i] as number) + 1;
      else {
        keySeq[slot] = seq;
        keyValue[slot] = readNumber(text, vAt + 4);
      }
      if (!isSlow(i)) {
        const bucket = Math.min(BUCKETS - 1, Math.max(0, Math.floor((at - readNumber(text, tAt + 4)) / BUCKET_MS)));
        latency[bucket] = (latency[bucket] as number) + 1;
        latencySamples += 1;
      }
    },
  });
  let firstPublishAt = performance.now();
  const memory = sampleMemory(herald, () => firstPublishAt);
  try {
    const connectStarted = performance.now();
    await swarm.open();
    const connectMs = performance.now() - connectStarted;
    await sleep(500);
    const rssConnected = herald.rssBytes();
    const heapConnected = (await scrape(herald))?.heapBytes ?? Number.NaN;
    const meter = cpuMeter();
    const serverCpuBefore = herald.cpuMs();
    const published = await publishKeyed(
      {
        url: herald.url,
        mailbox: MAILBOX,
        rate: RATE,
        keys: keySequence(total),
        keyCount: KEYS,
        pad: PAD,
        connections: PUBLISH_CONNECTIONS,
      },
      () => {
        firstPublishAt = performance.now();
      },
    );
    const { ackSeq, ackValue } = published;
    // Every publish acknowledged is a seq of this fresh mailbox, so the newest of all keys is the head.
    const finalSeq = Math.max(...ackSeq);
    const rssAtLastPublish = herald.rssBytes();
    const drainStarted = performance.now();
    const drained = await settle(herald, swarm, finalSeq, DRAIN_TIMEOUT_MS[mode]);
    const drainMs = performance.now() - drainStarted;
    const phase = meter();
    const serverCpuMs = herald.cpuMs() - serverCpuBefore;
    memory.stop();
    await sleep(300);
    const rssEnd = herald.rssBytes();
    const end = await scrape(herald);

    let slowClosesSeen = 0;
    let slowWithLatest = 0;
    let staleKeysAtEnd = 0;
    let wrongValuesAtEnd = 0;
    let fastWithLatest = 0;
    const sums = { slowReceived: 0, fastReceived: 0, slowNotices: 0, slowSkipped: 0, staleSlow: 0, staleFast: 0 };
    const fast = { lost: 0, duplicated: 0, outOfOrder: 0, cut: 0, behind: 0 };
    let slowBehind = 0;
    for (let i = 0; i < SUBSCRIBERS; i++) {
      const cut = swarm.closedUnexpectedly[i] === 1;
      let holdsLatest = true;
      for (let key = 0; key < KEYS; key++) {
        const slot = i * KEYS + key;
        if (keySeq[slot] !== ackSeq[key]) {
          holdsLatest = false;
          if (!cut && isSlow(i)) staleKeysAtEnd += 1;
        } else if (keyValue[slot] !== ackValue[key]) {
          holdsLatest = false;
          if (!cut) wrongValuesAtEnd += 1;
        }
      }
      if (isSlow(i)) {
        sums.slowReceived += swarm.received[i] as number;
        sums.slowNotices += swarm.conflatedNotices[i] as number;
        sums.slowSkipped += swarm.skipped[i] as number;
        sums.staleSlow += stale[i] as number;
        if (cut) slowClosesSeen += 1;
        else if ((swarm.lastSeq[i] as number) < finalSeq) slowBehind += 1;
        if (!cut && holdsLatest) slowWithLatest += 1;
      } else {
        sums.fastReceived += swarm.received[i] as number;
        sums.staleFast += stale[i] as number;
        const unique = (swarm.received[i] as number) - (swarm.duplicates[i] as number);
        fast.lost += Math.max(0, finalSeq - unique);
        fast.duplicated += swarm.duplicates[i] as number;
        fast.outOfOrder += swarm.outOfOrder[i] as number;
        if (cut) fast.cut += 1;
        else if ((swarm.lastSeq[i] as number) < finalSeq) fast.behind += 1;
        if (holdsLatest) fastWithLatest += 1;
      }
    }
    const slowCount = Math.ceil(SUBSCRIBERS / SLOW_EVERY);
    const fastCount = SUBSCRIBERS - slowCount;
    const serverCut = end?.slowConsumersCut ?? Number.NaN;
    // The server counts a cut at once; its client sees the close only after reading what the kernel held.
    const slowCut = Math.max(slowClosesSeen, Number.isNaN(serverCut) ? 0 : serverCut - fast.cut);
    const perSlow = Math.round(sums.slowReceived / slowCount);
    const skippedPerSlow = Math.round(sums.slowSkipped / slowCount);
    return {
      mode,
      slowCount,
      fastCount,
      finalSeq,
      publishedPerSecond: Math.round(finalSeq / (published.publishMs / 1000)),
      publishFailures: published.failures,
      publishReorders: published.reorders,
      publishScheduleLagP99Ms: published.scheduleLagP99Ms,
      publishScheduleLagMaxMs: published.scheduleLagMaxMs,
      publishAckP50Ms: published.ackP50Ms,
      publishAckP99Ms: published.ackP99Ms,
      drained,
      drainMs: Math.round(drainMs),
      slowConnected: slowCount - slowCut,
      slowCut,
      slowClosesSeen,
      slowBehind,
      slowWithLatest,
      staleKeysAtEnd,
      wrongValuesAtEnd,
      staleDeliveries: sums.staleSlow + sums.staleFast,
      fastWithLatest,
      fast,
      perSlow,
      perFast: Math.round(sums.fastReceived / fastCount),
      conflatedNotices: sums.slowNotices,
      skippedPerSlow,
      // Neither received nor announced as skipped: trimmed from the store (1,000 per mailbox) before
      // the subscriber caught up to them, which it is told by `gap` events.
      trimmedPerSlow: finalSeq - perSlow - skippedPerSlow,
      gapEvents: swarm.gapEvents,
      fastP50Ms: round1(histogramPercentile(latency, latencySamples, 50)),
      fastP99Ms: round1(histogramPercentile(latency, latencySamples, 99)),
      fastMaxMs: round1(histogramPercentile(latency, latencySamples, 100)),
      serverSlowConsumersCut: serverCut,
      rssConnected,
      rssAtLastPublish,
      rssPeak: memory.peakRss(),
      rssEnd,
      heapConnected,
      heapPeak: memory.peakHeap(),
      heapEnd: end?.heapBytes ?? Number.NaN,
      memory: memory.samples,
      connectMs: Math.round(connectMs),
      loadGenerator: phase,
      serverCpuMs,
    };
  } finally {
    memory.stop();
    swarm.close();
    await herald.stop();
  }
}

function mib(bytes: number): number {
  return round1(bytes / MIB);
}

const loadavgAtStart = startLoadavg();
const latest = await runMode("latest");
const all = await runMode("all");
const saved = latest.perFast > 0 ? round1(100 * (1 - latest.perSlow / latest.perFast)) : Number.NaN;
const metrics: Metric[] = [
  {
    name: "slow subscribers connected at the end",
    value: latest.slowConnected,
    unit: "",
    target: `>= ${latest.slowCount}`,
  },
  {
    name: "slow subscribers holding every key's latest value",
    value: latest.slowWithLatest,
    unit: "",
    target: `>= ${latest.slowCount}`,
  },
  { name: "stale values (older after newer of a key)", value: latest.staleDeliveries, unit: "", target: "== 0" },
  { name: "fast lost", value: latest.fast.lost, unit: "", target: "== 0" },
  { name: "fast duplicated", value: latest.fast.duplicated, unit: "", target: "== 0" },
  { name: "fast out of order", value: latest.fast.outOfOrder, unit: "", target: "== 0" },
  { name: "fast p50 latency", value: latest.fastP50Ms, unit: "ms" },
  { name: "fast p99 latency", value: latest.fastP99Ms, unit: "ms" },
  { name: "messages per slow subscriber", value: latest.perSlow, unit: "" },
  { name: "messages per fast subscriber", value: latest.perFast, unit: "" },
  { name: "conflation saved (slow vs fast)", value: saved, unit: "%" },
  {
    name: "conflated notices per slow subscriber",
    value: round1(latest.conflatedNotices / latest.slowCount),
    unit: "",
  },
  { name: "server RSS peak", value: mib(latest.rssPeak), unit: "MiB" },
  { name: "server RSS at the end", value: mib(latest.rssEnd), unit: "MiB" },
  { name: "server heap peak", value: mib(latest.heapPeak), unit: "MiB" },
  { name: "server heap at the end", value: mib(latest.heapEnd), unit: "MiB" },
  { name: "mode=all: slow subscribers cut", value: all.slowCut, unit: "" },
  { name: "mode=all: slow subscribers holding every key's latest value", value: all.slowWithLatest, unit: "" },
  { name: "mode=all: fast lost", value: all.fast.lost, unit: "", target: "== 0" },
  { name: "mode=all: server RSS peak", value: mib(all.rssPeak), unit: "MiB" },
  { name: "mode=all: server heap peak", value: mib(all.heapPeak), unit: "MiB" },
];
const { loadGenerator, serverCpuMs, rssConnected, rssEnd } = latest;
writeResult({
  scenario: "conflation",
  description: `${SUBSCRIBERS} SSE subscribers (every ${SLOW_EVERY}th reads at most ${SLOW_BYTES_PER_SECOND / 1024} KiB/s), ${KEYS} keys at ${RATE}/s for ${SECONDS} s: mode=latest, then mode=all`,
  date: new Date().toISOString(),
  machine: machine(),
  loadavgAtStart,
  metrics,
  loadGenerator,
  server: { rssBytesBefore: rssConnected, rssBytesAfter: rssEnd, flags: [], cpuMs: serverCpuMs },
  details: {
    subscribers: SUBSCRIBERS,
    slowBytesPerSecond: SLOW_BYTES_PER_SECOND,
    kernelSendBufferMax: sendBufferMax(),
    privateNetworkNamespace: process.env.HERALD_BENCH_NETNS === "1",
    keys: KEYS,
    rate: RATE,
    seconds: SECONDS,
    latest,
    all,
  },
});
