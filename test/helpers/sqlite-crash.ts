import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/**
 * Kill -9 cycles against a child Herald on SQLite, shared by the test suite and
 * bench/sqlite-crash-soak.ts. Assertions use node:assert so it runs anywhere.
 */

const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url));
/** How long a child may take to print the URL it listens on. */
const STARTUP_TIMEOUT_MS = 20_000;
/** Page size of the verification reads (the server's largest limit). */
const READ_PAGE = 1000;
/** Retention large enough that nothing published in a run is ever trimmed. */
const RUN_MAX_MESSAGES = 10_000_000;

export interface CrashRunOptions {
  readonly dataDir: string;
  /** Kill cycles to run at least... */
  readonly cycles: number;
  /** ...unless this much time has passed (the run then stops after the current cycle). */
  readonly maxMs?: number;
  /** Concurrent publishers, each publishing back to back. */
  readonly publishers: number;
  readonly mailboxes: readonly string[];
  /** The kill comes at a random moment in [minKillMs, maxKillMs) after publishing starts. */
  readonly minKillMs: number;
  readonly maxKillMs: number;
  readonly sync?: "full" | "normal";
  readonly seed?: number;
  readonly log?: (line: string) => void;
}

export interface CrashRunReport {
  readonly seed: number;
  readonly cycles: number;
  readonly acknowledged: number;
  /** Messages on disk at the end; more than acknowledged when a commit beat the kill but not the answer. */
  readonly stored: number;
  readonly durationMs: number;
}

interface Ack {
  readonly id: string;
  readonly body: string;
}

interface WireMessage {
  readonly id: string;
  readonly seq: number;
  readonly body: string;
}

interface ReadAnswer {
  readonly messages: WireMessage[];
  readonly cursor: string;
  readonly gap: boolean;
}

/** A small seeded generator, so a failing run can be replayed with its seed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface HeraldChild {
  readonly url: string;
  readonly process: ChildProcess;
  /** Everything the child wrote to stderr, for failure messages. */
  stderr(): string;
}

