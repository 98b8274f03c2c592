/**
 * Reads one turn's answer off a run's output stream (SSE) and hands its chunks to useChat.
 *
 * The stream carries every turn of the run, so the reader waits for the `__turn_start` of the
 * turn it was made for, forwards that turn's chunks, and closes on the matching
 * `__turn_complete`; control chunks (`__*`) are never forwarded, and markers of other turns
 * (stale or later ones) never close it. Dropped connections resume from the last event read.
 *
 * The gateway answers 410 `stream_trimmed` when entries after the resume position were trimmed
 * from the run's stream. Before its turn starts, a reader for a message it sent needs none of
 * them: it reads on from the stream's first retained entry. A turn whose own start is gone (a
 * reply in flight after a reload, or one longer than the stream keeps) cannot be shown whole:
 * the reply fails with that error, and the page shows it from its history once it is complete.
 *
 * A worker that dies mid-reply leaves `abort{reason:"worker lost"}`; another worker then starts
 * the same turn again (a second `__turn_start`) under the same message id. The reader withholds
 * that `abort` and sends useChat a `reset-step`, which removes what the lost attempt showed of
 * its step, so the open page shows the answer once.
 */

import type { UIMessageChunk } from "ai";

import { ContinuedStart } from "./continued.js";
import { ChatWorkerError, backoff, describe, errorFrom, sleep, type FetchFn } from "./http.js";
import { parseSSE, type SSEEvent } from "./sse.js";
import type { RunEndChunk, TurnCompleteChunk, TurnStartChunk } from "./types.js";

/** Which turn a reader answers. */
export type TurnMatch =
  /**
   * The turn answering the message the gateway accepted as `inputId`; with `steered` (the
   * message's id), also the rest of the turn it was steered into, from its `steering-message`.
   */
  | { kind: "input"; inputId: string; steered?: string }
  /** Turn 0 of a run this client triggered (its markers carry no inputId). */
  | { kind: "trigger" }
  /** Whatever turn is in flight (a reconnect after a reload). */
  | { kind: "inflight" };

/** What a reader needs from the transport for its run. */
export interface ReaderContext {
  fetch: FetchFn;
  /** The stream URL. */
  url: string;
  /** Extra request headers. */
  headers: Record<string, string> | undefined;
  /** The run token to use now (it may be renewed while reading). */
  token: () => string;
  /** Get a fresh run token after a 401; rejects when that is impossible. */
  renewToken: () => Promise<void>;
  /** Every event id read, in order. */
  advance: (eventId: string) => void;
  /** The turn's marker arrived (fresh token, resume position). */
  onTurnComplete: (marker: TurnCompleteChunk, eventId: string | undefined) => void;
  /** Ask the run to stop the generation of the turn this reader answers. */
  sendStop: (inputId: string | undefined) => Promise<void>;
  /** Consecutive failed connections tolerated. */
  maxAttempts: number;
}

export interface ReaderOptions {
  /** Read strictly after this stream id (from the run's first entry when absent). */
  after?: string | undefined;
  /** Close the stream if the turn has not started after this many ms. */
  startTimeoutMs?: number | undefined;
  /** Called once when the reader stops reading. */
  onDone?: (reader: TurnReader) => void;
}

/** How long a reader keeps reading in the background after a stop, to refresh the session. */
const STOP_GRACE_MS = 30_000;
/** A connection that lasted this long is not counted as a failure when it drops. */
const HEALTHY_MS = 5_000;
/** The `abort` reason of a reply whose worker died (the turn then starts again). */
const WORKER_LOST = "worker lost";

function trimmedError(): ChatWorkerError {
  return new ChatWorkerError(
    410,
    "stream_trimmed",
    "The start of this answer is no longer in the chat's stream (the answer is longer than the " +
      "server keeps); reload the chat to see it once it is complete.",
  );
}

