/**
 * One tool call: its input, then its output, its error, or (for a tool that needs approval) the
 * request with Approve / Deny buttons and, once answered, what the user decided.
 */

import { useState } from "react";

export interface ToolPart {
  type: string;
  toolName?: string;
  toolCallId: string;
  state: string;
  input?: unknown;
  output?: unknown;
  errorText?: string;
  approval?: { id: string; approved?: boolean; reason?: string; requestReason?: string };
}

/** Answer a tool approval request (`useChat`'s `addToolApprovalResponse`). */
export type ApprovalResponder = (response: { id: string; approved: boolean; reason?: string }) => void;

const json = (value: unknown): string => JSON.stringify(value, null, 2) ?? "";

const STATE_LABELS: Record<string, string> = {
  "input-streaming": "preparing",
  "input-available": "running",
  "approval-requested": "needs your approval",
  "approval-responded": "answered",
  "output-available": "done",
  "output-error": "failed",
  "output-denied": "denied",
};

export function toolName(part: ToolPart): string {
  return part.type === "dynamic-tool" ? (part.toolName ?? "tool") : part.type.slice("tool-".length);
}

function stateLabel(part: ToolPart): string {
  if (part.state === "approval-responded") return part.approval?.approved ? "approved, running" : "denied";
  return STATE_LABELS[part.state] ?? part.state.replace(/-/g, " ");
}

function ApprovalRequest({ part, onRespond }: { part: ToolPart; onRespond?: ApprovalResponder }) {
  const [sent, setSent] = useState(false);
  const id = part.approval?.id;
  function respond(approved: boolean): void {
    if (!id || !onRespond || sent) return;
    setSent(true);
    onRespond({ id, approved });
  }
  return (
    <div className="approval" data-testid="approval">
      <div className="approval-question">
        {onRespond
          ? (part.approval?.requestReason ?? `Allow ${toolName(part)} to run with this input?`)
          : "Not answered: the conversation moved on."}
      </div>
      <div className="approval-buttons">
        <button type="button" className="approve" data-testid="approve" disabled={sent || !onRespond}
          onClick={() => respond(true)}>
          Approve
        </button>
        <button type="button" className="deny" data-testid="deny" disabled={sent || !onRespond}
          onClick={() => respond(false)}>
          Deny
        </button>
      </div>
    </div>
  );
}

function ApprovalOutcome({ part }: { part: ToolPart }) {
  const approved = part.approval?.approved === true;
  if (part.state === "approval-responded") {
    return (
      <div className={`approval-outcome ${approved ? "approved" : "denied"}`} data-testid="approval-outcome">
        {approved ? "Approved: running it…" : "Denied: telling the model…"}
      </div>
    );
  }
  if (part.state === "output-denied") {
    return (
      <div className="approval-outcome denied" data-testid="approval-outcome">
        Denied{part.approval?.reason ? `: ${part.approval.reason}` : "."} It did not run.
      </div>
    );
  }
  if (approved) {
    return (
      <div className="approval-outcome approved" data-testid="approval-outcome">
        Approved.
      </div>
    );
  }
  return null;
}

export function ToolView({ part, onApproval }: { part: ToolPart; onApproval?: ApprovalResponder }) {
  const name = toolName(part);
  const done = part.state === "output-available" || part.state === "output-error";
  const waiting = part.state === "approval-requested";
  const denied = part.state === "output-denied" || (part.state === "approval-responded" && !part.approval?.approved);
  const look = done ? "done" : waiting ? "waiting" : denied ? "denied" : "running";
  return (
    <div className={`tool ${look}`} data-testid="tool" data-tool={name} data-state={part.state}>
      <div className="tool-head">
        <span className="tool-name">{name}</span>
        <span className="tool-state" data-testid="tool-state">
          {stateLabel(part)}
        </span>
      </div>
      <div className="tool-label">input</div>
      <pre data-testid="tool-input">{json(part.input)}</pre>
      {waiting && <ApprovalRequest part={part} onRespond={onApproval} />}
      {part.approval && !waiting && <ApprovalOutcome part={part} />}
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
