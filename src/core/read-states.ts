import { HeraldError } from "../errors.js";
import type { MailboxStore, ReadMark, ReadState, StreamPosition } from "../store/mailbox-store.js";
import { getOrCreate } from "../util/get-or-create.js";
import { encodeSingleCursor } from "./cursor.js";

/** Hears a reader's read position move in a mailbox it has a connection on. */
export interface ReadWatcher {
  read(mailbox: string, state: ReadState): void;
}

/** The public form of a read state: `{"mailbox","seq","cursor","unread"}` (with a leading `"type":"read"` in streams). */
export function readStateFields(mailbox: string, state: ReadState, unread = state.unread): string {
  const { epoch, seq } = state.position;
  const cursor = encodeSingleCursor(mailbox, epoch, seq);
  return `"mailbox":${JSON.stringify(mailbox)},"seq":${seq},"cursor":"${cursor}","unread":${unread}`;
}

interface ReaderWatchers {
  readonly watchers: Set<ReadWatcher>;
  /** The latest position told to them; an older one that arrives late is not told. */
  last: StreamPosition | undefined;
}

/**
 * Read state: where each reader has read to in each mailbox, kept by the
 * store, and the connections of each reader that are told when it moves (on
 * any node: the store hears every node's moves).
 */
export class ReadStates {
  readonly #store: MailboxStore;
  readonly #watchers = new Map<string, Map<string, ReaderWatchers>>();
  readonly #unwatch: () => void;

  constructor(store: MailboxStore) {
    this.#store = store;
    this.#unwatch = store.watchReads((mailbox, reader, state) => this.#onRead(mailbox, reader, state));
  }

  /** Moves the reader's position forward; a mark past the head is a 400, an older one changes nothing. */
  async mark(mailbox: string, reader: string, mark: ReadMark): Promise<ReadState> {
    const result = await this.#store.markRead(mailbox, reader, mark);
    if (result.status === "past-head") {
      throw new HeraldError(
        "bad_parameter",
        `seq ${mark.seq} is past the last message of "${mailbox}" (seq ${result.lastSeq}); mark what you have received`,
      );
    }
    return result.state;
  }

  state(mailbox: string, reader: string): Promise<ReadState> {
    return this.#store.readState(mailbox, reader);
  }

  watch(mailbox: string, sub: string, watcher: ReadWatcher): () => void {
    const subs = getOrCreate(this.#watchers, mailbox, () => new Map<string, ReaderWatchers>());
    getOrCreate(subs, sub, (): ReaderWatchers => ({ watchers: new Set(), last: undefined })).watchers.add(watcher);
    return () => {
      const current = this.#watchers.get(mailbox);
      const entry = current?.get(sub);
      if (!current || !entry) return;
      entry.watchers.delete(watcher);
      if (entry.watchers.size === 0) current.delete(sub);
      if (current.size === 0) this.#watchers.delete(mailbox);
    };
  }

  close(): void {
    this.#unwatch();
  }

  #onRead(mailbox: string, reader: string, state: ReadState): void {
    const entry = this.#watchers.get(mailbox)?.get(reader);
    if (!entry) return;
    // Moves of other nodes arrive on another connection than this node's own: one may overtake another.
    const { last } = entry;
    if (last && last.epoch === state.position.epoch && last.seq >= state.position.seq) return;
    entry.last = state.position;
    for (const watcher of [...entry.watchers]) watcher.read(mailbox, state);
  }
}