type Phase = "waiting" | "answering" | "done";

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export class TurnReader {
  /** The chunks of the turn, for useChat. */
  readonly stream: ReadableStream<UIMessageChunk>;
  private controller: ReadableStreamDefaultController<UIMessageChunk> | undefined;
  private phase: Phase = "waiting";
  private turn = -1;
  /** Our message was steered into another input's turn: that turn's marker ends ours. */
  private joined = false;
  private attached = true;
  private finished = false;
  private stopWanted = false;
  private held = false;
  private stopSent = false;
  private graceTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly halt = new AbortController();
  private after: string | undefined;
  /** `start-step` chunks passed on in the current attempt at the turn. */
  private steps = 0;
  /** A restarted attempt's first `start-step`: the step the lost attempt opened is reused. */
  private skipStartStep = false;
  /** The `abort` of a lost attempt, passed on only if the turn is not started again. */
  private heldAbort: UIMessageChunk | undefined;
  /** A reconnect replays its turn: the start of a turn continuing a message is left out. */
  private readonly continued: ContinuedStart | undefined;

  private readonly onDone: (reader: TurnReader) => void;
  private startTimer: ReturnType<typeof setTimeout> | undefined;
  private markDecided: () => void = () => undefined;
  /** Settles once the reader knows its turn (it started) or stopped reading. */
  readonly decided: Promise<void> = new Promise((resolve) => {
    this.markDecided = resolve;
  });

  constructor(
    private readonly ctx: ReaderContext,
    private readonly match: TurnMatch,
    options: ReaderOptions = {},
  ) {
    this.after = options.after;
    this.continued = match.kind === "inflight" ? new ContinuedStart() : undefined;
    this.onDone = options.onDone ?? (() => undefined);
    if (options.startTimeoutMs !== undefined) {
      // A turn expected but not certain (a queued run): give up if it does not start.
      this.startTimer = setTimeout(() => this.phase === "waiting" && this.finish(), options.startTimeoutMs);
    }
    this.stream = new ReadableStream<UIMessageChunk>({
      start: (controller) => {
        this.controller = controller;
      },
      cancel: () => this.detach(),
    });
    void this.run();
  }

  /** The number of the turn this reader answers (-1 until it started). */
  get turnNumber(): number {
    return this.turn;
  }

  /** True once the reader saw its turn start (the run is generating this answer). */
  get answering(): boolean {
    return this.phase === "answering";
  }

  /**
   * The user stopped: close the chunk stream now, and stop the turn on the server as soon as it
   * is this turn's generation that runs (a message still queued is stopped when its turn starts).
   */
  requestStop(): void {
    if (this.finished || this.stopWanted) return;
    this.stopWanted = true;
    this.detach();
    if (this.phase === "answering") this.sendStop();
    this.graceTimer = setTimeout(() => this.finish(), STOP_GRACE_MS);
  }

  /** Keep reading after the consumer leaves, until {@link requestStop} or {@link close}. */
  hold(): void {
    this.held = true;
  }

  /** Stop reading at once, without stopping anything on the server. */
  close(): void {
    this.finish();
  }

  private sendStop(): void {
    if (this.stopSent) return;
    this.stopSent = true;
    const inputId = this.match.kind === "input" ? this.match.inputId : undefined;
    this.ctx.sendStop(inputId).catch(() => undefined);
  }

  /** The consumer is gone; keep reading only while a stop still has to reach the server. */
  private detach(): void {
    if (this.attached) {
      this.attached = false;
      try {
        this.controller?.close();
      } catch {
        // already closed or cancelled
      }
    }
    if (!this.stopWanted && !this.held) this.finish();
  }

  private finish(error?: Error): void {
    if (this.finished) return;
    this.finished = true;
    this.markDecided();
    clearTimeout(this.graceTimer);
    clearTimeout(this.startTimer);
    this.halt.abort();
    if (this.attached) {
      this.attached = false;
      try {
        if (error) this.controller?.error(error);
        else this.controller?.close();
      } catch {
        // already closed or cancelled
      }
    }
    this.onDone(this);
  }

  private async run(): Promise<void> {
    let failures = 0;
    let renewed = false;
    let lastProblem = "";
    while (!this.finished) {
      const opened = Date.now();
      let received = false;
      try {
        const response = await this.open();
        if (response.status === 401 && !renewed) {
          renewed = true;
          await response.body?.cancel();
          await this.ctx.renewToken();
          continue;
        }
        if (!response.ok || response.body === null) {
          const error = await errorFrom(response, "reading the chat stream");
          if (error.code === "stream_trimmed" && this.skipTrimmed()) continue;
          if (!error.retryable) return this.finish(error);
          throw error;
        }
        renewed = false;
        for await (const event of parseSSE(response.body)) {
          received = true;
          this.handle(event);
          if (this.finished) return;
        }
        lastProblem = "the stream closed before the answer was complete";
      } catch (error) {
        if (this.finished) return;
        if (error instanceof ChatWorkerError && !error.retryable) return this.finish(error);
        lastProblem = describe(error);
      }
      failures = received || Date.now() - opened > HEALTHY_MS ? 0 : failures + 1;
      if (failures > this.ctx.maxAttempts) {
        return this.finish(new Error(`Lost the connection to the chat (${lastProblem}).`));
      }
      if (failures > 0) await sleep(backoff(failures), this.halt.signal);
    }
  }

  private open(): Promise<Response> {
    const headers: Record<string, string> = {
      ...this.ctx.headers,
      Accept: "text/event-stream",
      Authorization: `Bearer ${this.ctx.token()}`,
    };
    if (this.after) headers["Last-Event-ID"] = this.after;
    return this.ctx.fetch(this.ctx.url, { headers, signal: this.halt.signal, cache: "no-store" });
  }

  private handle(event: SSEEvent): void {
    if (event.id) {
      this.after = event.id;
      this.ctx.advance(event.id);
    }
    let chunk: unknown;
    try {
      chunk = JSON.parse(event.data);
    } catch {
      return;
    }
    if (!isRecord(chunk) || typeof chunk["type"] !== "string") return;
    const type = chunk["type"];
    if (type === "__turn_start") return this.onTurnStart(chunk as unknown as TurnStartChunk);
    if (type === "__turn_complete") {
      return this.onTurnComplete(chunk as unknown as TurnCompleteChunk, event.id);
    }
    if (type === "__run_end") return this.onRunEnd(chunk as unknown as RunEndChunk);
    if (type.startsWith("__")) return;
    if (type === "steering-message" && this.phase === "waiting" && this.match.kind === "input" &&
        this.match.steered !== undefined && chunk["id"] === this.match.steered) {
      this.phase = "answering"; // our message joined the turn in progress: the rest is ours
      this.joined = true;
    }
    if (this.phase !== "answering") return;
    if (type === "abort" && chunk["reason"] === WORKER_LOST) {
      this.heldAbort = chunk as unknown as UIMessageChunk;
      return;
    }
    this.releaseAbort();
    if (type === "start-step") {
      if (this.skipStartStep) {
        this.skipStartStep = false;
        return;
      }
      this.steps += 1;
    }
    this.forward(chunk as unknown as UIMessageChunk);
  }

  private forward(chunk: UIMessageChunk): void {
    if (!this.attached) return;
    for (const each of this.continued?.chunk(chunk) ?? [chunk]) this.controller?.enqueue(each);
  }

  /** A withheld `abort` stands after all: the turn was not started again. */
  private releaseAbort(): void {
    if (this.heldAbort === undefined) return;
    const held = this.heldAbort;
    this.heldAbort = undefined;
    this.forward(held);
  }

  /**
   * Our turn started again after its worker was lost: clear what the lost attempt showed. The
   * restarted attempt answers under the same message id, so it continues the same message.
   */
  private restart(): void {
    this.heldAbort = undefined;
    this.forward({ type: "reset-step" } as UIMessageChunk);
    // `reset-step` keeps the step's `step-start` part: the new attempt's first step reuses it.
    this.skipStartStep = this.steps > 0;
    this.steps = 0;
  }

  private onTurnStart(chunk: TurnStartChunk): void {
    if (this.phase === "answering") {
      // The same turn again: a worker took over after the one answering it died.
      if (chunk.turn === this.turn && this.ours(chunk)) this.restart();
      return;
    }
    if (this.phase !== "waiting") return;
    if (!this.ours(chunk)) return;
    this.phase = "answering";
    this.turn = chunk.turn;
    this.markDecided();
    if (this.stopWanted) this.sendStop();
  }

  private ours(chunk: TurnStartChunk): boolean {
    return (
      this.match.kind === "inflight" ||
      (this.match.kind === "trigger" ? chunk.inputId === undefined : chunk.inputId === this.match.inputId)
    );
  }

  /**
   * 410 `stream_trimmed`: entries after our position are gone. Still waiting for the turn of a
   * message we sent, none of them matter: read on from the first retained entry. Otherwise
   * (a reply in flight, or one already partly shown) there is no way to show it whole.
   */
  private skipTrimmed(): boolean {
    if (this.phase !== "waiting" || this.match.kind === "inflight" || this.after === undefined) {
      return false;
    }
    this.after = undefined;
    return true;
  }

  /** While waiting, our own turn's marker means its start was trimmed before we read it. */
  private missedStart(chunk: TurnCompleteChunk): boolean {
    if (this.match.kind === "input") return chunk.inputId === this.match.inputId;
    if (this.match.kind === "trigger") return chunk.inputId === undefined && chunk.turn === 0;
    return true;
  }

  private onTurnComplete(chunk: TurnCompleteChunk, eventId: string | undefined): void {
    if (this.phase === "waiting" && this.missedStart(chunk)) return this.finish(trimmedError());
    if (this.phase !== "answering") return; // an earlier (stale) or unrelated turn's marker
    const ours =
      this.joined ||
      (this.match.kind === "input"
        ? chunk.inputId === this.match.inputId
        : chunk.turn === this.turn && (this.match.kind === "inflight" || chunk.inputId === undefined));
    if (!ours) return;
    this.releaseAbort();
    if (this.attached) for (const held of this.continued?.release() ?? []) this.controller?.enqueue(held);
    this.phase = "done";
    this.ctx.onTurnComplete(chunk, eventId);
    this.finish();
  }

  private onRunEnd(chunk: RunEndChunk): void {
    this.releaseAbort();
    if (chunk.status === "failed") {
      const why = chunk.reason ? `: ${chunk.reason}` : "";
      return this.finish(new Error(`The chat run failed${why}.`));
    }
    this.finish();
  }
}
