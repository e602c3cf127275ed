import type { Context } from "hono";
import type { AppDeps, Handler, HeraldEnv } from "../deps.js";
import { admitReader } from "../middleware/admission.js";
import { queryReader, requireReader } from "../middleware/reader-identity.js";
import type { StreamKind } from "../transports/stream-sink.js";
import { openStream } from "./open-stream.js";
import { pathMailbox, queryFlag, queryMailboxes, queryView, streamCursor } from "./params.js";

/**
 * GET …/events (SSE) and …/stream (JSON lines): subscribes (which checks the
 * cursor and may answer 400), then writes the head, registers the connection
 * and starts the replay. `presence=1` adds presence events, `unread=1` unread
 * counts (it needs a reader); see core/reader-session.ts. `tags`, `priority`,
 * `key` and `mode=latest` choose what of the log is delivered (core/message-filter.ts).
 */
function streamRoute(kind: StreamKind, mailboxesOf: (c: Context<HeraldEnv>) => string[]): Handler {
  return async (c, deps: AppDeps) => {
    const mailboxes = mailboxesOf(c);
    const presence = queryFlag(c, "presence");
    const unread = queryFlag(c, "unread");
    const view = queryView(c);
    const grant = await admitReader(c, deps.access, mailboxes, "stream");
    return openStream(c, deps, kind, mailboxes, grant, undefined, () => {
      const reader = queryReader(c, grant.caller, deps.access.authOn);
      if (unread) requireReader(reader);
      return { cursor: streamCursor(c), options: { reader, presence, unread, ...view } };
    });
  };
}

export const sseOne = streamRoute("sse", (c) => [pathMailbox(c)]);
export const jsonLinesOne = streamRoute("ndjson", (c) => [pathMailbox(c)]);
export const sseMany = streamRoute("sse", queryMailboxes);
export const jsonLinesMany = streamRoute("ndjson", queryMailboxes);
