/** The open chat: its messages, streaming replies, Stop, Regenerate and the composer. */

import { useChat, type Chat } from "@ai-sdk/react";
import type { ChatWorkerTransport } from "@chatworker/transport";
import { useChatFollow } from "@chatworker/transport/react";
import type { UIMessage } from "ai";
import { useEffect, useRef } from "react";

import { markStopped, newChatId } from "./chats";
import { Composer, type WhileStreaming } from "./Composer";
import { EmptyChat } from "./EmptyChat";
import { MessageView } from "./MessageView";
import { useStalled } from "./stall";

interface ConversationProps {
  chat: Chat<UIMessage>;
  /** Keeps the chat in sync with its other tabs and devices (follow mode). */
  transport: ChatWorkerTransport;
  /** The chat's current run, if it has one. */
  runId: () => string | undefined;
  /** Seconds between the gateway's keep-alives (how long a healthy stream may be silent). */
  heartbeatSeconds: number;
  onSend: (text: string) => void;
}

export function Conversation({ chat, transport, runId, heartbeatSeconds, onSend }: ConversationProps) {
  // `resume`: after a reload (or in a second tab) a reply still being generated is replayed.
  const { messages, setMessages, status, error, sendMessage, stop, regenerate, clearError, addToolApprovalResponse } =
    useChat({
      chat,
      resume: true,
    });
  // Turns sent from other tabs and devices appear here as they stream.
  const followed = useChatFollow(transport, chat.id, { messages, setMessages });
  const bottom = useRef<HTMLDivElement>(null);
  const own = status === "submitted" || status === "streaming";
  const busy = own || followed.streaming;
  const last = messages[messages.length - 1];
  const stalled = useStalled(runId, busy, heartbeatSeconds);

  useEffect(() => {
    bottom.current?.scrollIntoView({ block: "end" });
  }, [messages]);

  async function stopReply(): Promise<void> {
    if (own) await stop();
    else await transport.stopGeneration(chat.id); // a reply sent from elsewhere
    markStopped(chat);
  }

  async function send(text: string, policy: WhileStreaming | undefined): Promise<boolean> {
    onSend(text);
    if (policy === undefined) {
      void sendMessage({ text });
      return true;
    }
    // Mid-reply: straight to the chat's run with the chosen policy; the follow stream shows
    // what comes of it (its own turn, or, steered, a part of the reply in progress).
    const message: UIMessage = { id: newChatId(), role: "user", parts: [{ type: "text", text }] };
    if (policy !== "steer") setMessages((list) => [...list, message]);
    try {
      await transport.postMessage(chat.id, message, { body: { whileStreaming: policy } });
      return true;
    } catch {
      setMessages((list) => list.filter((m) => m.id !== message.id));
      return false;
    }
  }

  return (
    <section
      className="conversation"
      data-testid="conversation"
      data-status={status}
      data-following={followed.streaming ? "streaming" : "idle"}
    >
      <div className="messages" data-testid="messages">
        {messages.length === 0 && <EmptyChat />}
        {messages.map((message) => (
          <MessageView
            key={message.id}
            message={message}
            // Only the latest reply's requests can be answered (the model has moved on from others).
            onApproval={message === last ? (response) => void addToolApprovalResponse(response) : undefined}
          />
        ))}
        {status === "submitted" && <div className="pending">…</div>}
        {busy && stalled && (
          <div className="stall" data-testid="stall" role="status">
            Waiting for the chat worker…
          </div>
        )}
        {error && (
          <div className="error" data-testid="error">
            {error.message}{" "}
            <button type="button" onClick={clearError}>
              Dismiss
            </button>
          </div>
        )}
        <div ref={bottom} />
      </div>
      <div className="actions">
        {busy && (
          <button type="button" data-testid="stop" onClick={() => void stopReply()}>
            ■ Stop
          </button>
        )}
        {!busy && last?.role === "assistant" && (
          <button type="button" data-testid="regenerate" onClick={() => void regenerate()}>
            ↻ Regenerate
          </button>
        )}
        <span className="status" data-testid="status">
          {status}
        </span>
      </div>
      <Composer streaming={busy} onSend={send} />
    </section>
  );
}
