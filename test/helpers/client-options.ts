import WebSocket from "ws";
import type { SubscribeOptions, WebSocketConstructor } from "../../client/src/index.js";

/** A client subscription under test: no saved cursor, `ws` for WebSocket, 1-second long-polls, quick retries. */
export function testClientOptions(url: string): SubscribeOptions {
  return {
    url,
    cursorStore: null,
    WebSocket: WebSocket as unknown as WebSocketConstructor,
    longPollWaitSeconds: 1,
    backoff: { baseMs: 20, maxMs: 100 },
  };
}
