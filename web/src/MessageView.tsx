/** One message: text, folded reasoning, tool calls with their inputs and outputs. */

import type { UIMessage } from "ai";

import { wasStopped } from "./chats";

type Part = UIMessage["parts"][number];

interface ToolPart {
  type: string;
  toolName?: string;
  toolCallId: string;
  state: string;
  input?: unknown;
  output?: unknown;
  errorText?: string;
}

const json = (value: unknown): string => JSON.stringify(value, null, 2) ?? "";

function ToolView({ part }: { part: ToolPart }) {
  const name = part.type === "dynamic-tool" ? (part.toolName ?? "tool") : part.type.slice("tool-".length);
  const done = part.state === "output-available" || part.state === "output-error";
  return (
    <div className={`tool ${done ? "done" : "running"}`} data-testid="tool" data-tool={name} data-state={part.state}>
      <div className="tool-head">
        <span className="tool-name">{name}</span>
        <span className="tool-state">{part.state.replace(/-/g, " ")}</span>
      </div>
      <div className="tool-label">input</div>
      <pre data-testid="tool-input">{json(part.input)}</pre>
      {part.state === "output-available" && (
        <>
          <div className="tool-label">output</div>
          <pre data-testid="tool-output">{json(part.output)}</pre>
        </>
      )}
      {part.state === "output-error" && <div className="tool-error">{part.errorText}</div>}
    </div>
  );
}

function PartView({ part }: { part: Part }) {
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
    return <ToolView part={part as unknown as ToolPart} />;
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
    return <pre className="data">{json((part as { data?: unknown }).data)}</pre>;
  }
  return null;
}

export function MessageView({ message }: { message: UIMessage }) {
  return (
    <div className={`message ${message.role}`} data-testid="message" data-role={message.role} data-id={message.id}>
      <div className="role">{message.role === "user" ? "You" : "Assistant"}</div>
      <div className="parts">
        {message.parts.map((part, index) => (
          <PartView key={index} part={part} />
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
