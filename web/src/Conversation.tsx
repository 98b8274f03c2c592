/** The open chat: its messages, streaming replies, Stop, Regenerate and the composer. */

import { useChat, type Chat } from "@ai-sdk/react";
import type { UIMessage } from "ai";
import { useEffect, useRef, useState, type FormEvent } from "react";

import { markStopped } from "./chats";
import { EmptyChat } from "./EmptyChat";
import { MessageView } from "./MessageView";
import { useStalled } from "./stall";

interface ConversationProps {
  chat: Chat<UIMessage>;
  /** The chat's current run, if it has one. */
  runId: () => string | undefined;
  /** Seconds between the gateway's keep-alives (how long a healthy stream may be silent). */
  heartbeatSeconds: number;
  onSend: (text: string) => void;
}

export function Conversation({ chat, runId, heartbeatSeconds, onSend }: ConversationProps) {
  // `resume`: after a reload (or in a second tab) a reply still being generated is replayed.
  const { messages, status, error, sendMessage, stop, regenerate, clearError, addToolApprovalResponse } = useChat({
    chat,
    resume: true,
  });
  const [input, setInput] = useState("");
  const bottom = useRef<HTMLDivElement>(null);
  const busy = status === "submitted" || status === "streaming";
  const last = messages[messages.length - 1];
  const stalled = useStalled(runId, busy, heartbeatSeconds);

  useEffect(() => {
    bottom.current?.scrollIntoView({ block: "end" });
  }, [messages]);

  async function stopReply(): Promise<void> {
    await stop();
    markStopped(chat);
  }

  function submit(event: FormEvent): void {
    event.preventDefault();
    const text = input.trim();
    if (!text || busy) return;
    setInput("");
    onSend(text);
    void sendMessage({ text });
  }

  return (
    <section className="conversation" data-testid="conversation" data-status={status}>
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
      <form className="composer" onSubmit={submit}>
        <input
          data-testid="composer-input"
          value={input}
          onChange={(event) => setInput(event.target.value)}
          placeholder={busy ? "Wait for the answer, or stop it…" : "Send a message"}
          autoFocus
        />
        <button type="submit" data-testid="send" disabled={busy || !input.trim()}>
          Send
        </button>
      </form>
    </section>
  );
}
