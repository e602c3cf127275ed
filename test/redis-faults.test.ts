import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { afterAll, describe, expect, it } from "vitest";
import { type HeraldChild, spawnHerald } from "./helpers/child.js";
import type { WireMessage } from "./helpers/clients.js";
import { freePort, hasRedisServerBinary, RedisServerProcess, skipBecause } from "./helpers/redis.js";
import { ResumingReader } from "./helpers/resuming-reader.js";
import { until } from "./helpers/until.js";

/*
 * Redis faults under live traffic: two Herald nodes on one redis-server that this test starts on a free
 * port (AOF, appendfsync always; never the machine's shared 127.0.0.1:6379). While both nodes publish
 * and four subscribers (SSE and ndjson, on both nodes) read, Redis is killed with SIGKILL and started
 * again (a fifth subscriber arrives while it is dead), then frozen with SIGSTOP for 5 s (one stream is
 * cut meanwhile and resumes by its cursor on the other node). What must hold: publishes during an outage are refused with
 * 503 store_unavailable and Retry-After instead of hanging, /readyz says not ready, /healthz keeps
 * answering (no event-loop stall), the nodes reconnect by themselves, and every subscriber gets every
 * acknowledged message exactly once, in order, and nothing that was refused.
 */

/** How long Redis stays frozen by SIGSTOP. */
const STALL_MS = 5000;
/** Steady publishing before each fault, and after the last one. */
const CALM_MS = 1500;
/** How long Redis stays dead after SIGKILL before it is started again. */
const DEAD_MS = 1500;
/** Each node is sent a publish this often, with at most MAX_IN_FLIGHT unanswered. */
const PUBLISH_EVERY_MS = 50;
const MAX_IN_FLIGHT = 200;
/** Publishes started together just before the kill, and how long before it, so that some are in flight. */
const BURST = 30;
const BURST_LEAD_MS = 5;
/** Far more than the test publishes, so retention trims nothing. */
const MAX_MESSAGES = 20_000;
/** How often /healthz and /readyz are probed. */
const PROBE_EVERY_MS = 100;
/**
 * Behaviour bounds, not speed targets (CI is a busy 2-core machine): an outage is noticed (a publish
 * refused, /readyz 503) within NOTICED_MS; a refusal or a health answer comes within ANSWER_MS instead of
 * hanging; nodes are back within RECOVERED_MS; nothing at all waits longer than HANG_MS.
 */
const NOTICED_MS = 6000;
const ANSWER_MS = 4000;
const RECOVERED_MS = 10_000;
const HANG_MS = 9000;
const WAIT_MS = 20_000;
const TEST_TIMEOUT_MS = 90_000;
const MAILBOX = "alerts";
/** Messages per page when reading the whole log back. */
const READ_PAGE = 500;

interface Attempt {
  readonly node: number;
  readonly body: string;
  readonly started: number;
  ended: number;
  status: number;
  code?: string;
  retryAfter?: string | null;
  message?: WireMessage;
}

interface Probe {
  readonly node: number;
  readonly path: string;
  readonly started: number;
  readonly ms: number;
  readonly status: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Publishes to one node every PUBLISH_EVERY_MS until stopped, without waiting for earlier attempts (up
 * to MAX_IN_FLIGHT of them), so a publish stuck in a stall does not hide how later ones are answered.
 */
class Publisher {
  readonly attempts: Attempt[] = [];
  #stopped = false;
  readonly #pending = new Set<Promise<void>>();
  readonly #done: Promise<void>;

  constructor(
    readonly node: number,
    readonly base: string,
  ) {
    this.#done = this.#run();
  }

