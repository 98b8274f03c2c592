/** `useChatWorkerTransport`: the transport for `useChat`, created once per component. */

import { useEffect, useRef } from "react";
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

export { ChatWorkerTransport };
export type { ChatSession, ChatWorkerTransportOptions } from "./types.js";
