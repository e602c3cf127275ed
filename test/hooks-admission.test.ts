import { connect, type Socket } from "node:net";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../src/log.js";
import type { RunningHerald } from "../src/server.js";
import { deliver, githubHeaders, hmacHex, readMailbox, startHookServer } from "./helpers/hooks.js";

// Issue 10, item 5: no body is read before the signature headers are checked, and
// deliveries being received are capped per sender and overall.

const GH_SECRET = "admission-secret";
const SW_SECRET = `whsec_${Buffer.from("admission-standard-key-012345678").toString("base64")}`;
/** Declared by the requests below but never sent: under every hook's limit, so only the headers can end them early. */
const DECLARED_BYTES = 500_000;
/** Bounded wait for an answer that must not depend on the body. */
const ANSWER_WAIT_MS = 5000;
const POLL_MS = 20;

const HOOKS = [
  { id: "gh", mailbox: "gh", verify: { scheme: "github", secret: GH_SECRET } },
  { id: "pay", mailbox: "pay", verify: { scheme: "stripe", secret: "whsec_admission" } },
  { id: "svc", mailbox: "svc", verify: { scheme: "standard-webhooks", secret: SW_SECRET } },
  { id: "plain", mailbox: "plain", verify: { scheme: "hmac-sha256", secret: "plain", header: "X-Sig" } },
];

interface RawAnswer {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** A request written by hand on a raw socket, so the test decides how much of the body is ever sent. */
class RawRequest {
  readonly socket: Socket;
  #received = Buffer.alloc(0);
  #closed = false;

  constructor(base: string, path: string, headers: Record<string, string | number>) {
    const url = new URL(base);
    this.socket = connect(Number(url.port), url.hostname);
    this.socket.on("data", (chunk: Buffer) => {
      this.#received = Buffer.concat([this.#received, chunk]);
    });
    this.socket.on("error", () => {});
    this.socket.on("close", () => {
      this.#closed = true;
    });
    const lines = [`POST ${path} HTTP/1.1`, `Host: ${url.host}`];
    for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
    this.socket.write(`${lines.join("\r\n")}\r\n\r\n`);
  }

  send(bytes: string | Buffer): void {
    this.socket.write(bytes);
  }