export async function startHeraldChild(args: readonly string[]): Promise<HeraldChild> {
  const child = spawn(process.execPath, ["bin/herald.js", "serve", "--port", "0", ...args], {
    cwd: REPO_ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    // The sources through tsx, like every test (vitest.config.ts), even with this bare environment.
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", HERALD_FROM_SOURCE: "1" },
  });
  let stdout = "";
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Herald did not start: ${stderr}`)), STARTUP_TIMEOUT_MS);
    child.stdout?.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      const match = /listening on (http:\/\/\S+)/.exec(stdout);
      if (match) {
        clearTimeout(timer);
        resolve(match[1] as string);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`Herald exited with ${code} before listening: ${stderr}`));
    });
  });
  return { url, process: child, stderr: () => stderr };
}

export async function killHard(child: HeraldChild): Promise<void> {
  const { process: proc } = child;
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((resolve) => proc.once("exit", resolve));
  proc.kill("SIGKILL");
  await exited;
}

async function readAll(url: string, mailbox: string, cursor?: string): Promise<ReadAnswer> {
  const messages: WireMessage[] = [];
  let next = cursor;
  let gap = false;
  for (;;) {
    const query = `limit=${READ_PAGE}${next === undefined ? "" : `&cursor=${encodeURIComponent(next)}`}`;
    const response = await fetch(`${url}/v1/mailboxes/${mailbox}/messages?${query}`);
    assert.equal(response.status, 200, `read ${mailbox}: ${response.status}`);
    const page = (await response.json()) as ReadAnswer;
    messages.push(...page.messages);
    gap ||= page.gap;
    next = page.cursor;
    if (page.messages.length < READ_PAGE) return { messages, cursor: next, gap };
  }
}

/** Publishes back to back until the server goes away; records what was acknowledged with a 2xx. */
async function publishUntilDead(
  url: string,
  mailbox: string,
  tag: string,
  acked: Map<string, Map<number, Ack>>,
): Promise<void> {
  let lastSeq = 0;
  for (let n = 0; ; n++) {
    const body = `${tag}-${n}`;
    let message: WireMessage;
    try {
      const response = await fetch(`${url}/v1/mailboxes/${mailbox}/messages`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ body }),
      });
      if (response.status !== 201) {
        await response.body?.cancel();
        continue;
      }
      message = (await response.json()) as WireMessage;
    } catch {
      return;
    }
    assert.equal(message.body, body);
    assert.ok(message.seq > lastSeq, `${mailbox}: ${tag} got seq ${message.seq} after ${lastSeq}`);
    lastSeq = message.seq;
    const byseq = acked.get(mailbox) as Map<number, Ack>;
    assert.equal(byseq.has(message.seq), false, `${mailbox}: seq ${message.seq} acknowledged twice`);
    byseq.set(message.seq, { id: message.id, body });
  }
}

export async function runCrashCycles(options: CrashRunOptions): Promise<CrashRunReport> {
  const seed = options.seed ?? Date.now() % 2 ** 31;
  const next = random(seed);
  const log = options.log ?? (() => {});
  const started = Date.now();
  const args = [
    "--store",
    "sqlite",
    "--data-dir",
    options.dataDir,
    "--sync",
    options.sync ?? "full",
    "--max-messages",
    String(RUN_MAX_MESSAGES),
  ];
  const acked = new Map(options.mailboxes.map((mailbox) => [mailbox, new Map<number, Ack>()]));
  /** Every seq ever seen on disk with its id: a seq that comes back with another id was reused. */
  const seen = new Map(options.mailboxes.map((mailbox) => [mailbox, new Map<number, string>()]));
  const cursors = new Map<string, { cursor: string; lastSeq: number }>();
  let cycles = 0;
  let stored = 0;
  const verify = async (url: string) => {
    stored = 0;
    for (const mailbox of options.mailboxes) {
      const all = await readAll(url, mailbox);
      stored += all.messages.length;
      const seqs = all.messages.map((m) => m.seq);
      for (let i = 1; i < seqs.length; i++) {
        assert.ok(
          (seqs[i] as number) > (seqs[i - 1] as number),
          `${mailbox}: seqs out of order at ${i} (seed ${seed})`,
        );
      }
      const bySeq = new Map(all.messages.map((m) => [m.seq, m]));
      for (const [seq, ack] of acked.get(mailbox) as Map<number, Ack>) {
        const found = bySeq.get(seq);
        assert.ok(found, `${mailbox}: acknowledged seq ${seq} (${ack.body}) lost (seed ${seed})`);
        assert.equal(found.id, ack.id, `${mailbox}: seq ${seq} now holds another message (seed ${seed})`);
      }
      const ids = seen.get(mailbox) as Map<number, string>;
      for (const message of all.messages) {
        const earlier = ids.get(message.seq);
        assert.ok(
          earlier === undefined || earlier === message.id,
          `${mailbox}: seq ${message.seq} reused (seed ${seed})`,
        );
        ids.set(message.seq, message.id);
      }
      // The cursor from before the crash resumes with no gap and exactly what followed it.
      const before = cursors.get(mailbox);
      if (before) {
        const resumed = await readAll(url, mailbox, before.cursor);
        assert.equal(resumed.gap, false, `${mailbox}: gap after restart (seed ${seed})`);
        assert.deepEqual(
          resumed.messages.map((m) => m.id),
          all.messages.filter((m) => m.seq > before.lastSeq).map((m) => m.id),
        );
      }
      cursors.set(mailbox, { cursor: all.cursor, lastSeq: seqs.at(-1) ?? 0 });
    }
  };
  while (cycles < options.cycles && (options.maxMs === undefined || Date.now() - started < options.maxMs)) {
    const child = await startHeraldChild(args);
    try {
      await verify(child.url);
      const killAfter = options.minKillMs + next() * (options.maxKillMs - options.minKillMs);
      const publishers = Array.from({ length: options.publishers }, (_, p) =>
        publishUntilDead(
          child.url,
          options.mailboxes[p % options.mailboxes.length] as string,
          `c${cycles}p${p}`,
          acked,
        ),
      );
      await new Promise((resolve) => setTimeout(resolve, killAfter));
      await killHard(child);
      await Promise.all(publishers);
    } finally {
      await killHard(child);
    }
    cycles += 1;
    log(`cycle ${cycles}: ${[...acked.values()].reduce((n, m) => n + m.size, 0)} acknowledged so far`);
  }
  const last = await startHeraldChild(args);
  try {
    await verify(last.url);
  } finally {
    await killHard(last);
  }
  const acknowledged = [...acked.values()].reduce((n, m) => n + m.size, 0);
  return { seed, cycles, acknowledged, stored, durationMs: Date.now() - started };
}
