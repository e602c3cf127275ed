/**
 * Who a subscriber is, for presence and read state: its token's `sub` (and
 * the token's public `info`), or the name an unauthenticated client gave
 * itself with `?reader=`. Connections without one are not present and hold no
 * read state.
 */
export interface Reader {
  readonly sub: string;
  /** A small JSON object, as text, that other readers may see; undefined when there is none. */
  readonly info: string | undefined;
}

/** What a subscription asks for beyond messages. */
export interface ReaderOptions {
  readonly reader?: Reader | undefined;
  /** Presence snapshot at open, then join and leave (or throttled counts) for each mailbox. */
  readonly presence?: boolean;
  /** The unread count of each mailbox at open and after each delivery; needs a reader. */
  readonly unread?: boolean;
}
