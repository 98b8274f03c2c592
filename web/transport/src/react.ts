/**
 * `useChatWorkerTransport`: the transport for `useChat`, created once per component;
 * `useChatFollow`: keep a chat in sync with its other tabs and devices.
 */

import { useEffect, useRef, useState } from "react";
import type { UIMessage } from "ai";

import { ChatWorkerTransport } from "./transport.js";
import type { ChatWorkerTransportOptions, SessionChangeCallback } from "./types.js";

/**
 * Create a {@link ChatWorkerTransport} on the first render and keep it for the component's life.
 * `onSessionChange` always calls the latest callback; other option changes are ignored after the
 * first render (create a new component, or a new transport, to change them).
 */
export function useChatWorkerTransport<UI_MESSAGE extends UIMessage = UIMessage>(
  options: ChatWorkerTransportOptions,
): ChatWorkerTransport<UI_MESSAGE> {
  const latest = useRef<SessionChangeCallback | undefined>(options.onSessionChange);
  const transport = useRef<ChatWorkerTransport<UI_MESSAGE> | null>(null);
  if (transport.current === null) {
    transport.current = new ChatWorkerTransport<UI_MESSAGE>({
      ...options,
      onSessionChange: (chatId, session) => latest.current?.(chatId, session),
    });
  }
  useEffect(() => {
    latest.current = options.onSessionChange;
  }, [options.onSessionChange]);
  return transport.current;
}

/** What {@link useChatFollow} needs from `useChat` (pass its result, or the parts of it). */
export interface FollowedChat<UI_MESSAGE extends UIMessage> {
  messages: UI_MESSAGE[];
  setMessages: (messages: UI_MESSAGE[] | ((messages: UI_MESSAGE[]) => UI_MESSAGE[])) => void;
}

/**
 * Follow the chat `chatId` while the component is mounted (see
 * {@link ChatWorkerTransport.follow}): turns sent from other tabs and devices appear in `chat`'s
 * messages as they stream. Returns whether such a turn is streaming now (show a Stop button that
 * calls `transport.stopGeneration(chatId)`), and the last follow error. Pass `enabled: false`
 * to pause following.
 */
export function useChatFollow<UI_MESSAGE extends UIMessage = UIMessage>(
  transport: ChatWorkerTransport<UI_MESSAGE>,
  chatId: string,
  chat: FollowedChat<UI_MESSAGE>,
  options: { enabled?: boolean } = {},
): { streaming: boolean; error: Error | undefined } {
  const latest = useRef(chat);
  latest.current = chat;
  const [streaming, setStreaming] = useState(false);
  const [error, setError] = useState<Error | undefined>(undefined);
  const enabled = options.enabled ?? true;
  useEffect(() => {
    if (!enabled) return undefined;
    setError(undefined);
    const follow = transport.follow(chatId, {
      onUpdate: (update) => latest.current.setMessages(update),
      getMessages: () => latest.current.messages,
      onTurnStart: () => setStreaming(true),
      onTurnEnd: () => setStreaming(false),
      onError: (problem) => setError(problem),
    });
    return () => {
      follow.close();
      setStreaming(false);
    };
  }, [transport, chatId, enabled]);
  return { streaming, error };
}

export { ChatWorkerTransport };
export type { ChatSession, ChatWorkerTransportOptions, FollowOptions } from "./types.js";
