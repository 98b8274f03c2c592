/** A small Server-Sent Events parser over a fetch body (so requests can carry headers). */

export interface SSEEvent {
  /** The event's `id:` field (the gateway sends the Redis stream entry id). */
  id: string | undefined;
  /** The `data:` lines joined with "\n". */
  data: string;
  /** The `event:` field, "message" when absent. */
  event: string;
}

const LINE_END = /\r\n|\r|\n/;

/** Yield every event of an SSE body until it ends; comments and `retry:` are skipped. */
export async function* parseSSE(body: ReadableStream<Uint8Array>): AsyncGenerator<SSEEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let data: string[] = [];
  let id: string | undefined;
  let event = "";
  let fields = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      for (;;) {
        const match = LINE_END.exec(buffer);
        // A lone "\r" at the end may be the first half of "\r\n": wait for more bytes.
        if (match === null || (!done && match[0] === "\r" && match.index === buffer.length - 1)) {
          break;
        }
        const line = buffer.slice(0, match.index);
        buffer = buffer.slice(match.index + match[0].length);
        if (line === "") {
          if (fields && data.length > 0) {
            yield { id, data: data.join("\n"), event: event || "message" };
          }
          data = [];
          id = undefined;
          event = "";
          fields = false;
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const name = colon === -1 ? line : line.slice(0, colon);
        let value = colon === -1 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        fields = true;
        if (name === "data") data.push(value);
        else if (name === "id" && !value.includes("\0")) id = value;
        else if (name === "event") event = value;
      }
      if (done) return;
    }
  } finally {
    reader.cancel().catch(() => undefined);
  }
}
