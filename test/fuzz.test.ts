import { connect } from "node:net";
import { Writable } from "node:stream";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import WebSocket from "ws";
import { DEFAULT_CONFIG } from "../src/config.js";
import { ERROR_CATALOGUE } from "../src/errors.js";
import { createLogger } from "../src/log.js";
import { type RunningHerald, startHerald } from "../src/server.js";
import { createMemoryStore } from "../src/store/memory-store.js";
import { mercureSettings } from "./helpers/mercure.js";

/**
 * Random requests against a listening server: paths, methods, query
 * parameters, headers, bodies (including lying Content-Lengths and clients
 * that give up mid-body) and WebSocket frames. Whatever arrives, the answer is
 * a success or the catalogue's JSON error, never a 5xx but the catalogue's
 * 503s; nothing reaches the log as an error or with a stack; and what was
 * accepted before stays intact. `npm run fuzz` runs it longer
 * (HERALD_FUZZ_RUNS, HERALD_FUZZ_SEED to replay a failure).
 */
const RUNS = Number(process.env.HERALD_FUZZ_RUNS ?? 1000);
const WS_RUNS = Math.max(20, Math.floor(RUNS / 10));
const SEED = process.env.HERALD_FUZZ_SEED === undefined ? undefined : Number(process.env.HERALD_FUZZ_SEED);
/** How long a request may take to answer before the client gives up (streams and long-polls never end). */
const GIVE_UP_MS = 250;
const KNOWN_MAILBOXES = ["fuzz-a", "fuzz-b", "room:1", "mercure", "mercure.subscriptions"];
const CODES = new Set(Object.keys(ERROR_CATALOGUE));
const CODES_503 = new Set(
  Object.entries(ERROR_CATALOGUE)
    .filter(([, entry]) => entry.status === 503)
    .map(([code]) => code),
);

let server: RunningHerald;
let port: number;
const logLines: string[] = [];
/** What reached console.error: the HTTP adapter reports a response it could not write there, past Herald's log. */
const consoleErrors: string[] = [];
const before: { mailbox: string; seq: number; body: string }[] = [];

beforeAll(async () => {
  vi.spyOn(console, "error").mockImplementation((...args: unknown[]) => {
    consoleErrors.push(args.map(String).join(" "));
  });
  const config = { ...DEFAULT_CONFIG, port: 0, drainTimeoutSeconds: 1 };
  const logger = createLogger(
    "info",
    new Writable({
      write(chunk, _encoding, done) {
        logLines.push(...String(chunk).split("\n").filter(Boolean));
        done();
      },
    }),
  );
  server = await startHerald(
    config,
    createMemoryStore({ maxMailboxes: 10_000, maxMessagesPerMailbox: 10_000, maxBytes: 1 << 28 }),
    { logger, mercure: mercureSettings({ subscriptions: true }) },
  );
  port = Number(new URL(server.url).port);
  for (const mailbox of ["fuzz-a", "fuzz-b"]) {
    for (let i = 1; i <= 10; i++) {
      const response = await fetch(`${server.url}/v1/mailboxes/${mailbox}/messages`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ body: `before ${i}` }),
      });
      const stored = (await response.json()) as { seq: number };
      before.push({ mailbox, seq: stored.seq, body: `before ${i}` });
    }
  }
});

afterAll(async () => {
  await server?.shutdown();
  vi.restoreAllMocks();
});

interface RawRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: readonly [string, string][];
  readonly body: Buffer | undefined;
  /** "exact" Content-Length, or one that claims more than is sent (the client then gives up). */
  readonly length: "exact" | "more" | "none";
}

interface RawAnswer {
  readonly status: number | undefined;
  readonly head: string;
  readonly body: string;
}

