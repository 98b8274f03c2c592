/**
 * Follow mode: keep a chat's stream open while a page shows it, and hand the app every turn that
 * this transport's own sends are not already showing (another tab's or device's message and its
 * streaming reply, a regenerate, a continuation run), as updates for `setMessages`.
 *
 * It reads `GET /ui/<task>/<chat>/follow`: the chat's runs one after another, each announced by
 * `__chat_run` (with a token for it, which becomes the chat's session here so this device sends
 * to the run the others use). Each turn's `__turn_start` carries the messages it begins with;
 * the reply's chunks are assembled with the AI SDK's own `readUIMessageStream`. It reconnects
 * by run id and entry id after a drop, an idle timeout or a reload (from the session).
 */

import { readUIMessageStream, type UIMessage, type UIMessageChunk } from "ai";

import { ChatWorkerError, backoff, describe, errorFrom, sleep, type FetchFn } from "./http.js";
import { parseSSE, type SSEEvent } from "./sse.js";
import type {
  ChatRunChunk,
  ChatSession,
  FollowOptions,
  MessagesUpdate,
  TurnCompleteChunk,
  TurnStartChunk,
} from "./types.js";

/** What a follower needs from its transport. */
export interface FollowHost {
  fetch: FetchFn;
  /** The follow URL of the chat (with the stream timeout). */
  url: string;
  headers: Record<string, string> | undefined;
  /** A trigger token for the task (the follow route is authorized like the `/ui` routes). */
  token: () => Promise<string>;
  session: () => ChatSession | undefined;
  /** The chat moved to run `runId` (a continuation): make it the chat's session. */
  adoptRun: (runId: string, token: string) => void;
  /** A turn completed (fresh run token, resume position). */
  turnComplete: (runId: string, marker: TurnCompleteChunk, eventId: string | undefined) => void;
  /** Whether one of this transport's own streams shows this turn (then the follower does not). */
  isOwnTurn: (runId: string, start: TurnStartChunk) => Promise<boolean>;
  maxAttempts: number;
}

/** A follow in progress; {@link close} it when the page stops showing the chat. */
export interface ChatFollow {
  close(): void;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Put `message` in place of the one with its id, or at the end. */
function upsert<M extends UIMessage>(messages: M[], message: M): M[] {
  const index = messages.findIndex((m) => m.id === message.id);
  if (index === -1) return [...messages, message];
  const copy = messages.slice();
  copy[index] = message;
  return copy;
}

/**
 * Put `message` in place of the one with its id; a new one goes right after the message with id
 * `after` (what it answers: a message sent meanwhile stays after the reply), else at the end.
 */
function place<M extends UIMessage>(messages: M[], message: M, after: string | undefined): M[] {
  if (messages.some((m) => m.id === message.id) || after === undefined) return upsert(messages, message);
  const index = messages.findIndex((m) => m.id === after);
  if (index === -1) return upsert(messages, message);
  return [...messages.slice(0, index + 1), message, ...messages.slice(index + 1)];
}

/** One turn shown to the app: its reply assembled chunk by chunk. */
class ShownTurn<M extends UIMessage> {
  private controller: ReadableStreamDefaultController<UIMessageChunk> | undefined;
  private started = false;
  replyId: string | undefined;
  /** The assistant message the reply continues, as it was before the turn (none: undefined). */
  base: M | undefined;
  closed = false;

  constructor(
    readonly runId: string,
    readonly turn: number,
    private readonly options: FollowOptions<M>,
    /** A turn started again: the message it continues is known from the first attempt. */
    private readonly restart?: { base: M | undefined },
    /** The last message the turn began with: its reply goes right after it. */
    private readonly answers?: string,
  ) {}

  push(chunk: UIMessageChunk): void {
    if (this.closed) return;
    if (!this.started) this.begin(chunk);
    this.controller?.enqueue(chunk);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.controller?.close();
    } catch {
      // already closed
    }
  }

  private begin(first: UIMessageChunk): void {
    this.started = true;
    const id = first.type === "start" ? first.messageId : undefined;
    this.replyId = id;
    // A reply that continues an assistant message (tool results, an approval answer).
    const base = this.restart
      ? this.restart.base
      : id
        ? this.options.getMessages?.().find((m) => m.id === id && m.role === "assistant")
        : undefined;
    this.base = base;
    const stream = new ReadableStream<UIMessageChunk>({
      start: (controller) => {
        this.controller = controller;
      },
    });
    const update = this.options.onUpdate;
    void (async () => {
      try {
        // The stream's state grows the message it is given: hand it a copy.
        const message0 = base === undefined ? undefined : structuredClone(base);
        for await (const message of readUIMessageStream<M>({ message: message0, stream })) {
          this.replyId = message.id;
          update((messages) => place(messages, message, this.answers));
        }
      } catch (error) {
        this.options.onError?.(error instanceof Error ? error : new Error(describe(error)));
      }
    })();
  }
}

export class ChatFollower<M extends UIMessage> implements ChatFollow {
  private readonly halt = new AbortController();
  private closed = false;
  private runId: string | undefined;
  private after: string | undefined;
  /** The turn being shown to the app, or skipped (shown by this transport's own stream). */
  private shown: ShownTurn<M> | undefined;
  private skipping: { runId: string; turn: number } | undefined;

