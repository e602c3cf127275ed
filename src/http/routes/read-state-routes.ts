import type { Context } from "hono";
import { parseCursor } from "../../core/cursor.js";
import { readStateFields } from "../../core/read-states.js";
import { HeraldError } from "../../errors.js";
import type { ReadMark } from "../../store/mailbox-store.js";
import type { AppDeps } from "../deps.js";
import { admitReader } from "../middleware/admission.js";
import { queryReader, requireReader } from "../middleware/reader-identity.js";
import { readBody } from "./body.js";
import { pathMailbox, queryMailboxes } from "./params.js";

/** A mark is a cursor or a seq; anything bigger is a mistake. */
const MAX_READ_MARK_BYTES = 16 * 1024;

function bad(message: string): HeraldError {
  return new HeraldError("bad_parameter", message);
}

function json(c: Context, body: string): Response {
  return c.body(body, 200, { "Content-Type": "application/json", "Cache-Control": "no-store" });
}

async function markOf(c: Context, mailbox: string): Promise<ReadMark> {
  const body = await readBody(c, MAX_READ_MARK_BYTES);
  const value = body.kind === "json" ? body.value : undefined;
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new HeraldError("bad_json", 'Send JSON: {"cursor": "<a message\'s cursor>"} or {"seq": 42}');
  }
  const { cursor, seq, ...rest } = value as Record<string, unknown>;
  const unknown = Object.keys(rest)[0];
  if (unknown !== undefined) throw bad(`Unknown field "${unknown}"; send "cursor" or "seq"`);
  if ((cursor === undefined) === (seq === undefined)) throw bad('Send exactly one of "cursor" and "seq"');
  if (seq !== undefined) {
    if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 0) {
      throw bad('"seq" must be a whole number from 0');
    }
    return { seq };
  }
  if (typeof cursor !== "string") throw bad('"cursor" must be a string as Herald issued it');
  const position = parseCursor(cursor, [mailbox]).get(mailbox);
  if (position === undefined) throw bad(`The cursor holds no position in "${mailbox}"`);
  return position;
}

/** PUT /v1/mailboxes/{mailbox}/read: moves the caller's read position forward; answers the state after it. */
export async function markReadRoute(c: Context, deps: AppDeps): Promise<Response> {
  const mailbox = pathMailbox(c);
  const grant = await admitReader(c, deps.access, [mailbox], undefined, "write");
  const reader = requireReader(queryReader(c, grant.caller, deps.access.authOn));
  const mark = await markOf(c, mailbox);
  const state = await deps.hub.readStates.mark(mailbox, reader.sub, mark);
  return json(c, `{${readStateFields(mailbox, state)}}`);
}

/** GET /v1/mailboxes/{mailbox}/read: the caller's read position and unread count. */
export async function readStateRoute(c: Context, deps: AppDeps): Promise<Response> {
  const mailbox = pathMailbox(c);
  const grant = await admitReader(c, deps.access, [mailbox], undefined);
  const reader = requireReader(queryReader(c, grant.caller, deps.access.authOn));
  const state = await deps.hub.readStates.state(mailbox, reader.sub);
  return json(c, `{${readStateFields(mailbox, state)}}`);
}

/** GET /v1/read?mailbox=a&mailbox=b: one entry per mailbox, in the order asked. */
export async function readStatesRoute(c: Context, deps: AppDeps): Promise<Response> {
  const mailboxes = queryMailboxes(c);
  const grant = await admitReader(c, deps.access, mailboxes, undefined);
  const reader = requireReader(queryReader(c, grant.caller, deps.access.authOn));
  const states = await Promise.all(mailboxes.map((mailbox) => deps.hub.readStates.state(mailbox, reader.sub)));
  const entries = states.map((state, i) => `{${readStateFields(mailboxes[i] as string, state)}}`);
  return json(c, `{"mailboxes":[${entries.join(",")}]}`);
}
