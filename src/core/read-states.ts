import { HeraldError } from "../errors.js";
import type { MailboxStore, ReadMark, ReadState } from "../store/mailbox-store.js";
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

/**
 * Read state: where each reader has read to in each mailbox, kept by the
 * store, and the connections of each reader that are told when it moves (on
 * any node: the store hears every node's moves).
 */
export class ReadStates {
  readonly #store: MailboxStore;
  readonly #watchers = new Map<string, Map<string, Set<ReadWatcher>>>();
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
    getOrCreate(
      getOrCreate(this.#watchers, mailbox, () => new Map()),
      sub,
      () => new Set(),
    ).add(watcher);
    return () => {
      const subs = this.#watchers.get(mailbox);
      const set = subs?.get(sub);
      if (!subs || !set) return;
      set.delete(watcher);
      if (set.size === 0) subs.delete(sub);
      if (subs.size === 0) this.#watchers.delete(mailbox);
    };
  }

  close(): void {
    this.#unwatch();
  }

  #onRead(mailbox: string, reader: string, state: ReadState): void {
    const watchers = this.#watchers.get(mailbox)?.get(reader);
    if (watchers) for (const watcher of [...watchers]) watcher.read(mailbox, state);
  }
}