/** Sends one request over a raw socket, so lies and aborts are possible; gives up after GIVE_UP_MS. */
function send(request: RawRequest): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString("latin1");
      const split = text.indexOf("\r\n\r\n");
      const head = split === -1 ? text : text.slice(0, split);
      const status = /^HTTP\/1\.1 (\d{3})/.exec(head)?.[1];
      resolve({ status: status ? Number(status) : undefined, head, body: split === -1 ? "" : text.slice(split + 4) });
    };
    const timer = setTimeout(finish, GIVE_UP_MS);
    socket.on("data", (chunk) => chunks.push(chunk));
    socket.on("end", finish);
    socket.on("error", finish);
    socket.on("connect", () => {
      let head = `${request.method} ${request.path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n`;
      for (const [name, value] of request.headers) head += `${name}: ${value}\r\n`;
      const body = request.body ?? Buffer.alloc(0);
      if (request.length === "exact" && request.body !== undefined) head += `Content-Length: ${body.length}\r\n`;
      if (request.length === "more") head += `Content-Length: ${body.length + 1 + (body.length % 7)}\r\n`;
      socket.write(Buffer.concat([Buffer.from(`${head}\r\n`, "latin1"), body]));
    });
  });
}

/** Header-safe text: visible ASCII and spaces, no CR or LF. */
const headerText = fc.string({
  unit: fc.integer({ min: 0x20, max: 0x7e }).map((code) => String.fromCharCode(code)),
  maxLength: 60,
});
const anyText = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: "grapheme", maxLength: 20 }), headerText);
const segment = fc.oneof(
  fc.constantFrom(...KNOWN_MAILBOXES),
  anyText.map((text) => encodeURIComponent(text)),
  fc.constantFrom("%ZZ", "%E0%A4%A", "..%2F..", "%00", "a".repeat(200), "", "%F0%9F%98", "x%2Fy"),
);
const pathTemplates = fc.constantFrom(
  "/v1/mailboxes/$/messages",
  "/v1/mailboxes/$/latest",
  "/v1/mailboxes/$/events",
  "/v1/mailboxes/$/stream",
  "/v1/mailboxes/$/scheduled",
  "/v1/mailboxes/$/presence",
  "/v1/mailboxes/$/read",
  "/v1/messages",
  "/v1/events",
  "/v1/stream",
  "/v1/read",
  "/v1/scheduled/$",
  "/v1/tokens",
  "/v1/hooks/$",
  "/v1/ws",
  "/v1/push/vapid-public-key",
  "/v1/push/subscriptions",
  "/v1/push/subscriptions/$",
  "/v1/admin/stats",
  "/v1/admin/mailboxes",
  "/v1/admin/config",
  "/metrics",
  "/healthz",
  "/readyz",
  "/admin",
  "/client.js",
  "/herald-sw.js",
  "/.well-known/mercure",
  "/.well-known/mercure/subscriptions/$",
  "/.well-known/mercure/subscriptions/exact/$/$",
  "/ntfy",
  "/ntfy/$",
  "/ntfy/$/json",
  "/ntfy/$/sse",
  "/ntfy/$/raw",
  "/ntfy/$/auth",
  "/ntfy/$/ws",
  "/$",
  "/$/$/$",
);
const queryNames = fc.constantFrom(
  "cursor",
  "limit",
  "wait",
  "mailbox",
  "tags",
  "priority",
  "key",
  "mode",
  "presence",
  "unread",
  "reader",
  "token",
  "delay",
  "at",
  "since",
  "poll",
  "auth",
  "match",
  "match_urlpattern",
  "match_x",
  "topic",
  "last_event_id",
  "lastEventID",
  "authorization",
  "title",
  "message",
);
const queryValue = fc.oneof(
  anyText,
  fc.integer({ min: -5, max: 100_000 }).map(String),
  fc.constantFrom("now", "all", "latest", "1", "0.5", "-1", "1e309", "NaN", "*", "https://example.com/:id", "10m"),
);
const path = fc
  .tuple(
    pathTemplates,
    fc.array(segment, { minLength: 3, maxLength: 3 }),
    fc.array(fc.tuple(queryNames, queryValue), { maxLength: 5 }),
  )
  .map(([template, segments, query]) => {
    let index = 0;
    const filled = template.replace(/\$/g, () => segments[index++] ?? "x");
    const search = new URLSearchParams(query).toString();
    return search === "" ? filled : `${filled}?${search}`;
  });