  /** The parsed answer once it has arrived whole; fails after a bounded wait. */
  async answer(): Promise<RawAnswer> {
    const deadline = Date.now() + ANSWER_WAIT_MS;
    for (;;) {
      const parsed = this.#parse();
      if (parsed) return parsed;
      if (this.#closed || Date.now() > deadline) {
        throw new Error(
          `no whole answer (closed: ${this.#closed}); received: ${JSON.stringify(String(this.#received))}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  close(): void {
    this.socket.destroy();
  }

  #parse(): RawAnswer | undefined {
    const text = this.#received.toString("latin1");
    const end = text.indexOf("\r\n\r\n");
    if (end < 0) return undefined;
    const [statusLine = "", ...headerLines] = text.slice(0, end).split("\r\n");
    const headers: Record<string, string> = {};
    for (const line of headerLines) {
      const colon = line.indexOf(":");
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const rest = this.#received.subarray(Buffer.byteLength(text.slice(0, end + 4), "latin1"));
    let body: string;
    if (headers["content-length"] !== undefined) {
      const length = Number(headers["content-length"]);
      if (rest.length < length) return undefined;
      body = rest.subarray(0, length).toString("utf8");
    } else {
      const chunked = rest.toString("latin1");
      if (!chunked.includes("\r\n0\r\n\r\n") && !chunked.startsWith("0\r\n\r\n")) return undefined;
      body = chunked.replace(/(?:^|\r\n)[0-9a-f]+\r\n/gi, "").replace(/\r\n$/, "");
    }
    return { status: Number(statusLine.split(" ")[1]), headers, body };
  }
}

function collectingLogger(lines: Record<string, unknown>[]) {
  return createLogger(
    "info",
    new Writable({
      write(chunk, _encoding, done) {
        for (const line of String(chunk).split("\n").filter(Boolean)) lines.push(JSON.parse(line));
        done();
      },
    }),
  );
}

describe("signature headers are checked before the body is read", () => {
  const lines: Record<string, unknown>[] = [];
  let herald: RunningHerald;
  beforeAll(async () => {
    herald = await startHookServer({ hooks: HOOKS }, {}, {}, { logger: collectingLogger(lines) });
  });
  afterAll(async () => {
    await herald.shutdown();
  });

  const CASES: readonly { hook: string; reason: "missing" | "malformed"; headers: Record<string, string> }[] = [
    { hook: "gh", reason: "missing", headers: { "X-GitHub-Delivery": "d-1" } },
    { hook: "gh", reason: "malformed", headers: { "X-Hub-Signature-256": `sha1=${"0".repeat(40)}` } },
    { hook: "pay", reason: "missing", headers: {} },
    { hook: "pay", reason: "malformed", headers: { "Stripe-Signature": `v1=${"0".repeat(64)}` } },
    { hook: "svc", reason: "missing", headers: { "webhook-id": "msg_1", "webhook-signature": "v1,AAAA" } },
    {
      hook: "svc",
      reason: "malformed",
      headers: { "webhook-id": "msg_1", "webhook-timestamp": "yesterday", "webhook-signature": "v1,AAAA" },
    },
    { hook: "plain", reason: "missing", headers: { "X-Signature": "0".repeat(64) } },
    { hook: "plain", reason: "malformed", headers: { "X-Sig": "not-hex" } },
  ];

  it.each(CASES)(
    "$hook, $reason signature: a bare 401 without waiting for the body",
    async ({ hook, reason, headers }) => {
      const request = new RawRequest(herald.url, `/v1/hooks/${hook}`, {
        "Content-Type": "application/json",
        "Content-Length": DECLARED_BYTES,
        ...headers,
      });
      try {
        const answer = await request.answer();
        expect(answer.status).toBe(401);
        expect(JSON.parse(answer.body)).toEqual({
          error: { code: "unauthorized", message: "The webhook signature is missing or invalid" },
        });
      } finally {
        request.close();
      }
      const refusals = lines.filter((line) => line.msg === "webhook refused").map((line) => [line.hook, line.reason]);
      expect(refusals.at(-1)).toEqual([hook, reason]);
      expect(await readMailbox(herald.url, hook)).toEqual([]);
    },
  );

  it("still reads the body of a well-formed signature, and refuses a wrong one only then", async () => {
    const body = JSON.stringify({ action: "opened" });
    const request = new RawRequest(herald.url, "/v1/hooks/gh", {
      "Content-Type": "application/json",
      "Content-Length": Buffer.byteLength(body),
      ...githubHeaders("not-the-secret", body, "d-wrong"),
    });
    try {
      request.send(body);
      expect((await request.answer()).status).toBe(401);
    } finally {
      request.close();
    }
    expect(lines.filter((line) => line.msg === "webhook refused").at(-1)).toMatchObject({ reason: "mismatch" });
  });
});

describe("deliveries in flight are capped per sender and overall", () => {
  const PER_SENDER = 2;
  const OVERALL = 3;
  let herald: RunningHerald;
  const held: RawRequest[] = [];
  beforeAll(async () => {
    herald = await startHookServer({
      hooks: HOOKS,
      // The test plays several senders from loopback through X-Forwarded-For.
      limits: { hooksPerVisitor: PER_SENDER, maxHooksInFlight: OVERALL, trustedProxies: ["127.0.0.1"] },
    });
  });
  afterAll(async () => {
    for (const request of held.splice(0)) request.close();
    await herald.shutdown();
  });

  const payload = (n: number) => JSON.stringify({ action: "opened", n, pad: "x".repeat(200) });

  /** A validly signed delivery whose body is half sent: it holds a slot until the rest arrives. */
  function hold(sender: string, n: number): { request: RawRequest; rest: Buffer } {
    const body = Buffer.from(payload(n));
    const request = new RawRequest(herald.url, "/v1/hooks/gh", {
      "Content-Type": "application/json",
      "Content-Length": body.length,
      "X-Forwarded-For": sender,
      ...githubHeaders(GH_SECRET, body, `held-${n}`),
    });
    request.send(body.subarray(0, body.length / 2));
    held.push(request);
    return { request, rest: body.subarray(body.length / 2) };
  }

  interface ProbeAnswer {
    readonly status: number;
    readonly retryAfter: string | null;
    readonly json: unknown;
  }

  /** A small delivery with a well-formed but wrong signature: 401 once let in, 429 when there is no room. */
  async function probe(sender: string): Promise<ProbeAnswer> {
    const body = "{}";
    const response = await fetch(`${herald.url}/v1/hooks/plain`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-forwarded-for": sender, "X-Sig": hmacHex("wrong", body) },
      body,
    });
    return { status: response.status, retryAfter: response.headers.get("retry-after"), json: await response.json() };
  }

  /** Probes until `done` holds for the status, within a bounded wait. */
  async function probeUntil(sender: string, done: (status: number) => boolean): Promise<ProbeAnswer> {
    const deadline = Date.now() + ANSWER_WAIT_MS;
    for (;;) {
      const answer = await probe(sender);
      if (done(answer.status) || Date.now() > deadline) return answer;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  const refused = (status: number) => status !== 401;
  const letIn = (status: number) => status === 401;

  it("answers 429 with Retry-After beyond the cap, and lets deliveries in again once those in flight finish", async () => {
    const a = [hold("10.0.0.1", 1), hold("10.0.0.1", 2)];
    // Polled: the server takes the held requests in at its own pace.
    const fullSender = await probeUntil("10.0.0.1", refused);
    expect(fullSender.status).toBe(429);
    expect(fullSender.retryAfter).toMatch(/^\d+$/);
    expect(fullSender.json).toMatchObject({ error: { code: "too_many_requests" } });
    // Another sender still gets in, until the server as a whole is full.
    const b = hold("10.0.0.2", 3);
    const fullServer = await probeUntil("10.0.0.3", refused);
    expect(fullServer.status).toBe(429);
    expect(fullServer.retryAfter).toMatch(/^\d+$/);

    for (const { request, rest } of [...a, b]) request.send(rest);
    const answers = await Promise.all([...a, b].map(({ request }) => request.answer()));
    expect(answers.map((answer) => answer.status)).toEqual([202, 202, 202]);
    expect((await probe("10.0.0.1")).status).toBe(401);
    const body = payload(4);
    const after = await deliver(herald.url, "gh", body, {
      ...githubHeaders(GH_SECRET, body, "after"),
      "x-forwarded-for": "10.0.0.1",
    });
    expect(after.status).toBe(202);
    expect(await readMailbox(herald.url, "gh")).toHaveLength(4);
  });

  it("gives a slot back when its sender hangs up mid-body", async () => {
    const gone = [hold("10.0.0.5", 5), hold("10.0.0.5", 6)];
    expect((await probeUntil("10.0.0.5", refused)).status).toBe(429);
    for (const { request } of gone) request.close();
    expect((await probeUntil("10.0.0.5", letIn)).status).toBe(401);
  });
});