  constructor(
    private readonly host: FollowHost,
    private readonly options: FollowOptions<M>,
  ) {
    const session = host.session();
    if (session) {
      this.runId = session.runId;
      this.after = session.lastEventId;
    }
    void this.run();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.halt.abort();
    this.shown?.close();
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.closed) {
      let received = false;
      try {
        const response = await this.open();
        if (!response.ok || response.body === null) {
          const error = await errorFrom(response, "following the chat");
          if (error.code === "stream_trimmed" || error.status === 400) {
            // Our position is gone: start again from the chat's current one.
            this.runId = undefined;
            this.after = undefined;
            continue;
          }
          throw error;
        }
        for await (const event of parseSSE(response.body)) {
          received = true;
          await this.handle(event);
          if (this.closed) return;
        }
      } catch (error) {
        if (this.closed) return;
        if (error instanceof ChatWorkerError && !error.retryable && error.status !== 401) {
          this.options.onError?.(error);
          return;
        }
      }
      failures = received ? 0 : failures + 1;
      if (failures > this.host.maxAttempts) {
        this.options.onError?.(new Error("Lost the connection to the chat's live updates."));
        return;
      }
      if (failures > 0) await sleep(backoff(failures), this.halt.signal);
    }
  }

  private async open(): Promise<Response> {
    // The chat's session is never older than the run followed here, and newer when this
    // transport started a continuation run itself: go on from there.
    const session = this.host.session();
    if (session && session.runId !== this.runId) {
      this.endTurn(undefined);
      this.runId = session.runId;
      this.after = session.lastEventId;
    }
    const token = await this.host.token();
    const headers: Record<string, string> = {
      ...this.host.headers,
      Accept: "text/event-stream",
      Authorization: `Bearer ${token}`,
    };
    let url = this.host.url;
    if (this.runId) {
      url += `${url.includes("?") ? "&" : "?"}runId=${encodeURIComponent(this.runId)}`;
      if (this.after) headers["Last-Event-ID"] = this.after;
    }
    return this.host.fetch(url, { headers, signal: this.halt.signal, cache: "no-store" });
  }

  private async handle(event: SSEEvent): Promise<void> {
    let chunk: unknown;
    try {
      chunk = JSON.parse(event.data);
    } catch {
      return;
    }
    if (!isRecord(chunk) || typeof chunk["type"] !== "string") return;
    const type = chunk["type"];
    if (type === "__chat_run") return this.onRun(chunk as unknown as ChatRunChunk);
    const runId = this.runId;
    if (runId === undefined) return;
    if (event.id) this.after = event.id;
    if (type === "__turn_start") return this.onTurnStart(runId, chunk as unknown as TurnStartChunk);
    if (type === "__turn_complete") {
      const marker = chunk as unknown as TurnCompleteChunk;
      this.host.turnComplete(runId, marker, event.id);
      return this.endTurn(marker.turn);
    }
    if (type === "__run_end") return this.endTurn(undefined);
    if (type.startsWith("__")) return;
    if (this.shown && !this.skipping) this.shown.push(chunk as unknown as UIMessageChunk);
  }

  private onRun(chunk: ChatRunChunk): void {
    if (chunk.runId !== this.runId) {
      // The chat moved on to this run: it becomes the chat's session.
      this.endTurn(undefined);
      this.runId = chunk.runId;
      this.after = undefined;
      this.host.adoptRun(chunk.runId, chunk.publicAccessToken);
      return;
    }
    // The run we asked for: a fresh token for it, unless the session has moved on meanwhile.
    const session = this.host.session();
    if (!session || session.runId === chunk.runId) this.host.adoptRun(chunk.runId, chunk.publicAccessToken);
  }

  private async onTurnStart(runId: string, start: TurnStartChunk): Promise<void> {
    const previous = this.shown;
    const again = previous?.runId === runId && previous.turn === start.turn;
    let restart: { base: M | undefined } | undefined;
    if (again && previous) {
      // The turn starts over (its worker was lost): what its lost attempt showed goes, and the
      // new attempt builds on the message as it was before the turn.
      const partial = previous.replyId;
      const base = previous.base;
      restart = { base };
      if (partial) {
        this.options.onUpdate((messages) =>
          base ? upsert(messages, base) : messages.filter((m) => m.id !== partial),
        );
      }
    }
    previous?.close();
    this.shown = undefined;
    this.skipping = undefined;
    if (await this.host.isOwnTurn(runId, start)) {
      this.skipping = { runId, turn: start.turn };
      return;
    }
    const incoming = (start.messages ?? []) as M[];
    if (start.history) {
      this.options.onUpdate(() => incoming.slice());
    } else if (incoming.length > 0) {
      this.options.onUpdate((messages) => incoming.reduce(upsert, messages));
    }
    const answers = incoming[incoming.length - 1]?.id;
    this.shown = new ShownTurn<M>(runId, start.turn, this.options, restart, answers);
    this.options.onTurnStart?.(start);
  }

  private endTurn(turn: number | undefined): void {
    if (this.skipping && (turn === undefined || this.skipping.turn === turn)) this.skipping = undefined;
    const shown = this.shown;
    if (shown && (turn === undefined || shown.turn === turn)) {
      shown.close();
      this.shown = undefined;
      this.options.onTurnEnd?.();
    }
  }
}
