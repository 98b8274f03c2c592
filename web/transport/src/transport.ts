/**
 * `ChatWorkerTransport`: an AI SDK `ChatTransport` that talks to chatworker's gateway.
 *
 * A new chat triggers a run with the full history; later messages go to the live run (only the
 * new message; the full history on regenerate). A run that has ended answers 409 and the chat
 * continues in a new run; an expired run token is renewed (never a second run). Each send reads
 * exactly the turn answering it, matched by the `inputId` the gateway returned.
 */

import type { ChatTransport, UIMessage, UIMessageChunk } from "ai";

import { ChatWorkerError, callJson, compareIds, isAbortError, sleep, type FetchFn } from "./http.js";
import { ChatFollower, type ChatFollow } from "./follow.js";
import { TurnReader, type ReaderOptions, type TurnMatch } from "./reader.js";
import type {
  AccessTokenRequest,
  ChatSession,
  ChatWorkerTransportOptions,
  FollowOptions,
  RunInfo,
  SessionChangeCallback,
  TurnCompleteChunk,
  TurnStartChunk,
} from "./types.js";

type SendOptions<M extends UIMessage> = Parameters<ChatTransport<M>["sendMessages"]>[0];
type ReconnectOptions<M extends UIMessage> = Parameters<ChatTransport<M>["reconnectToStream"]>[0];
type WirePayload = Record<string, unknown> & { chatId: string; messages: unknown[]; trigger: string };

interface Delivery {
  runId: string;
  match: TurnMatch;
  after: string | undefined;
}

/** A superseded reconnect (React StrictMode, a second resume) is aborted without a user stop. */
const RESUME_ABORT_GRACE_MS = 50;
const TRIGGER_ATTEMPTS = 3;
/** Run states in which a turn is about to start though none is streaming yet. */
const PENDING_STATUSES = new Set(["queued", "resuming"]);
const PENDING_START_MS = 30_000;
/** How long a follower waits for a resumed stream of this transport to claim a turn. */
const CLAIM_WAIT_MS = 5_000;

function plainObject(value: unknown): Record<string, unknown> | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

function headerRecord(headers: Record<string, string> | Headers | undefined): Record<string, string> {
  if (headers === undefined) return {};
  if (typeof Headers !== "undefined" && headers instanceof Headers) {
    const out: Record<string, string> = {};
    headers.forEach((value, key) => {
      out[key] = value;
    });
    return out;
  }
  return { ...(headers as Record<string, string>) };
}

