/** One message: text, folded reasoning, tool calls (with approval requests), streamed data. */

import type { UIMessage } from "ai";

import { wasStopped } from "./chats";
import { DataPartView } from "./DataPartView";
import { ToolView, type ApprovalResponder, type ToolPart } from "./ToolView";

type Part = UIMessage["parts"][number];

function PartView({ part, onApproval }: { part: Part; onApproval?: ApprovalResponder }) {
  if (part.type === "text") {
    return (
      <div className="text" data-testid="text">
        {part.text}
      </div>
    );
  }
  if (part.type === "reasoning") {
    return (
      <details className="reasoning" data-testid="reasoning">
        <summary>{part.state === "streaming" ? "Thinking…" : "Reasoning"}</summary>
        <div className="reasoning-text">{part.text}</div>
      </details>
    );
  }
  if (part.type === "source-url") {
    return (
      <a className="source" href={part.url} target="_blank" rel="noreferrer">
        {part.title ?? part.url}
      </a>
    );
  }
  if (part.type === "dynamic-tool" || part.type.startsWith("tool-")) {
    return <ToolView part={part as unknown as ToolPart} onApproval={onApproval} />;
  }
  if (part.type === "steering-message") {
    // A message sent while this reply streamed, joined into it (the composer's "Steer").
    const steered = part as unknown as { parts: { type: string; text?: string }[] };
    return (
      <div className="steering" data-testid="steering">
        ↪ {steered.parts.map((p) => p.text ?? "").join("")}
      </div>
    );
  }
  if (part.type.startsWith("data-")) {
    return <DataPartView part={part} />;
  }
  return null;
}

interface MessageViewProps {
  message: UIMessage;
  /** Answers a tool's approval request (absent: the buttons are disabled). */
  onApproval?: ApprovalResponder;
}

export function MessageView({ message, onApproval }: MessageViewProps) {
  return (
    <div className={`message ${message.role}`} data-testid="message" data-role={message.role} data-id={message.id}>
      <div className="role">{message.role === "user" ? "You" : "Assistant"}</div>
      <div className="parts">
        {message.parts.map((part, index) => (
          <PartView key={index} part={part} onApproval={onApproval} />
        ))}
      </div>
      {message.role === "assistant" && wasStopped(message) && (
        <div className="stopped" data-testid="stopped">
          stopped
        </div>
      )}
    </div>
  );
}
