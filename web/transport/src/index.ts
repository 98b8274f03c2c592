/**
 * `@chatworker/transport`: use chatworker chat tasks from the AI SDK's `useChat`.
 *
 * ```ts
 * const transport = new ChatWorkerTransport({ task: "my-chat", accessToken: getChatToken });
 * const { messages, sendMessage, stop } = useChat({ transport });
 * ```
 */

export { ChatWorkerTransport } from "./transport.js";
export { ChatWorkerError } from "./http.js";
export { parseSSE, type SSEEvent } from "./sse.js";
export type { ChatFollow } from "./follow.js";
export type {
  AccessTokenRequest,
  AccessTokenSource,
  ChatRunChunk,
  ChatSession,
  FollowOptions,
  MessagesUpdate,
  ChatWorkerTransportOptions,
  RunEndChunk,
  RunInfo,
  SessionChangeCallback,
  TurnCompleteChunk,
  TurnStartChunk,
  WhileStreaming,
} from "./types.js";
