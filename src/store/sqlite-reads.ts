import { MAX_UNREAD_COUNTED, type MarkReadResult, type ReadMark, type ReadState } from "./mailbox-store.js";
import { decideMark, effectivePosition } from "./read-marks.js";
import type { MailboxRow, Statements } from "./sqlite-statements.js";

/** Read positions on SQLite: one row per mailbox and reader, read and written on the store's one connection. */

function stateAt(sql: Statements, log: MailboxRow | undefined, seq: number, epoch: string, now: number): ReadState {
  if (!log) return { position: { epoch, seq }, unread: 0, lastSeq: 0 };
  const unread = (sql.countAfter.get(log.id, seq, now, MAX_UNREAD_COUNTED) as { n: number }).n;
  return { position: { epoch, seq }, unread, lastSeq: log.last_seq };
}

function logInfo(log: MailboxRow | undefined) {
  return log && { epoch: log.epoch, lastSeq: log.last_seq, trimmedThrough: log.trimmed_through };
}

export function markReadOn(
  sql: Statements,
  mailbox: string,
  reader: string,
  mark: ReadMark,
  now: number,
): MarkReadResult {
  const log = sql.mailbox.get(mailbox);
  const decision = decideMark(logInfo(log), sql.readPosition.get(mailbox, reader), mark);
  if (decision.kind === "past-head") return { status: "past-head", lastSeq: log?.last_seq ?? 0 };
  const { epoch, seq } = decision.position;
  if (decision.kind === "moved") sql.setReadPosition.run(mailbox, reader, epoch, seq, now);
  return { status: decision.kind, state: stateAt(sql, log, seq, epoch, now) };
}

export function readStateOn(sql: Statements, mailbox: string, reader: string, now: number): ReadState {
  const log = sql.mailbox.get(mailbox);
  const { epoch, seq } = effectivePosition(logInfo(log), sql.readPosition.get(mailbox, reader));
  return stateAt(sql, log, seq, epoch, now);
}