function newKey(): string {
  const random = globalThis.crypto?.randomUUID?.();
  return random ?? `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

export class ChatWorkerTransport<UI_MESSAGE extends UIMessage = UIMessage>
  implements ChatTransport<UI_MESSAGE>
{
  /** Reconnecting replays the in-flight turn from its first chunk. */
  readonly resumeStreamIsReplay = true;

  private readonly task: string;
  private readonly baseURL: string;
  private readonly accessToken: ChatWorkerTransportOptions["accessToken"];
  private readonly clientData: Record<string, unknown> | undefined;
  private readonly headers: Record<string, string> | undefined;
  private readonly fetchFn: FetchFn;
  private readonly streamTimeout: number | undefined;
  private readonly maxAttempts: number;
  private readonly whileStreaming: ChatWorkerTransportOptions["whileStreaming"];
  private onSessionChange: SessionChangeCallback | undefined;
  private readonly sessions = new Map<string, ChatSession>();
  private readonly queues = new Map<string, Promise<unknown>>();
  private readonly renewals = new Map<string, Promise<void>>();
  private readonly epochs = new Map<string, number>();
  private readonly readers = new Map<TurnReader, { chatId: string; runId: string; match: TurnMatch }>();
  /** Turns this transport's own sends read (`runId inputId`; a trigger's turn 0: `runId`). */
  private readonly ownTurns = new Set<string>();
  private readonly followers = new Set<ChatFollower<UI_MESSAGE>>();

  constructor(options: ChatWorkerTransportOptions) {
    if (!options.task) throw new Error("ChatWorkerTransport needs the chat task id (`task`)");
    this.task = options.task;
    this.baseURL = (options.baseURL ?? "/api/chat").replace(/\/+$/, "");
    this.accessToken = options.accessToken;
    this.clientData = plainObject(options.clientData);
    this.headers = options.headers;
    const fetchImpl = options.fetch ?? globalThis.fetch;
    this.fetchFn = (input, init) => fetchImpl(input, init);
    this.streamTimeout = options.streamTimeoutSeconds;
    this.maxAttempts = options.maxReconnectAttempts ?? 8;
    this.whileStreaming = options.whileStreaming;
    this.onSessionChange = options.onSessionChange;
    for (const [chatId, session] of Object.entries(options.sessions ?? {})) {
      if (session?.runId && session.publicAccessToken) this.sessions.set(chatId, { ...session });
    }
  }

  // -- the ChatTransport interface ---------------------------------------------------------------

  async sendMessages(options: SendOptions<UI_MESSAGE>): Promise<ReadableStream<UIMessageChunk>> {
    const { chatId, abortSignal } = options;
    this.bump(chatId);
    const delivery = await this.serial(chatId, async () => {
      const delivered = await this.deliver(options);
      // Registered before the chat's queue moves on, so a follower never shows this turn too.
      const { runId, match } = delivered;
      this.ownTurns.add(match.kind === "input" ? `${runId} ${match.inputId}` : runId);
      return delivered;
    });
    const reader = this.read(chatId, delivery.runId, delivery.match, { after: delivery.after });
    if (abortSignal) {
      if (abortSignal.aborted) reader.requestStop();
      else abortSignal.addEventListener("abort", () => reader.requestStop(), { once: true });
    }
    return reader.stream;
  }

  async reconnectToStream(
    options: ReconnectOptions<UI_MESSAGE>,
  ): Promise<ReadableStream<UIMessageChunk> | null> {
    const { chatId, abortSignal } = options;
    const epoch = this.bump(chatId);
    const session = this.sessions.get(chatId);
    if (!session) return null;
    const info = await this.runInfo(chatId, session.runId, abortSignal);
    if (info === null || abortSignal?.aborted) return null;
    // A run still queued has a turn 0 coming (a reload right after the first message).
    const pending = !info.isStreaming && PENDING_STATUSES.has(info.status);
    if (!info.isStreaming && !pending) return null;
    // Replay the in-flight turn from its start: it begins right after the run's last marker.
    const reader = this.read(chatId, session.runId, { kind: "inflight" }, {
      after: info.lastEventId ?? undefined,
      startTimeoutMs: pending ? PENDING_START_MS : undefined,
    });
    abortSignal?.addEventListener(
      "abort",
      () => {
        // useChat aborts a resume both for a user stop and when another resume of the same chat
        // replaces it (React StrictMode): only the former must stop the generation.
        reader.hold();
        void sleep(RESUME_ABORT_GRACE_MS).then(() => {
          if (this.epochs.get(chatId) === epoch) reader.requestStop();
          else reader.close();
        });
      },
      { once: true },
    );
    return reader.stream;
  }

  /** Stop reading every stream (the server keeps answering; nothing is stopped there). */
  close(): void {
    for (const reader of [...this.readers.keys()]) reader.close();
    for (const follower of [...this.followers]) follower.close();
  }

  // -- follow mode -----------------------------------------------------------------------------------

  /**
   * Follow the chat live while the page shows it: every turn this transport's own sends do not
   * show (sent from another tab or device, a regenerate there, a message posted with
   * {@link postMessage}) is handed to `options.onUpdate` as an update for `setMessages`: the
   * turn's messages, then its reply as it streams. A continuation run of the chat is followed too
   * and becomes the chat's session here. Close it when the page stops showing the chat.
   */
  follow(chatId: string, options: FollowOptions<UI_MESSAGE>): ChatFollow {
    const query = this.streamTimeout ? `?timeout=${encodeURIComponent(String(this.streamTimeout))}` : "";
    const path = `/ui/${encodeURIComponent(this.task)}/${encodeURIComponent(chatId)}/follow${query}`;
    const follower: ChatFollower<UI_MESSAGE> = new ChatFollower<UI_MESSAGE>(
      {
        fetch: this.fetchFn,
        url: this.url(path),
        headers: this.headers,
        token: () => this.triggerToken({ chatId, purpose: "follow" }),
        session: () => this.getSession(chatId),
        adoptRun: (runId, token) => this.adoptRun(chatId, runId, token),
        turnComplete: (runId, marker, eventId) => this.turnComplete(chatId, runId, marker, eventId),
        isOwnTurn: (runId, start) => this.isOwnTurn(chatId, runId, start),
        maxAttempts: this.maxAttempts,
      },
      {
        ...options,
        onError: (error) => {
          this.followers.delete(follower);
          options.onError?.(error);
        },
      },
    );
    this.followers.add(follower);
    return {
      close: () => {
        this.followers.delete(follower);
        follower.close();
      },
    };
  }

  /**
   * Send a message to the chat's run without reading its answer here: its turn (or, for a
   * message the run steers into the reply in progress, that reply) reaches every follower of
   * the chat, this one's included. `body` keys join the wire payload (e.g. `whileStreaming`).
   * Meant for a message typed while a reply streams; it needs a live run (else it rejects with
   * a `ChatWorkerError`, 409 or 404: send with `sendMessage` instead).
   */
  async postMessage(
    chatId: string,
    message: UI_MESSAGE,
    options: { body?: Record<string, unknown>; metadata?: unknown } = {},
  ): Promise<{ runId: string; inputId: string }> {
    return this.serial(chatId, async () => {
      const session = this.sessions.get(chatId);
      if (!session) throw new ChatWorkerError(404, "run_not_found", "this chat has no run to send to");
      const payload: WirePayload = { ...options.body, chatId, messages: [message], trigger: "submit-message" };
      const metadata = { ...this.clientData, ...plainObject(options.metadata) };
      if (this.clientData || plainObject(options.metadata)) payload["metadata"] = metadata;
      const { inputId } = await this.withRenewal(chatId, (token) =>
        callJson<{ inputId: string }>(
          this.fetchFn,
          { method: "POST", url: this.url(`/runs/${session.runId}/input/messages`), token, body: payload, headers: this.headers },
          "sending the message",
        ),
      );
      return { runId: session.runId, inputId };
    });
  }

  /** The chat's follow stream moved to `runId`: make it the chat's session. */
  private adoptRun(chatId: string, runId: string, token: string): void {
    const session = this.sessions.get(chatId);
    if (session?.runId === runId) {
      session.publicAccessToken = token; // fresher than the one kept
      return;
    }
    this.setSession(chatId, { runId, publicAccessToken: token });
  }

  /** Whether a stream of this transport shows the turn `start` begins (a follower then skips it). */
  private async isOwnTurn(chatId: string, runId: string, start: TurnStartChunk): Promise<boolean> {
    await this.queues.get(chatId); // sends under way register their turns first
    const resumed = [...this.readers].filter(
      ([, meta]) => meta.chatId === chatId && meta.runId === runId && meta.match.kind === "inflight",
    );
    await Promise.race([Promise.all(resumed.map(([reader]) => reader.decided)), sleep(CLAIM_WAIT_MS)]);
    if (this.ownTurns.has(start.inputId === undefined ? runId : `${runId} ${start.inputId}`)) {
      return start.inputId !== undefined || start.turn === 0;
    }
    return resumed.some(([reader]) => reader.turnNumber === start.turn);
  }

  // -- extras --------------------------------------------------------------------------------------

  /**
   * Start a run for a new, empty chat before its first message (the model is warm when the user
   * sends). Does nothing if the chat already has a session.
   */
  async preload(chatId: string, options: { warmTimeoutInSeconds?: number } = {}): Promise<void> {
    await this.serial(chatId, async () => {
      if (this.sessions.has(chatId)) return;
      const payload: WirePayload = { chatId, messages: [], trigger: "preload" };
      if (this.clientData) payload["metadata"] = { ...this.clientData };
      if (options.warmTimeoutInSeconds !== undefined) {
        payload["warmTimeoutInSeconds"] = options.warmTimeoutInSeconds;
      }
      await this.trigger(chatId, payload, {});
    });
  }

  /** Stop the chat's generation in progress, whoever started it (e.g. after a reload). */
  async stopGeneration(chatId: string): Promise<boolean> {
    const session = this.sessions.get(chatId);
    if (!session) return false;
    const result = await this.withRenewal(chatId, (token) =>
      callJson<{ stopped?: boolean }>(
        this.fetchFn,
        { method: "POST", url: this.url(`/runs/${session.runId}/input/stop`), token, body: { stop: true }, headers: this.headers },
        "stopping the chat",
      ),
    );
    return Boolean(result.stopped);
  }

  /**
   * Adopt a session stored elsewhere (e.g. by the server's hooks, for a chat another tab started)
   * unless this transport already has one for the chat.
   */
  restoreSession(chatId: string, session: ChatSession): void {
    if (this.sessions.has(chatId) || !session.runId || !session.publicAccessToken) return;
    this.sessions.set(chatId, { ...session });
  }

  /** The chat's session as `onSessionChange` reports it. */
  getSession(chatId: string): ChatSession | undefined {
    const session = this.sessions.get(chatId);
    return session ? { ...session } : undefined;
  }

  /** Replace the session callback (the React hook keeps it current this way). */
  setOnSessionChange(callback: SessionChangeCallback | undefined): void {
    this.onSessionChange = callback;
  }

  // -- delivering a message ------------------------------------------------------------------------

  private async deliver(options: SendOptions<UI_MESSAGE>): Promise<Delivery> {
    const { chatId, messages, messageId, body } = options;
    let trigger: string = options.trigger;
    // Editing an earlier user message cuts the history back: the run must replace its history.
    const last = messages[messages.length - 1];
    const edit = trigger === "submit-message" && messageId !== undefined && last?.id === messageId && last.role === "user";
    if (edit) trigger = "regenerate-message";
    const payload: WirePayload = { ...plainObject(body), chatId, messages, trigger };
    if (this.whileStreaming !== undefined && payload["whileStreaming"] === undefined) {
      payload["whileStreaming"] = this.whileStreaming;
    }
    if (messageId !== undefined) payload["messageId"] = messageId;
    const metadata = { ...this.clientData, ...plainObject(options.metadata) };
    if (this.clientData || plainObject(options.metadata)) payload["metadata"] = metadata;
    const headers = headerRecord(options.headers);

    let previousRunId: string | undefined;
    const session = this.sessions.get(chatId);
    if (session) {
      const input = trigger === "submit-message" ? messages.slice(-1) : messages;
      try {
        const { inputId, outcome } = await this.withRenewal(chatId, (token) =>
          callJson<{ inputId: string; outcome?: string }>(
            this.fetchFn,
            {
              method: "POST",
              url: this.url(`/runs/${session.runId}/input/messages`),
              token,
              body: { ...payload, messages: input },
              headers: { ...this.headers, ...headers },
            },
            "sending the message",
          ),
        );
        // A message steered into the reply in progress is answered by the rest of that reply.
        const steered = outcome === "steered" || outcome === "steering" ? last?.id : undefined;
        const match: TurnMatch = steered ? { kind: "input", inputId, steered } : { kind: "input", inputId };
        return { runId: session.runId, match, after: session.lastEventId };
      } catch (error) {
        // 409: the run ended; 404: Redis forgot it. Either way the chat continues in a new run.
        // 409 `busy` is a `reject` while a reply streams: the message was not sent at all.
        const gone = error instanceof ChatWorkerError && (error.status === 409 || error.status === 404);
        if (!gone || error.code === "busy") {
          throw error;
        }
        previousRunId = session.runId;
      }
    }
    payload["continuation"] = previousRunId !== undefined;
    if (previousRunId !== undefined) payload["previousRunId"] = previousRunId;
    const runId = await this.trigger(chatId, payload, headers);
    return { runId, match: { kind: "trigger" }, after: undefined };
  }

  private async trigger(chatId: string, payload: WirePayload, headers: Record<string, string>): Promise<string> {
    const token = await this.triggerToken({ chatId, purpose: "trigger" });
    const key = newKey();
    let result: { runId: string; publicAccessToken: string } | undefined;
    for (let attempt = 1; result === undefined; attempt++) {
      try {
        result = await callJson<{ runId: string; publicAccessToken: string }>(
          this.fetchFn,
          {
            method: "POST",
            url: this.url(`/tasks/${encodeURIComponent(this.task)}/runs`),
            token,
            body: payload,
            headers: { ...this.headers, ...headers, "Idempotency-Key": key },
          },
          "starting the chat run",
        );
      } catch (error) {
        // Retrying with the same Idempotency-Key never starts a second run.
        if (!(error instanceof ChatWorkerError) || !error.retryable || attempt >= TRIGGER_ATTEMPTS) throw error;
        await sleep(300 * attempt);
      }
    }
    this.setSession(chatId, { runId: result.runId, publicAccessToken: result.publicAccessToken });
    return result.runId;
  }

  // -- reading ---------------------------------------------------------------------------------------

  private read(chatId: string, runId: string, match: TurnMatch, options: ReaderOptions): TurnReader {
    const query = this.streamTimeout ? `?timeout=${encodeURIComponent(String(this.streamTimeout))}` : "";
    const reader = new TurnReader(
      {
        fetch: this.fetchFn,
        url: this.url(`/runs/${runId}/stream${query}`),
        headers: this.headers,
        token: () => this.sessionFor(chatId, runId)?.publicAccessToken ?? "",
        renewToken: () => this.renew(chatId, runId),
        advance: (eventId) => this.advance(chatId, runId, eventId),
        onTurnComplete: (marker, eventId) => this.turnComplete(chatId, runId, marker, eventId),
        sendStop: (inputId) => this.sendStop(chatId, runId, inputId),
        maxAttempts: this.maxAttempts,
      },
      match,
      { ...options, onDone: (done) => this.readers.delete(done) },
    );
    this.readers.set(reader, { chatId, runId, match });
    return reader;
  }

  private async runInfo(chatId: string, runId: string, signal: AbortSignal | undefined): Promise<RunInfo | null> {
    try {
      return await this.withRenewal(chatId, (token) =>
        callJson<RunInfo>(
          this.fetchFn,
          { method: "GET", url: this.url(`/runs/${runId}`), token, headers: this.headers, signal },
          "checking the chat run",
        ),
      );
    } catch (error) {
      if (isAbortError(error)) return null;
      if (error instanceof ChatWorkerError && error.status === 404) {
        this.dropSession(chatId, runId);
        return null;
      }
      throw error;
    }
  }

  private async sendStop(chatId: string, runId: string, inputId: string | undefined): Promise<void> {
    await this.withRenewal(chatId, (token) =>
      callJson(
        this.fetchFn,
        {
          method: "POST",
          url: this.url(`/runs/${runId}/input/stop`),
          token,
          // `inputId` names the message whose generation to stop (ignored by older gateways).
          body: inputId ? { stop: true, inputId } : { stop: true },
          headers: this.headers,
        },
        "stopping the chat",
      ),
    );
  }

  // -- sessions and tokens -------------------------------------------------------------------------

  private sessionFor(chatId: string, runId: string): ChatSession | undefined {
    const session = this.sessions.get(chatId);
    return session?.runId === runId ? session : undefined;
  }

  private setSession(chatId: string, session: ChatSession): void {
    this.sessions.set(chatId, session);
    this.onSessionChange?.(chatId, { ...session });
  }

  private dropSession(chatId: string, runId: string): void {
    if (this.sessionFor(chatId, runId)) {
      this.sessions.delete(chatId);
      this.onSessionChange?.(chatId, null);
    }
  }

  private advance(chatId: string, runId: string, eventId: string): void {
    const session = this.sessionFor(chatId, runId);
    if (session && (!session.lastEventId || compareIds(eventId, session.lastEventId) > 0)) {
      session.lastEventId = eventId;
    }
  }

  private turnComplete(chatId: string, runId: string, marker: TurnCompleteChunk, eventId: string | undefined): void {
    const session = this.sessionFor(chatId, runId);
    if (!session) return;
    if (marker.publicAccessToken) session.publicAccessToken = marker.publicAccessToken;
    if (eventId) this.advance(chatId, runId, eventId);
    this.onSessionChange?.(chatId, { ...session });
  }

  private async triggerToken(request: AccessTokenRequest): Promise<string> {
    const source = this.accessToken;
    const token = typeof source === "function" ? await source(request) : source;
    if (!token) throw new Error("ChatWorkerTransport: accessToken gave no token");
    return token;
  }

  /** Call with the run token; on 401 renew it once (a trigger token mints a new one) and retry. */
  private async withRenewal<T>(chatId: string, call: (token: string) => Promise<T>): Promise<T> {
    const session = this.sessions.get(chatId);
    if (!session) throw new Error(`no session for chat ${chatId}`);
    try {
      return await call(session.publicAccessToken);
    } catch (error) {
      if (!(error instanceof ChatWorkerError) || error.status !== 401) throw error;
    }
    await this.renew(chatId, session.runId);
    return call(this.sessionFor(chatId, session.runId)?.publicAccessToken ?? session.publicAccessToken);
  }

  /** Renew the run token of `runId` (one renewal at a time per chat). */
  private renew(chatId: string, runId: string): Promise<void> {
    const key = `${chatId}\u0000${runId}`;
    let pending = this.renewals.get(key);
    if (!pending) {
      pending = (async () => {
        const trigger = await this.triggerToken({ chatId, purpose: "renew" });
        const { publicAccessToken } = await callJson<{ publicAccessToken: string }>(
          this.fetchFn,
          { method: "POST", url: this.url(`/runs/${runId}/token`), token: trigger, headers: this.headers },
          "renewing the chat's access token",
        );
        const session = this.sessionFor(chatId, runId);
        if (session) {
          session.publicAccessToken = publicAccessToken;
          this.onSessionChange?.(chatId, { ...session });
        }
      })().finally(() => this.renewals.delete(key));
      this.renewals.set(key, pending);
    }
    return pending;
  }

  // -- helpers -----------------------------------------------------------------------------------------

  private url(path: string): string {
    return `${this.baseURL}${path}`;
  }

  /** Run `work` after earlier deliveries of the same chat (so quick sends never race a trigger). */
  private serial<T>(chatId: string, work: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(chatId) ?? Promise.resolve();
    const next = previous.then(work, work);
    const tail = next.catch(() => undefined);
    this.queues.set(chatId, tail);
    void tail.then(() => {
      if (this.queues.get(chatId) === tail) this.queues.delete(chatId);
    });
    return next;
  }

  private bump(chatId: string): number {
    const epoch = (this.epochs.get(chatId) ?? 0) + 1;
    this.epochs.set(chatId, epoch);
    return epoch;
  }
}
