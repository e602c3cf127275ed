import { nanoid } from "nanoid";
import { getOrCreate } from "../util/get-or-create.js";
import type { AppendItem, AppendResult, StoredMessage } from "./mailbox-store.js";
import type { MailboxRow, MessageRow, Statements } from "./sqlite-statements.js";
import { draftKey, storedMessage } from "./stored-message.js";

/** Bytes a row costs beyond its JSON: ids, integers, index entries. */
const MESSAGE_OVERHEAD_BYTES = 96;

/** What one committed append call changed; applied to in-memory state only after the commit. */
export interface CallOutcome {
  readonly results: AppendResult[];
  readonly appended: Map<string, StoredMessage[]>;
  /** Mailbox id -> its last seq after the call, for the ones the call appended to. */
  readonly lastSeqs: Map<number, number>;
  newMailboxes: number;
  messages: number;
  bytes: number;
}

/** Thrown inside a call's savepoint so that a conflict rolls back everything of that call; never leaves the store. */
export class ConflictRollback extends Error {
  constructor(readonly original: StoredMessage) {
    super("idempotency conflict");
  }
}

export function toMessage(mailbox: string, epoch: string, row: MessageRow): StoredMessage {
  return {
    mailbox,
    epoch,
    seq: row.seq,
    id: row.id,
    timeMs: row.time_ms,
    expiresAtMs: row.expires_at_ms,
    json: row.json,
  };
}

function emptyOutcome(): CallOutcome {
  return { results: [], appended: new Map(), lastSeqs: new Map(), newMailboxes: 0, messages: 0, bytes: 0 };
}

/** What a call that hit a conflict answers: the original, and no change. */
export function conflictOutcome(original: StoredMessage): CallOutcome {
  const outcome = emptyOutcome();
  outcome.results.push({ status: "conflict", message: original });
  return outcome;
}

/**
 * Writes one append call; run it inside its own savepoint, so that on a
 * conflict (ConflictRollback) none of it stays.
 */
export function appendCall(sql: Statements, items: readonly AppendItem[], now: number): CallOutcome {
  const outcome = emptyOutcome();
  const logs = new Map<string, MailboxRow>();
  for (const { mailbox, draft } of items) {
    let log = logs.get(mailbox) ?? sql.mailbox.get(mailbox);
    if (!log) {
      const epoch = nanoid(10);
      const { id } = sql.createMailbox.get(mailbox, epoch) as { id: number };
      log = { id, epoch, last_seq: 0, trimmed_through: 0 };
      outcome.newMailboxes += 1;
    }
    logs.set(mailbox, log);
    const key = draft.idempotencyKey;
    if (key !== undefined) {
      const row = sql.byKey.get(log.id, key, now);
      if (row) {
        const original = toMessage(mailbox, log.epoch, row);
        if ((row.fingerprint ?? undefined) !== draft.fingerprint) throw new ConflictRollback(original);
        outcome.results.push({ status: "duplicate", message: original });
        continue;
      }
    }
    log.last_seq += 1;
    const message = storedMessage(mailbox, log.epoch, log.last_seq, draft);
    const messageKey = draftKey(draft);
    const size = message.json.length + (key?.length ?? 0) + MESSAGE_OVERHEAD_BYTES;
    sql.insert.run(
      log.id,
      message.seq,
      message.id,
      message.timeMs,
      message.expiresAtMs,
      message.json,
      size,
      key ?? null,
      draft.fingerprint ?? null,
      messageKey ?? null,
    );
    if (messageKey !== undefined) sql.setLatest.run(log.id, messageKey, message.seq);
    outcome.messages += 1;
    outcome.bytes += size;
    outcome.results.push({ status: "stored", message });
    getOrCreate(outcome.appended, mailbox, () => []).push(message);
    outcome.lastSeqs.set(log.id, log.last_seq);
  }
  for (const [id, lastSeq] of outcome.lastSeqs) sql.setLastSeq.run(lastSeq, id);
  return outcome;
}
