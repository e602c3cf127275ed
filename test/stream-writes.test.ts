import { connect, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { RunningHerald } from "../src/server.js";
import { publishMany } from "./helpers/clients.js";
import { startTestServer } from "./helpers/server.js";

/** Streams are written to the socket as pre-framed bytes shared by subscribers; these read the raw wire. */

const servers: RunningHerald[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.shutdown()));
});

class RawStream {
  readonly socket: Socket;
  raw = "";

  constructor(base: string, path: string, version: "1.0" | "1.1", headers = "") {
    const { port } = new URL(base);
    this.socket = connect(Number(port), "127.0.0.1");
    this.socket.setEncoding("utf8");
    this.socket.on("data", (chunk: string) => {
      this.raw += chunk;
    });
    this.socket.write(`GET ${path} HTTP/${version}\r\nHost: 127.0.0.1\r\n${headers}\r\n`);
  }

  get head(): string {
    return this.raw.slice(0, this.raw.indexOf("\r\n\r\n"));
  }

  get body(): string {
    const at = this.raw.indexOf("\r\n\r\n");
    return at < 0 ? "" : this.raw.slice(at + 4);
  }

  async until(predicate: (stream: RawStream) => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this)) {
      if (Date.now() > deadline) throw new Error(`timed out; got ${JSON.stringify(this.raw)}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Decodes HTTP/1.1 chunked framing strictly: every chunk's size must match its length (the test data is ASCII). */
function dechunk(body: string): string {
  let out = "";
  let at = 0;
  while (at < body.length) {
    const lineEnd = body.indexOf("\r\n", at);
    if (lineEnd < 0) break;
    const size = Number.parseInt(body.slice(at, lineEnd), 16);
    if (!Number.isFinite(size)) throw new Error(`bad chunk size at ${at}: ${JSON.stringify(body.slice(at, at + 20))}`);
    const after = lineEnd + 2 + size;
    if (after + 2 > body.length) break;
    const data = body.slice(lineEnd + 2, after);
    if (body.slice(after, after + 2) !== "\r\n") throw new Error(`chunk of ${size} bytes not followed by CRLF`);
    out += data;
    at = after + 2;
  }
  return out;
}

const sseEvents = (text: string) => text.match(/^id: [^\n]+\nevent: message\ndata: [^\n]+\n\n/gm) ?? [];

describe("stream writes on the wire", () => {
  it("frames SSE as valid chunked encoding, byte-identical for subscribers at the same position", async () => {
    const herald = await startTestServer();
    servers.push(herald);
    const streams = Array.from(
      { length: 20 },
      () => new RawStream(herald.url, "/v1/mailboxes/wire/events?cursor=now", "1.1"),
    );
    await Promise.all(streams.map((stream) => stream.until((s) => s.body.includes("retry:"))));
    await publishMany(herald.url, "wire", 30);
    await Promise.all(streams.map((stream) => stream.until((s) => sseEvents(dechunk(s.body)).length === 30)));
    const texts = streams.map((stream) => dechunk(stream.body));
    const first = texts[0] as string;
    expect(first).toMatch(
      /^retry: \d+\nid: [^\n]+\nevent: cursor\ndata: [^\n]+\n\n(id: [^\n]+\nevent: message\ndata: [^\n]+\n\n){30}$/,
    );
    expect(sseEvents(first).map((event) => JSON.parse(event.split("data: ")[1] as string).seq)).toEqual(
      Array.from({ length: 30 }, (_, i) => i + 1),
    );
    for (const text of texts) expect(text).toBe(first);
    for (const stream of streams) {
      expect(stream.head).toMatch(/transfer-encoding: chunked/i);
      stream.close();
    }
  });

  it("writes unframed frames to an HTTP/1.0 client, which has no chunked encoding", async () => {
    const herald = await startTestServer();
    servers.push(herald);
    const old = new RawStream(herald.url, "/v1/mailboxes/old/events?cursor=now", "1.0");
    const modern = new RawStream(herald.url, "/v1/mailboxes/old/events?cursor=now", "1.1");
    await old.until((s) => s.body.includes("retry:"));
    await modern.until((s) => s.body.includes("retry:"));
    await publishMany(herald.url, "old", 5);
    await old.until((s) => sseEvents(s.body).length === 5);
    await modern.until((s) => sseEvents(dechunk(s.body)).length === 5);
    expect(old.head).not.toMatch(/transfer-encoding/i);
    expect(old.body).toMatch(
      /^retry: \d+\nid: [^\n]+\nevent: cursor\ndata: [^\n]+\n\n(id: [^\n]+\nevent: message\ndata: [^\n]+\n\n){5}$/,
    );
    expect(old.body).toBe(dechunk(modern.body));
    old.close();
    modern.close();
  });

  it("gives a resumed subscriber its own frames while others share theirs", async () => {
    const herald = await startTestServer();
    servers.push(herald);
    const [, second] = await publishMany(herald.url, "mixed", 2);
    const live = new RawStream(herald.url, "/v1/mailboxes/mixed/stream?cursor=now", "1.1");
    const resumed = new RawStream(herald.url, `/v1/mailboxes/mixed/stream?cursor=${second?.cursor}`, "1.1");
    const fromStart = new RawStream(herald.url, "/v1/mailboxes/mixed/stream", "1.1");
    const lines = (stream: RawStream) =>
      dechunk(stream.body)
        .split("\n")
        .filter((line) => line.includes('"type":"message"'))
        .map((line) => JSON.parse(line).seq as number);
    await Promise.all(
      [live, resumed, fromStart].map((stream) => stream.until((s) => s.body.includes('"type":"cursor"'))),
    );
    await fromStart.until((s) => lines(s).length === 2);
    await publishMany(herald.url, "mixed", 10, 3);
    await live.until((s) => lines(s).length === 10);
    await resumed.until((s) => lines(s).length === 10);
    await fromStart.until((s) => lines(s).length === 12);
    expect(lines(live)).toEqual(Array.from({ length: 10 }, (_, i) => i + 3));
    expect(lines(resumed)).toEqual(Array.from({ length: 10 }, (_, i) => i + 3));
    expect(lines(fromStart)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    for (const stream of [live, resumed, fromStart]) stream.close();
  });
});
