import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { ConnectionKind } from "../src/http/transports/connection.js";
import type { RunningHerald } from "../src/server.js";
import { bearer, hsToken, makeKey, SECRET, startAuthServer } from "./helpers/auth.js";
import { StreamClient } from "./helpers/clients.js";
import { until } from "./helpers/until.js";

/** What a contract case sees of one connection, whatever its transport. */
export interface ContractClient {
  /** Every frame as `{type, ...}`: cursor, message, gap, auth-expired (plus transport answers such as subscribed). */
  frames(): Record<string, unknown>[];
  /** Heartbeats seen: SSE comments, ndjson heartbeat lines, WebSocket pings. */
  heartbeats(): number;
  /** True once the server ended the connection. */
  ended(): boolean;
  close(): void;
}

export interface TransportUnderTest {
  readonly kind: ConnectionKind;
  /** Opens a live subscription to `mailbox` from `cursor` (undefined: from the earliest), authenticated by `token`. */
  open(base: string, mailbox: string, cursor: string | undefined, token: string): Promise<ContractClient>;
}

function streamTransport(kind: "sse" | "ndjson"): TransportUnderTest {
  return {
    kind,
    async open(base, mailbox, cursor, token) {
      const path = kind === "sse" ? "events" : "stream";
      const query = cursor === undefined ? "" : `?cursor=${cursor}`;
      const client = new StreamClient(`${base}/v1/mailboxes/${mailbox}/${path}${query}`, bearer(token));
      await client.opened;
      return {
        frames: () =>
          kind === "sse"
            ? client.events.map((event) => ({ ...(JSON.parse(event.data) as object), type: event.event }))
            : client.lines.map((line) => JSON.parse(line) as Record<string, unknown>),
        heartbeats: () =>
          kind === "sse"
            ? client.raw.split(": heartbeat").length - 1
            : client.lines.filter((line) => line.includes('"heartbeat"')).length,
        ended: () => client.ended,
        close: () => client.close(),
      };
    },
  };
}

const WS_TRANSPORT: TransportUnderTest = {
  kind: "ws",
  async open(base, mailbox, cursor, token) {
    const socket = new WebSocket(`${base.replace(/^http/, "ws")}/v1/ws`, { headers: bearer(token) });
    const frames: Record<string, unknown>[] = [];
    let pings = 0;
    let ended = false;
    socket.on("message", (data) => frames.push(JSON.parse(String(data)) as Record<string, unknown>));
    socket.on("ping", () => {
      pings += 1;
    });
    socket.on("close", () => {
      ended = true;
    });
    await new Promise((resolve, reject) => {
      socket.once("open", resolve);
      socket.once("error", reject);
    });
    socket.send(JSON.stringify({ type: "subscribe", mailboxes: [mailbox], ...(cursor ? { cursor } : {}) }));
    await until(() => frames.some((frame) => frame.type === "subscribed"), "subscribed");
    return { frames: () => frames, heartbeats: () => pings, ended: () => ended, close: () => socket.terminate() };
  },
};

export const TRANSPORTS: readonly TransportUnderTest[] = [
  streamTransport("sse"),
  streamTransport("ndjson"),
  WS_TRANSPORT,
];

function messages(client: ContractClient): Record<string, unknown>[] {
  return client.frames().filter((frame) => frame.type === "message");
}

/**
 * What every long-lived connection does the same whatever its wire format:
 * it is registered while open and frees its slot when it closes, delivers in
 * order with cursors that resume exactly, keeps an idle connection beating,
 * and ends on token expiry and on drain, saying why where the format can.
 */
export function connectionContract(transport: TransportUnderTest): void {
  describe(`connection contract: ${transport.kind}`, () => {
    const publisher = makeKey("ci", ["*"]);
    let herald: RunningHerald | undefined;
    const clients: ContractClient[] = [];
    afterEach(async () => {
      for (const client of clients.splice(0)) client.close();
      await herald?.shutdown();
      herald = undefined;
    });

    async function start(heartbeatSeconds = 15): Promise<RunningHerald> {
      herald = await startAuthServer({
        auth: { keys: [publisher.entry], tokens: { hs256Secret: SECRET } },
        config: { heartbeatSeconds },
      });
      return herald;
    }

    async function open(server: RunningHerald, mailbox: string, cursor?: string, token?: string) {
      const client = await transport.open(
        server.url,
        mailbox,
        cursor,
        token ?? (await hsToken({ sub: `reader-${transport.kind}`, mailboxes: [mailbox] })),
      );
      clients.push(client);
      return client;
    }

    async function publish(server: RunningHerald, mailbox: string, body: string): Promise<void> {
      const response = await fetch(`${server.url}/v1/mailboxes/${mailbox}/messages`, {
        method: "POST",
        headers: bearer(publisher.key),
        body,
      });
      expect(response.status).toBe(201);
    }

    it("is registered while open, holds one slot, and frees both when the client goes", async () => {
      const server = await start();
      const client = await open(server, "reg");
      await until(() => server.connections.count(transport.kind) === 1, "registration");
      expect(server.connections.count()).toBe(1);
      expect(server.access.connections.streams.total).toBe(1);
      client.close();
      await until(() => server.connections.count() === 0, "the connection to leave the registry");
      await until(() => server.access.connections.streams.total === 0, "the slot to be freed");
    });

    it("delivers in order with cursors, and a cursor resumes exactly after its message", async () => {
      const server = await start();
      const first = await open(server, "order");
      for (const body of ["one", "two", "three", "four"]) await publish(server, "order", body);
      await until(() => messages(first).length === 4, "four messages");
      const received = messages(first);
      expect(received.map((m) => m.body)).toEqual(["one", "two", "three", "four"]);
      expect(received.map((m) => m.seq)).toEqual([1, 2, 3, 4]);
      const resumed = await open(server, "order", received[1]?.cursor as string);
      await publish(server, "order", "five");
      await until(() => messages(resumed).length === 3, "the rest");
      expect(messages(resumed).map((m) => m.body)).toEqual(["three", "four", "five"]);
    });

    it("beats its heart while idle", async () => {
      const server = await start(0.1);
      const client = await open(server, "idle");
      await until(() => client.heartbeats() >= 2, "two heartbeats");
      expect(client.ended()).toBe(false);
    });

    it("ends with auth-expired when the caller's token runs out, and frees its slot", async () => {
      const server = await start();
      // Accepted 5 s past exp (clock skew): this one runs out one to two seconds after it is made.
      const token = await hsToken({ sub: "short", mailboxes: ["exp"], expiresIn: -3 });
      const client = await open(server, "exp", undefined, token);
      await until(() => client.ended(), "the end", 10_000);
      expect(client.frames().some((frame) => frame.type === "auth-expired")).toBe(true);
      await until(() => server.access.connections.streams.total === 0, "the slot to be freed");
    });

    it("ends when the server drains, without losing what was delivered", async () => {
      const server = await start();
      const client = await open(server, "drain");
      await publish(server, "drain", "before");
      await until(() => messages(client).length === 1, "the message");
      await server.shutdown();
      await until(() => client.ended(), "the end");
      expect(messages(client).map((m) => m.body)).toEqual(["before"]);
      herald = undefined;
    });
  });
}