const headers = fc.array(
  fc.oneof(
    fc.tuple(
      fc.constant("Content-Type"),
      fc.oneof(
        fc.constantFrom(
          "application/json",
          "application/merge-patch+json",
          "text/plain",
          "application/x-www-form-urlencoded",
          "application/octet-stream",
          "multipart/form-data; boundary=x",
        ),
        headerText,
      ),
    ),
    fc.tuple(
      fc.constantFrom("Last-Event-ID", "Idempotency-Key", "Title", "Priority", "Tags", "Delay", "X-Forwarded-For"),
      headerText,
    ),
    fc.tuple(
      fc.constant("Authorization"),
      fc.oneof(
        headerText,
        headerText.map((text) => `Bearer ${text}`),
        headerText.map((text) => `Basic ${text}`),
      ),
    ),
    fc.tuple(
      fc.constant("Cookie"),
      headerText.map(
        (text) => `herald_token=${encodeURIComponent(text)}; mercureAuthorization=${encodeURIComponent(text)}`,
      ),
    ),
    fc.tuple(
      fc.constant("Origin"),
      fc.oneof(fc.constantFrom("http://evil.example", "null", "http://127.0.0.1"), headerText),
    ),
  ),
  { maxLength: 5 },
);
const jsonText = fc.oneof(
  fc.jsonValue({ maxDepth: 6 }).map((value) => JSON.stringify(value)),
  fc
    .record(
      {
        body: anyText,
        title: anyText,
        tags: fc.array(anyText, { maxLength: 3 }),
        priority: fc.integer({ min: -1, max: 9 }),
      },
      { requiredKeys: [] },
    )
    .map((value) => JSON.stringify(value)),
  fc.constantFrom(
    '{"messages":[{"mailbox":"fuzz-a"}]}',
    '{"mailboxes":["fuzz-a"],"message":{}}',
    "[".repeat(5000),
    '{"a":',
  ),
);
const body = fc.option(
  fc.oneof(
    jsonText.map((text) => Buffer.from(text)),
    anyText.map((text) => Buffer.from(text)),
    fc.uint8Array({ maxLength: 600 }).map((bytes) => Buffer.from(bytes)),
    fc.constant(Buffer.alloc(70 * 1024, 120)),
    jsonText.map((text) => Buffer.from(text.slice(0, Math.floor(text.length / 2)))),
  ),
  { nil: undefined },
);
const request: fc.Arbitrary<RawRequest> = fc.record({
  method: fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"),
  path,
  headers,
  body,
  length: fc.constantFrom("exact", "exact", "exact", "more", "none"),
});

/** A status line that is not a server failure, and an error body from the catalogue. */
function checkAnswer(answer: RawAnswer, sent: RawRequest): void {
  const where = `${sent.method} ${sent.path}`;
  if (answer.status === undefined) return;
  let code: string | undefined;
  if (/content-type: application\/json/i.test(answer.head) && /content-length/i.test(answer.head)) {
    try {
      code = (JSON.parse(answer.body) as { error?: { code?: string } }).error?.code;
    } catch {
      code = undefined;
    }
    if (answer.status >= 400 && code !== undefined) expect(CODES.has(code), where).toBe(true);
  }
  if (answer.status >= 500) {
    expect(answer.status, `${where} answered ${answer.status} ${answer.body.slice(0, 200)}`).toBe(503);
    expect(CODES_503.has(code ?? ""), where).toBe(true);
  }
}

