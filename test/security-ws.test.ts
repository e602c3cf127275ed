import { connect } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { WS_SUBSCRIBE_RATE } from "../src/http/transports/ws-protocol.js";
import type { RunningHerald } from "../src/server.js";
import { bearer, hsToken, makeKey, SECRET, startAuthServer } from "./helpers/auth.js";
import { StreamClient } from "./helpers/clients.js";
import { OPCODE_CLOSE, RawWebSocket } from "./helpers/raw-ws.js";
import { until } from "./helpers/until.js";

type Frame = Record<string, unknown> & { type: string };

let herald: RunningHerald | undefined;
afterEach(async () => {
  await herald?.shutdown();
  herald = undefined;
});

function running(): RunningHerald {
  if (herald === undefined) throw new Error("no server");
  return herald;
}

interface RawConnection {
  send(head: string): void;
  received(): string;
  /** Resolves once the server (or we) closed the connection. */
  readonly closed: Promise<void>;
  close(): void;
}

/** Writes raw requests on one connection and collects everything the server answers. */
function rawConnection(port: number): RawConnection {
  const socket = connect(port, "127.0.0.1");
  let text = "";
  socket.setEncoding("utf8");
  socket.on("data", (chunk: string) => {
    text += chunk;
  });
  socket.on("error", () => {});
  const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
  return { send: (head) => socket.write(head), received: () => text, closed, close: () => socket.destroy() };
}

