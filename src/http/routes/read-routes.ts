import type { Context } from "hono";
import { withCursor } from "../../core/delivery.js";
import type { ReadAnswer } from "../../core/reads.js";
import type { StoredMessage } from "../../store/mailbox-store.js";
import type { AppDeps } from "../deps.js";
import { admitReader } from "../middleware/admission.js";
import { queryReader } from "../middleware/reader-identity.js";
import { clientGone } from "./client-gone.js";
import { pathMailbox, queryCursor, queryLimit, queryMailboxes, queryView, queryWaitMs } from "./params.js";

/** `"messages":[…]` of a JSON answer: each message with the cursor after it. */
export function messagesJson(messages: readonly { message: StoredMessage; cursor: string }[]): string {
  return `"messages":[${messages.map(({ message, cursor }) => withCursor(message.json, cursor)).join(",")}]`;
}

function answerJson(answer: ReadAnswer): string {
  const gap = answer.gaps.length > 0;
  const gaps = gap ? `,"gaps":${JSON.stringify(answer.gaps)}` : "";
  const conflated = answer.conflated.length > 0 ? `,"conflated":${JSON.stringify(answer.conflated)}` : "";
  return `{${messagesJson(answer.messages)},"cursor":"${answer.cursor}","gap":${gap}${gaps}${conflated}}`;
}

async function read(c: Context, deps: AppDeps, mailboxes: string[]): Promise<Response> {
  const cursor = queryCursor(c);
  const limit = queryLimit(c);
  const requestedWaitMs = queryWaitMs(c);
  const view = queryView(c);
  const grant = await admitReader(c, deps.access, mailboxes, requestedWaitMs > 0 ? "long-poll" : undefined);
  let answer: ReadAnswer;
  try {
    // A long-poll answers by the time its token expires, so the client renews instead of holding a dead grant.
    const expiresAt = grant.caller.expiresAt;
    const waitMs =
      expiresAt === undefined ? requestedWaitMs : Math.max(0, Math.min(requestedWaitMs, expiresAt - Date.now()));
    const reader = queryReader(c, grant.caller, deps.access.authOn);
    answer = await deps.hub.read({ mailboxes, cursor, limit, waitMs, view, client: clientGone(c) }, reader);
  } finally {
    grant.release();
  }
  return c.body(answerJson(answer), 200, { "Content-Type": "application/json", "Cache-Control": "no-store" });
}

/** GET /v1/mailboxes/{mailbox}/messages */
export function readOne(c: Context, deps: AppDeps): Promise<Response> {
  return read(c, deps, [pathMailbox(c)]);
}

/** GET /v1/messages?mailbox=a&mailbox=b */
export function readMany(c: Context, deps: AppDeps): Promise<Response> {
  return read(c, deps, queryMailboxes(c));
}
