import { createListeners, type ListenerErrorOption, type Listeners } from "./append-listeners.js";
import {
  memberOf,
  type NodePresence,
  type PresenceChange,
  type PresenceListener,
  type PresenceSnapshot,
  type PresenceStore,
} from "./presence-store.js";

/** Presence of a single node (memory and SQLite stores): this process's reports are everyone's. */
export class LocalPresence implements PresenceStore {
  readonly #mailboxes = new Map<string, Map<string, NodePresence>>();
  readonly #listeners: Listeners<[PresenceChange]>;
  /** One counter for every mailbox, so a mailbox emptied and refilled never repeats a version. */
  #version = 0;

  constructor(options: ListenerErrorOption = {}) {
    this.#listeners = createListeners(options.onListenerError);
  }

  async report(mailbox: string, sub: string, presence: NodePresence | undefined): Promise<void> {
    let members = this.#mailboxes.get(mailbox);
    if (presence === undefined) {
      if (!members?.delete(sub)) return;
      if (members.size === 0) this.#mailboxes.delete(mailbox);
    } else {
      if (members === undefined) {
        members = new Map();
        this.#mailboxes.set(mailbox, members);
      }
      members.set(sub, presence);
    }
    const member = presence && memberOf(sub, [presence]);
    this.#listeners.emit({ mailbox, version: ++this.#version, sub, member });
  }

  async snapshot(mailbox: string): Promise<PresenceSnapshot> {
    const members = [];
    for (const [sub, presence] of this.#mailboxes.get(mailbox) ?? []) {
      const member = memberOf(sub, [presence]);
      if (member) members.push(member);
    }
    return { version: this.#version, members };
  }

  watch(listener: PresenceListener): () => void {
    return this.#listeners.add(listener);
  }

  onResync(_listener: () => void): () => void {
    // This process is the only node: it never misses a change.
    return () => {};
  }

  async close(): Promise<void> {
    this.#mailboxes.clear();
  }
}

export function createLocalPresence(options: ListenerErrorOption = {}): LocalPresence {
  return new LocalPresence(options);
}
