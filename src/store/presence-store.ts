/** What one node reports about one reader on one mailbox. */
export interface NodePresence {
  /** This node's open connections of the reader on the mailbox (streams, subscriptions, polls in grace). */
  readonly connections: number;
  /** When the reader's first of them opened, epoch ms. */
  readonly sinceMs: number;
  /** The reader's public `info` as JSON object text, or undefined. */
  readonly info: string | undefined;
}

/** One reader present on a mailbox, over every live node. */
export interface PresenceMember {
  readonly sub: string;
  readonly info: string | undefined;
  /** Summed over nodes. */
  readonly connections: number;
  /** The earliest over nodes. */
  readonly sinceMs: number;
}

export interface PresenceSnapshot {
  /** Changes with a version at or below this one are already in `members`. */
  readonly version: number;
  readonly members: readonly PresenceMember[];
}

/** A reader's presence on a mailbox after some node reported it (undefined member: gone from every node). */
export interface PresenceChange {
  readonly mailbox: string;
  /** Increases with every change of the mailbox; listeners hear a mailbox's changes in this order. */
  readonly version: number;
  readonly sub: string;
  readonly member: PresenceMember | undefined;
}

export type PresenceListener = (change: PresenceChange) => void;

/**
 * PresenceStore holds who is connected where: each node reports its own
 * readers, and every node hears the union. Local (memory, SQLite: one node)
 * and Redis (many nodes) implement it; test/presence-contract.ts runs on both.
 *
 * A node that stops reporting (it died) has its readers removed within the
 * backend's node timeout, and listeners hear those removals as changes. A
 * report that cannot reach the backend rejects with `store_unavailable`; the
 * backend repeats this node's current reports once it is reachable again.
 */
export interface PresenceStore {
  /** Sets this node's presence of `sub` on `mailbox`; undefined removes it. */
  report(mailbox: string, sub: string, presence: NodePresence | undefined): Promise<void>;
  /** Everyone present on the mailbox now, over every live node. */
  snapshot(mailbox: string): Promise<PresenceSnapshot>;
  /** Hears every change, of every mailbox and node (this one's too). Returns an unsubscribe function. */
  watch(listener: PresenceListener): () => void;
  /**
   * Hears that changes may have been missed (the backend's feed of other
   * nodes' changes was interrupted and is back): whoever keeps members from
   * changes should take a fresh snapshot. Returns an unsubscribe function.
   */
  onResync(listener: () => void): () => void;
  /** Withdraws this node's reports and releases connections. */
  close(): Promise<void>;
}

/** Sums one reader's per-node presence into a member; undefined when no node has it. */
export function memberOf(sub: string, nodes: Iterable<NodePresence>): PresenceMember | undefined {
  let connections = 0;
  let sinceMs = Number.POSITIVE_INFINITY;
  let info: string | undefined;
  for (const node of nodes) {
    connections += node.connections;
    sinceMs = Math.min(sinceMs, node.sinceMs);
    info ??= node.info;
  }
  return connections === 0 ? undefined : { sub, info, connections, sinceMs };
}
