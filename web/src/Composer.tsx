/**
 * The composer. While a reply streams (here or from another tab or device) a message can still
 * be sent: the control beside the input says what it does to that reply, and travels with the
 * message as its `whileStreaming` wire field: `queue` (answered after it), `interrupt` (the reply
 * stops and this message is answered now) or `steer` (it joins the reply at its next step).
 */

import { useState, type FormEvent } from "react";

export type WhileStreaming = "queue" | "interrupt" | "steer";

const CHOICES: { value: WhileStreaming; label: string }[] = [
  { value: "queue", label: "Queue" },
  { value: "interrupt", label: "Interrupt" },
  { value: "steer", label: "Steer" },
];

interface ComposerProps {
  /** A reply is streaming: a message sent now goes with the chosen policy. */
  streaming: boolean;
  /** Send `text`; `policy` is set when a reply is streaming. Resolves false when it failed. */
  onSend: (text: string, policy: WhileStreaming | undefined) => Promise<boolean> | void;
}

export function Composer({ streaming, onSend }: ComposerProps) {
  const [input, setInput] = useState("");
  const [policy, setPolicy] = useState<WhileStreaming>("queue");

  function submit(event: FormEvent): void {
    event.preventDefault();
    const text = input.trim();
    if (!text) return;
    setInput("");
    const sent = onSend(text, streaming ? policy : undefined);
    if (sent) void sent.then((ok) => ok || setInput(text));
  }

  return (
    <form className="composer" onSubmit={submit}>
      <input
        data-testid="composer-input"
        value={input}
        onChange={(event) => setInput(event.target.value)}
        placeholder={streaming ? "Send now: queue it, interrupt the reply, or steer it" : "Send a message"}
        autoFocus
      />
      {streaming && (
        <select
          data-testid="while-streaming"
          aria-label="While the reply streams"
          value={policy}
          onChange={(event) => setPolicy(event.target.value as WhileStreaming)}
        >
          {CHOICES.map((choice) => (
            <option key={choice.value} value={choice.value}>
              {choice.label}
            </option>
          ))}
        </select>
      )}
      <button type="submit" data-testid="send" disabled={!input.trim()}>
        Send
      </button>
    </form>
  );
}
