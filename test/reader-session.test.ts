import { describe, expect, it } from "vitest";
import type { CloseReason, StreamSink } from "../src/core/delivery.js";
import type { Presence } from "../src/core/presence.js";
import { ReadStates } from "../src/core/read-states.js";
import { ReaderSession } from "../src/core/reader-session.js";
import { JSON_LINES_FORMAT } from "../src/http/transports/frame-formats.js";
import type { MailboxStore, ReadListener, ReadState } from "../src/store/mailbox-store.js";

/**
 * Orders the network may impose that the HTTP tests cannot force: a read move
 * overtaking the opening unread count, and two nodes' moves arriving swapped.
 */

class RecordingSink implements StreamSink {
  readonly format = JSON_LINES_FORMAT;
  readonly frames: Record<string, unknown>[] = [];
  /** Bytes the peer has not read: everything written, when `stalled`. */
  stalled = false;
  queued = 0;
  ended: CloseReason | undefined;
  write(frames: string): void {
    if (this.stalled) this.queued += frames.length;
    for (const line of frames.split("\n")) if (line) this.frames.push(JSON.parse(line));
  }
  bufferedBytes = () => this.queued;
  whenDrained = async () => {};
  end(reason: CloseReason): void {
    this.ended = reason;
  }
}

function state(seq: number, unread: number, lastSeq: number): ReadState {
  return { position: { epoch: "e1", seq }, unread, lastSeq };
}

/** A store whose read-state answers the test releases, and whose read moves the test emits. */
function controlledStore() {
  let listener: ReadListener = () => {};
  const answers: ((state: ReadState) => void)[] = [];
  const store = {
    watchReads: (l: ReadListener) => {
      listener = l;
      return () => {};
    },
    readState: () => new Promise<ReadState>((resolve) => answers.push(resolve)),
  } as unknown as MailboxStore;
  return { store, emit: (s: ReadState) => listener("inbox", "alice", s), answers };
}

const BOUNDS = { maxQueueBytes: 1 << 20, onSlowConsumer: () => expect.fail("not a slow consumer") };

const noPresence = { enter: () => () => {}, watch: async () => () => {} } as unknown as Presence;

describe("read state in a session, when messages arrive out of order", () => {
  it("keeps a read move heard while the opening count is in flight; the older count is dropped", async () => {
    const { store, emit, answers } = controlledStore();
    const reads = new ReadStates(store);
    const sink = new RecordingSink();
    const session = new ReaderSession(
      { ...BOUNDS, presence: noPresence, reads, onError: (error) => expect.fail(String(error)) },
      ["inbox"],
      { reader: { sub: "alice", info: undefined }, unread: true },
      sink,
    );
    session.start();
    expect(answers).toHaveLength(1);
    // Another device marks everything read; then the count asked for at open arrives, from before it.
    emit(state(5, 0, 5));
    answers[0]?.(state(0, 5, 5));
    await new Promise((resolve) => setImmediate(resolve));
    const unreads = sink.frames.filter((f) => f.type === "read" || f.type === "unread").map((f) => f.unread);
    expect(unreads).toEqual([0]);
    // Messages after the mark count from it.
    session.written("inbox", "e1", 6, 7, 2);
    expect(sink.frames.at(-1)).toEqual({ type: "unread", mailbox: "inbox", unread: 2 });
    session.close();
  });

  it("counts the messages written, not the seqs they span", async () => {
    const { store, answers } = controlledStore();
    const sink = new RecordingSink();
    const session = new ReaderSession(
      { ...BOUNDS, presence: noPresence, reads: new ReadStates(store), onError: () => {} },
      ["inbox"],
      { reader: { sub: "alice", info: undefined }, unread: true },
      sink,
    );
    session.start();
    answers[0]?.(state(2, 0, 2));
    await new Promise((resolve) => setImmediate(resolve));
    // Seqs 3 to 10, but 3 to 7 were trimmed before this replay: three messages were sent.
    session.written("inbox", "e1", 8, 10, 3);
    expect(sink.frames.at(-1)).toEqual({ type: "unread", mailbox: "inbox", unread: 3 });
    session.close();
  });

  it("tells a reader's connections of a later move only once, whatever order the moves arrive in", () => {
    const { store, emit } = controlledStore();
    const reads = new ReadStates(store);
    const heard: number[] = [];
    reads.watch("inbox", "alice", { read: (_mailbox, moved) => heard.push(moved.position.seq) });
    emit(state(8, 0, 8));
    emit(state(5, 3, 8));
    emit(state(9, 0, 9));
    expect(heard).toEqual([8, 9]);
  });

  it("cuts a connection that stopped reading while presence events keep coming, as for messages", () => {
    const { store } = controlledStore();
    const sink = new RecordingSink();
    sink.stalled = true;
    let cut = 0;
    const session = new ReaderSession(
      {
        presence: noPresence,
        reads: new ReadStates(store),
        onError: () => {},
        maxQueueBytes: 1000,
        onSlowConsumer: () => cut++,
      },
      ["room"],
      { presence: true },
      sink,
    );
    const join = '{"type":"join","mailbox":"room","sub":"someone-with-a-long-name","info":null,"count":2}';
    for (let i = 0; i < 9 && sink.ended === undefined; i++) session.presence([join]);
    expect(sink.ended).toBeUndefined();
    for (let i = 0; i < 20 && sink.ended === undefined; i++) session.presence([join]);
    expect(sink.ended).toBe("slow-consumer");
    expect(cut).toBe(1);
  });
});
