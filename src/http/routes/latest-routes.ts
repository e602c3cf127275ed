import type { Context } from "hono";
import { DEFAULT_LATEST_KEYS, type LatestAnswer, MAX_LATEST_KEYS } from "../../core/latest.js";
import type { AppDeps } from "../deps.js";
import { admitReader } from "../middleware/admission.js";
import { pathMailbox, queryLimit } from "./params.js";
import { messagesJson } from "./read-routes.js";

function answerJson(answer: LatestAnswer): string {
  return `{${messagesJson(answer.messages)},"cursor":"${answer.cursor}"}`;
}

/** GET /v1/mailboxes/{mailbox}/latest?limit= — the newest message of each key, and the cursor to subscribe from. */
export async function latestRoute(c: Context, deps: AppDeps): Promise<Response> {
  const mailbox = pathMailbox(c);
  const limit = queryLimit(c, DEFAULT_LATEST_KEYS, MAX_LATEST_KEYS);
  await admitReader(c, deps.access, [mailbox], undefined);
  const answer = await deps.hub.latest(mailbox, limit);
  return c.body(answerJson(answer), 200, { "Content-Type": "application/json", "Cache-Control": "no-store" });
}
