import { createHash } from "node:crypto";
import { HeraldError } from "../errors.js";
import type { StreamPosition } from "../store/mailbox-store.js";

/** Per mailbox of a subscription; a mailbox missing here starts from its earliest message. */
export type CursorState = ReadonlyMap<string, StreamPosition>;

/** The literal a client passes to mean "only what is published after now". */
export const CURSOR_NOW = "now";
/** Longest cursor accepted; 64 mailboxes encode to about 4 KiB. */
export const MAX_CURSOR_LENGTH = 8192;
const MAX_CURSOR_ENTRIES = 256;
const MAX_EPOCH_LENGTH = 64;
const BASE64URL = /^[A-Za-z0-9_-]*$/;
const NAME_KEY_CACHE_LIMIT = 50_000;

const nameKeys = new Map<string, string>();

/** Cursors name mailboxes by a short hash, so a cursor over 64 long names stays small. */
function nameKey(mailbox: string): string {
  let key = nameKeys.get(mailbox);
  if (key === undefined) {
    key = createHash("sha256").update(mailbox).digest("base64url").slice(0, 10);
    if (nameKeys.size >= NAME_KEY_CACHE_LIMIT) nameKeys.clear();
    nameKeys.set(mailbox, key);
  }
  return key;
}

export function encodeCursor(mailboxes: readonly string[], state: CursorState): string {
  const entries: [string, string, number][] = [];
  for (const mailbox of mailboxes) {
    const entry = state.get(mailbox);
    if (entry) entries.push([nameKey(mailbox), entry.epoch, entry.seq]);
  }
  return Buffer.from(JSON.stringify(entries)).toString("base64url");
}

/** The cursor of a single-mailbox subscription just after `seq`. */
export function encodeSingleCursor(mailbox: string, epoch: string, seq: number): string {
  return Buffer.from(`[["${nameKey(mailbox)}","${epoch}",${seq}]]`).toString("base64url");
}

function badCursor(): HeraldError {
  return new HeraldError("bad_cursor", "The cursor is malformed; pass a cursor exactly as Herald issued it");
}

/** Decodes a cursor for the given mailboxes; entries for other mailboxes are ignored. */
export function parseCursor(raw: string, mailboxes: readonly string[]): Map<string, StreamPosition> {
  if (raw.length === 0 || raw.length > MAX_CURSOR_LENGTH || !BASE64URL.test(raw)) throw badCursor();
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(raw, "base64url").toString("utf8"));
  } catch {
    throw badCursor();
  }
  if (!Array.isArray(decoded) || decoded.length > MAX_CURSOR_ENTRIES) throw badCursor();
  const byKey = new Map<string, StreamPosition>();
  for (const item of decoded) {
    if (!Array.isArray(item) || item.length !== 3) throw badCursor();
    const [key, epoch, seq] = item as unknown[];
    if (typeof key !== "string" || key.length === 0 || key.length > 16 || !BASE64URL.test(key)) throw badCursor();
    if (typeof epoch !== "string" || epoch.length > MAX_EPOCH_LENGTH || !BASE64URL.test(epoch)) throw badCursor();
    if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 0) throw badCursor();
    byKey.set(key, { epoch, seq });
  }
  const state = new Map<string, StreamPosition>();
  for (const mailbox of mailboxes) {
    const entry = byKey.get(nameKey(mailbox));
    if (entry) state.set(mailbox, entry);
  }
  return state;
}