  async #run(): Promise<void> {
    for (let n = 1; !this.#stopped; n++) {
      if (this.#pending.size < MAX_IN_FLIGHT) {
        const pending = this.#attempt(`n${this.node}-${n}`);
        this.#pending.add(pending);
        void pending.then(() => this.#pending.delete(pending));
      }
      await sleep(PUBLISH_EVERY_MS);
    }
    await Promise.all(this.#pending);
  }

  async #attempt(body: string): Promise<void> {
    const attempt: Attempt = { node: this.node, body, started: performance.now(), ended: 0, status: 0 };
    this.attempts.push(attempt);
    try {
      const response = await fetch(`${this.base}/v1/mailboxes/${MAILBOX}/messages`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ body }),
        signal: AbortSignal.timeout(WAIT_MS),
      });
      const answer = (await response.json()) as WireMessage & { error?: { code: string } };
      attempt.status = response.status;
      if (response.status === 201) attempt.message = answer;
      else {
        attempt.code = answer.error?.code;
        attempt.retryAfter = response.headers.get("retry-after");
      }
    } catch {
      attempt.status = 0;
    }
    attempt.ended = performance.now();
  }

  /** Starts `count` more attempts at once, so that some are in flight when a fault strikes. */
  burst(count: number): void {
    for (let i = 1; i <= count; i++) {
      const pending = this.#attempt(`n${this.node}-burst-${i}`);
      this.#pending.add(pending);
      void pending.then(() => this.#pending.delete(pending));
    }
  }

  stop(): Promise<void> {
    this.#stopped = true;
    return this.#done;
  }
}

/** Probes /healthz and /readyz of every node, recording how long each answer took. */
class Prober {
  readonly probes: Probe[] = [];
  #stopped = false;
  readonly #done: Promise<void>;

  constructor(readonly bases: readonly string[]) {
    this.#done = this.#run();
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      await Promise.all(
        this.bases.flatMap((base, node) =>
          ["/healthz", "/readyz"].map(async (path) => {
            const started = performance.now();
            let status = 0;
            try {
              const response = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(WAIT_MS) });
              await response.arrayBuffer();
              status = response.status;
            } catch {}
            this.probes.push({ node, path, started, ms: performance.now() - started, status });
          }),
        ),
      );
      await sleep(PROBE_EVERY_MS);
    }
  }

  /** When `path` on `node` first answered `status` at or after `from`. */
  firstAnswer(node: number, path: string, status: number, from: number): number | undefined {
    const probe = this.probes.find(
      (p) => p.node === node && p.path === path && p.started >= from && p.status === status,
    );
    return probe === undefined ? undefined : probe.started + probe.ms;
  }

  stop(): Promise<void> {
    this.#stopped = true;
    return this.#done;
  }
}

if (!hasRedisServerBinary()) {
  // It kills and freezes its own Redis, so REDIS_URL cannot stand in for the binary.
  console.warn(`Redis fault test skipped: ${skipBecause("no redis-server binary on PATH").reason}`);
}

