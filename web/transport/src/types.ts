/** Public types of the chatworker transport. */

/** What a browser keeps about a chat's run (persist it to resume after a reload). */
export interface ChatSession {
  /** The chat run answering this chat. */
  runId: string;
  /** The run token (read the run's stream, send it messages), refreshed after every turn. */
  publicAccessToken: string;
  /** The last output stream entry this client has read (a Redis stream id). */
  lastEventId?: string | undefined;
}

/**
 * Why the transport needs a trigger token: to start a run, to renew an expired run token, or to
 * follow a chat (each connection of {@link ChatWorkerTransport.follow}).
 */
export interface AccessTokenRequest {
  chatId: string;
  purpose: "trigger" | "renew" | "follow";
}

/** A trigger token for the task (scope `trigger:tasks:<task>`), or a function that fetches one. */
export type AccessTokenSource =
  | string
  | ((request: AccessTokenRequest) => string | Promise<string>);

export type SessionChangeCallback = (chatId: string, session: ChatSession | null) => void;

/**
 * What a message sent while a reply streams does (the chat task decides which it accepts):
 * `queue` it for a turn of its own, `interrupt` the reply (answered next), `steer` it into the
 * reply at its next step boundary, or `reject` it (the send fails with a `busy` error).
 */
export type WhileStreaming = "queue" | "interrupt" | "steer" | "reject";

export interface ChatWorkerTransportOptions<CLIENT_DATA = Record<string, unknown>> {
  /** The chat task id (`chat.task(id=...)` on the server). */
  task: string;
  /**
   * A trigger token for `task`, or a (sync or async) function returning one. It is asked for
   * only when a run must be started (a new chat, a continuation) or a run token renewed.
   */
  accessToken: AccessTokenSource;
  /** Where the gateway blueprint is mounted. Default `/api/chat`. */
  baseURL?: string;
  /** Client data sent as the payload's `metadata`, merged under each call's `metadata`. */
  clientData?: CLIENT_DATA;
  /** Sessions to restore, by chat id (what `onSessionChange` gave you before a reload). */
  sessions?: Record<string, ChatSession>;
  /** Called when a chat's session is created, refreshed after a turn, or dropped (`null`). */
  onSessionChange?: SessionChangeCallback;
  /** Extra headers for every request to the gateway. */
  headers?: Record<string, string>;
  /** A `fetch` implementation (default: the global one). */
  fetch?: typeof globalThis.fetch;
  /** Seconds without output before the gateway closes a stream (`?timeout=`); then we reconnect. */
  streamTimeoutSeconds?: number;
  /** Consecutive failed stream connections tolerated before the reply fails. Default 8. */
  maxReconnectAttempts?: number;
  /**
   * The `whileStreaming` policy of every message sent (default: the chat task's own). One
   * message chooses for itself with `sendMessage(message, { body: { whileStreaming } })`.
   */
  whileStreaming?: WhileStreaming;
}

/** Control chunks chatworker writes on a run's output stream (never shown to useChat). */
export interface TurnStartChunk {
  type: "__turn_start";
  turn: number;
  inputId?: string;
  /** The message's trigger (`submit-message`, `regenerate-message`). */
  trigger?: string;
  /** The message the turn regenerates or continues, when the sender named one. */
  messageId?: string;
  /** The UI messages the turn begins with, as sent (absent for a message the run cannot read). */
  messages?: unknown[];
  /** `messages` is the whole history the turn starts from (a run's first turn, a regenerate). */
  history?: boolean;
}

/** The follow stream moved to a run of the chat (the first one, or a continuation). */
export interface ChatRunChunk {
  type: "__chat_run";
  runId: string;
  publicAccessToken: string;
}

/** An update of a chat's messages, for `setMessages` (it takes such a function). */
export type MessagesUpdate<UI_MESSAGE> = (messages: UI_MESSAGE[]) => UI_MESSAGE[];

/** What {@link ChatWorkerTransport.follow} hands to the app. */
export interface FollowOptions<UI_MESSAGE> {
  /**
   * Apply this update to the chat's messages (e.g. useChat's `setMessages(update)`): the messages
   * of a turn sent elsewhere, then its reply as it streams (upserted by id, so each appears once).
   */
  onUpdate: (update: MessagesUpdate<UI_MESSAGE>) => void;
  /** The chat's messages now (a reply that continues an assistant message builds on it). */
  getMessages?: () => UI_MESSAGE[];
  /** A turn sent elsewhere started streaming here. */
  onTurnStart?: (start: TurnStartChunk) => void;
  /** That turn ended (completed, stopped, or its run ended). */
  onTurnEnd?: () => void;
  /** Following failed for good (e.g. 403: the chat belongs to another user). */
  onError?: (error: Error) => void;
}

export interface TurnCompleteChunk {
  type: "__turn_complete";
  turn: number;
  stopped: boolean;
  inputId?: string;
  publicAccessToken?: string;
}

export interface RunEndChunk {
  type: "__run_end";
  status: "completed" | "canceled" | "failed" | string;
  reason?: string;
}

/** `GET /runs/<runId>`. */
export interface RunInfo {
  runId: string;
  taskId: string;
  chatId: string;
  status: string;
  turn: number;
  isStreaming: boolean;
  lastEventId: string | null;
  reason?: string;
}