describe("WebSocket hardening", () => {
  it("answers a half-upgrade (Upgrade without Connection: Upgrade) with a JSON 400 that holds no slot", async () => {
    herald = await startAuthServer({ limits: { maxConnections: 1 } });
    const { port } = running();
    const client = rawConnection(port);
    const head = `GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n\r\n`;
    for (let i = 1; i <= 3; i++) {
      client.send(head);
      await until(() => client.received().split("HTTP/1.1 ").length > i, "an answer");
    }
    const answers = client.received().split("HTTP/1.1 ").slice(1);
    expect(answers.every((answer) => answer.startsWith("400"))).toBe(true);
    expect(answers[0]).toContain('"code":"bad_parameter"');
    expect(answers[0]).toContain("Connection: Upgrade");
    // The connection is still open, and it holds no slot: the one slot of the server is free for a real stream.
    expect(running().access.connections.streams.total).toBe(0);
    const stream = new StreamClient(`${running().url}/v1/mailboxes/a/events`);
    await stream.opened;
    expect(stream.status).toBe(200);
    stream.close();
    client.close();
  });

  it("answers an upgrade anywhere but GET /v1/ws, or to anything but a WebSocket, with 400 and holds nothing", async () => {
    herald = await startAuthServer();
    const { port } = running();
    const ask = async (method: string, path: string, upgrade: string) => {
      const client = rawConnection(port);
      client.send(
        `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: Upgrade\r\nUpgrade: ${upgrade}\r\n` +
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
      );
      await client.closed;
      return client.received();
    };
    for (const path of ["/v1/mailboxes/x/events", "/v1/mailboxes/x/stream", "/v1/events?mailbox=x"]) {
      expect(await ask("GET", path, "websocket"), path).toMatch(/^HTTP\/1\.1 400/);
    }
    expect(await ask("POST", "/v1/ws", "websocket")).toMatch(/^HTTP\/1\.1 400/);
    // Closed by the server (ask resolves on close), not left open outside every timeout.
    expect(await ask("GET", "/v1/ws", "h2c")).toMatch(/^HTTP\/1\.1 400/);
    expect(running().hub.subscriberCount).toBe(0);
    expect(running().access.connections.streams.total).toBe(0);
  });

  it("answers subscribe frames beyond the per-connection rate with too_many_requests", async () => {
    herald = await startAuthServer();
    const ws = new WebSocket(`${running().url.replace(/^http/, "ws")}/v1/ws`);
    const frames: Frame[] = [];
    ws.on("message", (data) => frames.push(JSON.parse(String(data)) as Frame));
    await new Promise((resolve) => ws.once("open", resolve));
    const sent = WS_SUBSCRIBE_RATE.burst * 3;
    for (let i = 0; i < sent; i++) ws.send(JSON.stringify({ type: "subscribe", mailboxes: [`m${i}`], ref: i }));
    await until(() => frames.length >= sent, "an answer to every subscribe");
    const subscribed = frames.filter((frame) => frame.type === "subscribed");
    const refused = frames.filter((frame) => frame.type === "error");
    expect(subscribed.length).toBeGreaterThanOrEqual(WS_SUBSCRIBE_RATE.burst);
    expect(subscribed.length).toBeLessThan(sent);
    expect(refused.every((frame) => frame.code === "too_many_requests")).toBe(true);
    expect(subscribed.length + refused.length).toBe(sent);
    ws.terminate();
  });

  it("acts on no frame after the token expired and cuts a client that ignores the close frame", async () => {
    const publisher = makeKey("ci", ["*"]);
    herald = await startAuthServer({ auth: { keys: [publisher.entry], tokens: { hs256Secret: SECRET } } });
    const frame = (ref: number) => JSON.stringify({ type: "publish", mailbox: "user:exp", message: "hi", ref });
    // Tokens are accepted 5 s past exp (clock skew), so this one runs out one to two seconds from now.
    const expiring = await hsToken({ mailboxes: ["user:exp"], publish: ["user:exp"], expiresIn: -3 });
    const raw = await RawWebSocket.open(running().port, `/v1/ws?token=${expiring}`);
    expect(raw.status).toBe(101);
    await until(() => raw.frames.some((f) => f.opcode === OPCODE_CLOSE), "the close frame", 10_000);
    expect(raw.texts()).toContain('{"type":"auth-expired"}');
    // A client that ignores the close frame and keeps publishing.
    for (let ref = 0; ref < 5; ref++) raw.sendText(frame(ref));
    await until(() => raw.closed, "the server to cut the socket", 10_000);
    expect(raw.texts().filter((text) => text.includes('"published"'))).toEqual([]);
    await until(() => running().access.connections.streams.total === 0, "the slot to be freed");
    // The same frame from a client whose token is valid is published: the refusal above was the expiry.
    const valid = await hsToken({ mailboxes: ["user:exp"], publish: ["user:exp"] });
    const fresh = await RawWebSocket.open(running().port, `/v1/ws?token=${valid}`);
    fresh.sendText(frame(9));
    await until(() => fresh.texts().some((text) => text.includes('"published"')), "the valid publish");
    fresh.destroy();
    const read = await fetch(`${running().url}/v1/mailboxes/user:exp/messages`, { headers: bearer(valid) });
    expect(((await read.json()) as { messages: unknown[] }).messages).toHaveLength(1);
  });

  it("writes an access log line for every upgrade, with the token redacted", async () => {
    const logLines: string[] = [];
    herald = await startAuthServer({ auth: { tokens: { hs256Secret: SECRET } }, logLines });
    const token = await hsToken({ sub: "wendy", mailboxes: ["user:wendy"] });
    const ws = new WebSocket(`${running().url.replace(/^http/, "ws")}/v1/ws?token=${token}`);
    await new Promise((resolve) => ws.once("open", resolve));
    ws.close();
    const refused = new WebSocket(`${running().url.replace(/^http/, "ws")}/v1/ws?token=${token}x`);
    await new Promise((resolve) => refused.once("error", resolve));
    const parsed = () => logLines.map((line) => JSON.parse(line) as Record<string, unknown>);
    await until(() => parsed().filter((line) => line.url?.toString().startsWith("/v1/ws")).length === 2, "two lines");
    const lines = parsed().filter((line) => line.url?.toString().startsWith("/v1/ws"));
    expect(lines.find((line) => line.status === 101)).toMatchObject({
      method: "GET",
      url: "/v1/ws?token=[REDACTED]",
      caller: "wendy",
    });
    expect(lines.find((line) => line.status === 401)).toMatchObject({ url: "/v1/ws?token=[REDACTED]" });
    expect(logLines.join("\n")).not.toContain(token.split(".")[2]);
  });
});
