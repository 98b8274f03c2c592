/**
 * Replaying a turn that continues a message the page already shows (an approval's answer).
 *
 * After `addToolApprovalResponse` the next turn continues the same assistant message: its
 * `start` carries that message's id and its first chunks are the outcomes of the answered calls,
 * which refer to tool parts of the earlier turn. useChat resets its message on the first `start`
 * of a replayed turn (`resumeStreamIsReplay`), and would then fail on those outcomes ("no tool
 * invocation found"). On a replay the `start` of such a turn is left out: useChat goes on from
 * the message as the page's history has it (same id, tool part `approval-responded`).
 */

import type { UIMessageChunk } from "ai";

/** Chunk types that, first after `start`, show that a turn continues an earlier tool call. */
const CONTINUING = new Set(["tool-output-available", "tool-output-error", "tool-output-denied", "tool-approval-response"]);

export class ContinuedStart {
  private held: UIMessageChunk | undefined;
  private decided = false;
  /** The turn continues a message: every `start` of it (a restarted attempt's too) is left out. */
  private continues = false;

  /** The chunks to pass on now for `chunk`. */
  chunk(chunk: UIMessageChunk): UIMessageChunk[] {
    if (this.decided) return this.continues && chunk.type === "start" ? [] : [chunk];
    if (this.held === undefined) {
      if (chunk.type === "start") {
        this.held = chunk;
        return [];
      }
      this.decided = true;
      return [chunk];
    }
    this.decided = true;
    const held = this.held;
    this.held = undefined;
    this.continues = CONTINUING.has(chunk.type);
    return this.continues ? [chunk] : [held, chunk];
  }

  /** The turn ends: a `start` still held goes out. */
  release(): UIMessageChunk[] {
    const held = this.held;
    this.held = undefined;
    this.decided = true;
    return held === undefined ? [] : [held];
  }
}