describe("what fuzzing found, as regular tests", () => {
  it("answers HEAD on a stream with 405 instead of writing the stream's head twice", async () => {
    for (const streamPath of ["/v1/mailboxes/fuzz-a/events", "/v1/stream?mailbox=fuzz-a", "/ntfy/fuzz-a/sse"]) {
      const answer = await send({ method: "HEAD", path: streamPath, headers: [], body: undefined, length: "none" });
      expect(answer.status, streamPath).toBe(405);
      expect(answer.head).toMatch(/allow: GET/i);
    }
    expect(consoleErrors).toEqual([]);
  });

  it("logs a client that gave up mid-body as an aborted request, not as a server error", async () => {
    const from = logLines.length;
    const answer = await send({
      method: "POST",
      path: "/v1/mailboxes/fuzz-c/messages",
      headers: [["Content-Type", "application/json"]],
      body: Buffer.from('{"body":"cut sho'),
      length: "more",
    });
    expect(answer.status).toBeUndefined();
    const deadline = Date.now() + 5000;
    while (!logLines.slice(from).some((line) => line.includes('"aborted":true')) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const lines = logLines.slice(from);
    expect(lines.some((line) => line.includes('"aborted":true') && line.includes('"status":499'))).toBe(true);
    expect(lines.filter((line) => /"level":(50|60)/.test(line))).toEqual([]);
  });
});

describe("fuzzing a listening server", () => {
  it(`answers ${RUNS} random requests with successes or the catalogue's errors`, async () => {
    await fc.assert(
      fc.asyncProperty(request, async (sent) => {
        checkAnswer(await send(sent), sent);
      }),
      { numRuns: RUNS, ...(SEED === undefined ? {} : { seed: SEED }) },
    );
  }, 120_000);

  it(`survives ${WS_RUNS} WebSocket sessions of random frames`, async () => {
    const frame = fc.oneof(
      fc
        .record(
          {
            type: fc.constantFrom("subscribe", "unsubscribe", "publish", "presence", "read", "hello", ""),
            ref: fc.oneof(anyText, fc.integer()),
            mailboxes: fc.array(fc.oneof(fc.constantFrom(...KNOWN_MAILBOXES), anyText), { maxLength: 3 }),
            mailbox: fc.oneof(fc.constantFrom(...KNOWN_MAILBOXES), anyText),
            cursor: anyText,
            message: fc.jsonValue({ maxDepth: 3 }),
          },
          { requiredKeys: [] },
        )
        .map((value) => ({ data: JSON.stringify(value), binary: false, fin: true })),
      jsonText.map((text) => ({ data: text, binary: false, fin: true })),
      fc.uint8Array({ maxLength: 300 }).map((bytes) => ({ data: Buffer.from(bytes), binary: true, fin: true })),
      // Not UTF-8, sent as text: the server must close with 1007, not fail.
      fc.constant({ data: Buffer.from([0xc3, 0x28, 0xff]), binary: false, fin: true }),
      jsonText.map((text) => ({ data: text, binary: false, fin: false })),
      fc.constant({ data: "x".repeat(200 * 1024), binary: false, fin: true }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(frame, { minLength: 1, maxLength: 8 }), async (frames) => {
        const socket = new WebSocket(`ws://127.0.0.1:${port}/v1/ws`);
        socket.on("error", () => {});
        const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
        await new Promise<void>((resolve) => {
          socket.once("open", () => resolve());
          socket.once("close", () => resolve());
        });
        for (const { data, binary, fin } of frames) {
          if (socket.readyState !== WebSocket.OPEN) break;
          socket.send(data, { binary, fin });
        }
        await new Promise((resolve) => setTimeout(resolve, 30));
        socket.terminate();
        await closed;
      }),
      { numRuns: WS_RUNS, ...(SEED === undefined ? {} : { seed: SEED }) },
    );
  }, 120_000);

  it("is still up, logged no error or stack, and kept every message it had accepted", async () => {
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    const errors = logLines.filter((line) => /"level":(50|60)/.test(line) || line.includes('"stack"'));
    expect(errors.slice(0, 3)).toEqual([]);
    expect(consoleErrors.slice(0, 3)).toEqual([]);
    for (const mailbox of ["fuzz-a", "fuzz-b"]) {
      const answer = (await (await fetch(`${server.url}/v1/mailboxes/${mailbox}/messages?limit=10`)).json()) as {
        messages: { seq: number; body?: string }[];
      };
      const kept = before.filter((entry) => entry.mailbox === mailbox);
      expect(answer.messages.slice(0, 10).map(({ seq, body }) => ({ mailbox, seq, body }))).toEqual(kept);
    }
  });
});
