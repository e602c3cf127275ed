import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import {
  type HeraldClientError,
  type HeraldMessage,
  publish,
  subscribe,
  type TransportName,
  type WebSocketConstructor,
} from "../client/src/index.js";
import type { RunningHerald } from "../src/server.js";
import { hsToken, makeKey, SECRET, startAuthServer } from "./helpers/auth.js";
import { until } from "./helpers/until.js";

/** How long a connection, a message or a token renewal may take to arrive. */
const WAIT_MS = 15_000;

let herald: RunningHerald;
const publisher = makeKey("ci", ["*"]);

beforeAll(async () => {
  herald = await startAuthServer({
    auth: { keys: [publisher.entry], tokens: { hs256Secret: SECRET } },
    config: { heartbeatSeconds: 0.2 },
  });
});
afterAll(() => herald.shutdown());

describe.each<TransportName>(["sse", "websocket", "long-poll"])("client token callback over %s", (transport) => {
  it("retries a refused connection, then renews an expiring token and resumes without loss", async () => {
    const mailbox = `user:${transport}`;
    const messages: HeraldMessage[] = [];
    const errors: HeraldClientError[] = [];
    let calls = 0;
    const subscription = subscribe(
      [mailbox],
      { onMessage: (message) => messages.push(message), onError: (error) => errors.push(error) },
      {
        url: herald.url,
        transport,
        cursorStore: null,
        WebSocket: WebSocket as unknown as WebSocketConstructor,
        longPollWaitSeconds: 1,
        backoff: { baseMs: 20, maxMs: 100 },
        // No token at first (refused), then tokens that expire within seconds, as a page's session would renew them.
        token: async () => (++calls === 1 ? undefined : hsToken({ mailboxes: [mailbox], expiresIn: 1 })),
      },
    );
    try {
      await until(
        () => subscription.status.state === "open",
        () => JSON.stringify(errors),
        WAIT_MS,
      );
      expect(errors[0]?.status === 401 || errors[0]?.code === "network").toBe(true);
      const publishOne = (body: string) => publish(mailbox, { body }, { url: herald.url, token: () => publisher.key });
      await publishOne("first");
      await until(
        () => messages.length === 1,
        () => JSON.stringify(messages),
        WAIT_MS,
      );
      const callsBefore = calls;
      // Outlive the token: the server ends the connection and the callback is asked again.
      await until(
        () => calls > callsBefore,
        () => `token calls ${calls}`,
        WAIT_MS,
      );
      await publishOne("second");
      await until(
        () => messages.length === 2,
        () => JSON.stringify(messages.map((m) => m.body)),
        WAIT_MS,
      );
      expect(messages.map((m) => m.body)).toEqual(["first", "second"]);
    } finally {
      subscription.close();
    }
  });
});
