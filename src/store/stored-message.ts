/**
 * A message as every backend keeps it. `json` is the public representation
 * without a cursor, serialized once when the message is stored so that
 * fan-out and replay never serialize it again.
 */
export interface StoredMessage {
  readonly mailbox: string;
  readonly epoch: string;
  readonly seq: number;
  readonly id: string;
  readonly timeMs: number;
  readonly expiresAtMs: number;
  readonly json: string;
}

/** What a publisher's message becomes before the store gives it a seq. */
export interface MessageDraft {
  readonly id: string;
  readonly timeMs: number;
  readonly expiresAtMs: number;
  /** The publisher's fields as a serialized JSON object, e.g. `{"title":"x"}`. */
  readonly fieldsJson: string;
  /**
   * The message's `key` (the one in fieldsJson), so that a store indexes it
   * without parsing the JSON; see draftKey for drafts made without it.
   */
  readonly key?: string;
  readonly idempotencyKey?: string;
  /** Identifies the publisher's input, so a reused key with another body is detected. */
  readonly fingerprint?: string;
}

export function storedMessage(mailbox: string, epoch: string, seq: number, draft: MessageDraft): StoredMessage {
  const head = `{"id":${JSON.stringify(draft.id)},"mailbox":${JSON.stringify(mailbox)},"seq":${seq},"time":"${new Date(draft.timeMs).toISOString()}","expires":"${new Date(draft.expiresAtMs).toISOString()}"`;
  const fields = draft.fieldsJson === "{}" ? "}" : `,${draft.fieldsJson.slice(1)}`;
  return {
    mailbox,
    epoch,
    seq,
    id: draft.id,
    timeMs: draft.timeMs,
    expiresAtMs: draft.expiresAtMs,
    json: head + fields,
  };
}

/**
 * The draft's message key: `draft.key`, or, for a draft built without it (a
 * test, a message rebuilt from storage), the top-level `key` of fieldsJson,
 * parsed only when the text mentions one.
 */
export function draftKey(draft: MessageDraft): string | undefined {
  if (draft.key !== undefined) return draft.key;
  if (!draft.fieldsJson.includes('"key":')) return undefined;
  const key = (JSON.parse(draft.fieldsJson) as { key?: unknown }).key;
  return typeof key === "string" ? key : undefined;
}
