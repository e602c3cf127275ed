import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import type { Context } from "hono";
import type { DeliveryView } from "../../core/message-filter.js";
import type { ReaderOptions } from "../../core/reader.js";
import type { Subscription } from "../../core/subscription.js";
import { HeraldError } from "../../errors.js";
import type { AppDeps, HeraldEnv } from "../deps.js";
import type { ReadGrant } from "../middleware/admission.js";
import type { WireFormat } from "../transports/frame-formats.js";
import { type StreamKind, StreamSink } from "../transports/stream-sink.js";

/**
 * A stream cannot answer HEAD: Hono answers HEAD with its GET route and then
 * writes that response's head itself, which a stream has already written.
 */
export function refuseHead(c: Context): void {
  if (c.req.method === "HEAD") {
    throw new HeraldError("method_not_allowed", "A stream answers GET only; HEAD has nothing to show", {
      Allow: "GET",
    });
  }
}

/** What a stream route settles once its caller holds a slot: where to start, and what else the stream carries. */
export interface StreamPlan {
  readonly cursor: string | undefined;
  readonly options: ReaderOptions & DeliveryView;
  /** Response headers besides the stream's own. */
  readonly headers?: Record<string, string>;
  /** Called once the head is written; the function it returns runs when the stream closes. */
  readonly opened?: () => (() => void) | undefined;
}

/**
 * Opens an SSE or JSON-lines stream for an admitted reader: `plan` (which may
 * throw, e.g. 400 on a bad cursor) runs while the slot is held, then the
 * subscription is registered, the head written, the connection handed to the
 * registry and the replay started. Any failure releases the slot; a client
 * that left meanwhile gets nothing more.
 */
export async function openStream(
  c: Context<HeraldEnv>,
  deps: AppDeps,
  kind: StreamKind,
  mailboxes: readonly string[],
  grant: ReadGrant,
  format: WireFormat | undefined,
  plan: () => StreamPlan | Promise<StreamPlan>,
): Promise<Response> {
  const { incoming, outgoing } = c.env;
  let subscription: Subscription | undefined;
  try {
    refuseHead(c);
    const { cursor, options, headers, opened } = await plan();
    const sink = new StreamSink(kind, outgoing, grant.caller, format);
    subscription = await deps.hub.subscribe(mailboxes, cursor, sink, options);
    if (incoming.destroyed || outgoing.destroyed) throw new Error("the client left before the stream opened");
    const open = subscription;
    sink.open(open.cursor, deps.config.sseRetryMs, headers);
    const closed = opened?.();
    sink.onClose(() => {
      open.close();
      closed?.();
    });
    deps.connections.add(sink, grant.release);
    open.start();
  } catch (error) {
    subscription?.close();
    grant.release();
    if (incoming.destroyed || outgoing.destroyed) return RESPONSE_ALREADY_SENT;
    throw error;
  }
  return RESPONSE_ALREADY_SENT;
}
