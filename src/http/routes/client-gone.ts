import type { ServerResponse } from "node:http";
import type { Context } from "hono";
import type { ClientGone } from "../../core/waiter.js";

/**
 * Whether this request's client has left, from the Node response's `close`.
 * Cheaper than `c.req.raw.signal`, for which the adapter builds a whole
 * Request and AbortController (4% of a long-poll's server CPU).
 */
export function clientGone(c: Context): ClientGone {
  const outgoing = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing;
  if (outgoing === undefined) return fromSignal(c.req.raw.signal);
  let gone = outgoing.destroyed;
  outgoing.once("close", () => {
    gone = true;
  });
  return {
    get gone() {
      return gone;
    },
    onGone(listener) {
      if (gone) {
        queueMicrotask(listener);
        return () => {};
      }
      outgoing.once("close", listener);
      return () => outgoing.off("close", listener);
    },
  };
}

/** Outside a Node server (app.request in a test) only the Request's signal says so. */
function fromSignal(signal: AbortSignal): ClientGone {
  return {
    get gone() {
      return signal.aborted;
    },
    onGone(listener) {
      signal.addEventListener("abort", listener, { once: true });
      return () => signal.removeEventListener("abort", listener);
    },
  };
}