describe.runIf(hasRedisServerBinary())("Herald on Redis when Redis is killed and when it stalls", () => {
  const nodes: HeraldChild[] = [];
  const readers: ResumingReader[] = [];
  let server: RedisServerProcess | undefined;
  let dir: string | undefined;
  afterAll(async () => {
    for (const reader of readers) reader.close();
    server?.resume();
    for (const node of nodes) {
      node.process.kill("SIGKILL");
      await node.exited;
    }
    await server?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it(
    "refuses publishes promptly, reports not ready, recovers by itself, and delivers every acknowledged message once",
    async () => {
      dir = await mkdtemp(join(tmpdir(), "herald-redis-faults-"));
      const redis = new RedisServerProcess({ port: await freePort(), dir, appendonly: true });
      server = redis;
      await redis.start();
      const args = [
        "--store",
        "redis",
        "--redis-url",
        redis.url,
        "--redis-prefix",
        "faults:",
        "--max-messages",
        String(MAX_MESSAGES),
      ];
      nodes.push(...(await Promise.all([spawnHerald(args), spawnHerald(args)])));
      const bases = nodes.map((node) => node.url);
      const [a, b] = bases as [string, string];

      // Subscribers on both nodes, both transports; each resumes by its cursor on the other node if its stream ends.
      const open = (kind: "sse" | "ndjson", on: readonly string[]) => {
        const reader = new ResumingReader(kind, on, MAILBOX);
        readers.push(reader);
        return reader;
      };
      const steady = [open("sse", [a, b]), open("ndjson", [a, b]), open("sse", [b, a]), open("ndjson", [b, a])];
      await Promise.all(steady.map((reader) => reader.opened));

      const prober = new Prober(bases);
      const publishers = bases.map((base, node) => new Publisher(node, base));
      const attempts = () => publishers.flatMap((publisher) => publisher.attempts);
      const firstAfter = (node: number, status: number, from: number) =>
        publishers[node]?.attempts.find((t) => t.started >= from && t.status === status && t.ended > 0)?.ended;
      const timings: Record<string, number[]> = {};
      /** Records how long after `from` something happened, per node; never happening is Infinity. */
      const noted = (what: string, from: number, at: number | undefined) => {
        timings[what] = [...(timings[what] ?? []), at === undefined ? Number.POSITIVE_INFINITY : Math.round(at - from)];
      };

      // 1. Steady traffic, then SIGKILL mid-stream.
      await until(
        () => publishers.every((p) => p.attempts.filter((t) => t.status === 201).length >= 10),
        "calm",
        WAIT_MS,
      );
      await sleep(CALM_MS);
      for (const publisher of publishers) publisher.burst(BURST);
      await sleep(BURST_LEAD_MS);
      const killedAt = performance.now();
      await redis.stop("SIGKILL");
      await until(
        () => bases.every((_, node) => firstAfter(node, 503, killedAt) !== undefined),
        () => `a 503 on every node after the kill: ${JSON.stringify(attempts().slice(-6))}`,
        NOTICED_MS + DEAD_MS,
      );
      // A subscriber arriving while Redis is down, from the earliest message: it must get all of them.
      const late = open("ndjson", [b, a]);
      await sleep(DEAD_MS);
      for (const node of [0, 1]) {
        noted("kill: first 503", killedAt, firstAfter(node, 503, killedAt));
        noted("kill: /readyz 503", killedAt, prober.firstAnswer(node, "/readyz", 503, killedAt));
      }
      const restartedAt = performance.now();
      await redis.start();
      await until(
        () => bases.every((_, node) => prober.firstAnswer(node, "/readyz", 200, restartedAt) !== undefined),
        "/readyz 200 on every node after the restart",
        RECOVERED_MS,
      );
      await until(
        () => bases.every((_, node) => firstAfter(node, 201, restartedAt) !== undefined),
        "a 201",
        RECOVERED_MS,
      );
      for (const node of [0, 1]) {
        noted("restart: first 201", restartedAt, firstAfter(node, 201, restartedAt));
        noted("restart: /readyz 200", restartedAt, prober.firstAnswer(node, "/readyz", 200, restartedAt));
      }

      // 2. Steady traffic, then SIGSTOP for STALL_MS: the TCP connections stay up, nothing answers.
      await sleep(CALM_MS);
      // This subscriber's stream is cut during the stall; it resumes by Last-Event-ID on the other node.
      const cut = steady[0] as ResumingReader;
      const stoppedAt = performance.now();
      redis.pause();
      await sleep(STALL_MS / 2);
      cut.cut();
      await sleep(STALL_MS / 2);
      const continuedAt = performance.now();
      redis.resume();
      await until(
        () => bases.every((_, node) => prober.firstAnswer(node, "/readyz", 200, continuedAt) !== undefined),
        "/readyz 200 on every node after SIGCONT",
        RECOVERED_MS,
      );
      await until(
        () => bases.every((_, node) => firstAfter(node, 201, continuedAt) !== undefined),
        "a 201",
        RECOVERED_MS,
      );
      for (const node of [0, 1]) {
        noted("stall: first 503", stoppedAt, firstAfter(node, 503, stoppedAt));
        noted("stall: /readyz 503", stoppedAt, prober.firstAnswer(node, "/readyz", 503, stoppedAt));
        noted("resume: first 201", continuedAt, firstAfter(node, 201, continuedAt));
        noted("resume: /readyz 200", continuedAt, prober.firstAnswer(node, "/readyz", 200, continuedAt));
      }
      await sleep(CALM_MS);
      await Promise.all(publishers.map((publisher) => publisher.stop()));
      await prober.stop();

      // Publishes: only 201 or a prompt 503 store_unavailable with Retry-After; none hung.
      const all = attempts();
      expect(all.filter((t) => t.status !== 201 && t.status !== 503)).toEqual([]);
      const refused = all.filter((t) => t.status === 503);
      expect(refused.length).toBeGreaterThan(0);
      expect(refused.filter((t) => t.code !== "store_unavailable" || !t.retryAfter)).toEqual([]);
      expect(Math.max(...all.map((t) => t.ended - t.started))).toBeLessThan(HANG_MS);
      // A refusal is an answer, not a wait: once a node knows Redis is gone it says so at once.
      const slowRefusals = refused.filter((t) => t.ended - t.started > ANSWER_MS);
      expect(slowRefusals).toEqual([]);
      // The event loop never stalled: /healthz answered every probe, promptly, through both faults.
      const health = prober.probes.filter((p) => p.path === "/healthz");
      expect(health.filter((p) => p.status !== 200)).toEqual([]);
      expect(Math.max(...health.map((p) => p.ms))).toBeLessThan(ANSWER_MS);

      // Delivery: every acknowledged message exactly once, in seq order, to every subscriber; nothing refused.
      const acked = all.filter((t) => t.status === 201).map((t) => t.message as WireMessage);
      // A refusal whose publish was in flight when Redis was killed may have been stored (docs/redis.md):
      // it may appear, once. Every other refusal was never stored.
      const uncertain = new Set(refused.filter((t) => t.started < killedAt && t.ended > killedAt).map((t) => t.body));
      const neverStored = new Set(refused.filter((t) => !uncertain.has(t.body)).map((t) => t.body));
      const everyone = [...steady, late];
      await Promise.all(
        everyone.map((reader) =>
          until(
            () => acked.every((m) => reader.has(m.id)),
            () =>
              `${reader.label} to receive all ${acked.length} acknowledged messages (has ${reader.received.length})`,
            WAIT_MS,
          ),
        ),
      );
      await sleep(300);
      const stored = everyone[0]?.received.map((m) => m.id) ?? [];
      const slowest = Math.round(Math.max(...all.map((t) => t.ended - t.started)));
      console.info(
        `redis faults: ${all.length} publishes, ${acked.length} acknowledged, ${refused.length} refused ` +
          `(${uncertain.size} in flight at the kill, ${stored.length - acked.length} of them stored), slowest answer ${slowest} ms; late subscriber's ended streams: ` +
          `${JSON.stringify(late.ends)}; ms from each fault, per node: ${JSON.stringify(timings)}`,
      );
      for (const reader of everyone) {
        const seqs = reader.received.map((m) => m.seq);
        expect(seqs, `${reader.label}: seqs 1..n, each once`).toEqual(seqs.map((_, i) => i + 1));
        expect(reader.gaps, `${reader.label}: gaps`).toEqual([]);
        expect(
          reader.received.map((m) => m.id),
          `${reader.label}: same log as the others`,
        ).toEqual(stored);
        const bodies = reader.received.map((m) => m.body ?? "");
        expect(
          bodies.filter((body) => neverStored.has(body)),
          `${reader.label}: refused publishes`,
        ).toEqual([]);
        expect(
          acked.filter((m) => !reader.has(m.id)),
          `${reader.label}: acknowledged messages missing`,
        ).toEqual([]);
      }
      // What they got is the log itself: what was acknowledged plus at most the refusals in flight at the kill.
      const logged: string[] = [];
      for (let cursor = "", more = true; more; ) {
        const query = `limit=${READ_PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
        const page = (await (await fetch(`${b}/v1/mailboxes/${MAILBOX}/messages?${query}`)).json()) as {
          messages: WireMessage[];
          cursor: string;
        };
        logged.push(...page.messages.map((m) => m.id));
        ({ cursor } = page);
        more = page.messages.length > 0;
      }
      expect(logged).toEqual(stored);
      expect(stored.length - acked.length).toBeLessThanOrEqual(uncertain.size);
      // Streams open before the faults stayed open through both (docs/redis.md); the one cut here resumed once.
      for (const reader of steady) {
        if (reader === cut) continue;
        expect(reader.ends, `${reader.label}: ended streams`).toEqual([]);
      }
      expect(cut.ends).toEqual([{ status: 200, hint: expect.any(String), cutHere: true }]);
      expect(cut.connections).toBe(2);
      // The subscriber that came during the outage: any stream it was refused or that ended came with a retry hint.
      expect(late.ends.filter((end) => end.hint === undefined)).toEqual([]);

      // Each outage was noticed (a 503, /readyz 503) within NOTICED_MS on every node, and ended within RECOVERED_MS.
      for (const [what, ms] of Object.entries(timings)) {
        const bound = what.startsWith("restart") || what.startsWith("resume") ? RECOVERED_MS : NOTICED_MS;
        expect(Math.max(...ms), `${what} (ms per node: ${ms.join(", ")})`).toBeLessThan(bound);
      }
    },
    TEST_TIMEOUT_MS,
  );
});
