import type { Context } from "hono";
import { presenceAnswerFields } from "../../core/presence.js";
import type { AppDeps } from "../deps.js";
import { admitReader } from "../middleware/admission.js";
import { pathMailbox } from "./params.js";

/**
 * GET /v1/mailboxes/{mailbox}/presence: who holds a stream, WebSocket
 * subscription or long-poll on the mailbox now, over every node. Whoever may
 * read the mailbox may ask; `members` is left out above presence.maxMembers.
 */
export async function presenceRoute(c: Context, deps: AppDeps): Promise<Response> {
  const mailbox = pathMailbox(c);
  await admitReader(c, deps.access, [mailbox], undefined);
  const answer = await deps.hub.presence.answer(mailbox);
  return c.body(`{${presenceAnswerFields(answer)}}`, 200, {
    "Content-Type": "application/json",
    "Cache-Control": "no-store",
  });
}
