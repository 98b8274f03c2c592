// Parse UI message streams (SSE files) with the AI SDK's own parser and schema, and assemble
// each into the final UIMessage with the SDK's readUIMessageStream.
//
// usage: node assemble.mjs manifest.json
//   manifest: [{"name": "...", "file": "path/to/stream.sse"}, ...]
// prints: {"<name>": {"violations": [...], "errors": [...], "chunks": N, "message": {...},
//           "history": {"valid": true | "why not", "model": [model messages] | null}}}
// where "history" is the SDK's validateUIMessages and convertToModelMessages of the message.

import { readFile } from "node:fs/promises";
import {
  convertToModelMessages,
  parseJsonEventStream,
  readUIMessageStream,
  uiMessageChunkSchema,
  validateUIMessages,
} from "ai";

function bytesStream(bytes) {
  // deliver the body in small pieces, as a network would, to exercise the SSE parser
  const size = 37;
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.length) {
        controller.close();
        return;
      }
      controller.enqueue(bytes.subarray(offset, offset + size));
      offset += size;
    },
  });
}

async function check(file) {
  const bytes = new Uint8Array(await readFile(file));
  const violations = [];
  const chunks = [];
  const parsed = parseJsonEventStream({ stream: bytesStream(bytes), schema: uiMessageChunkSchema });
  for await (const result of parsed) {
    if (result.success) {
      chunks.push(result.value);
    } else {
      violations.push({ index: chunks.length + violations.length, error: String(result.error) });
    }
  }
  const errors = [];
  const source = new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(chunk);
      controller.close();
    },
  });
  let message = null;
  const messages = readUIMessageStream({
    stream: source,
    onError: (error) => errors.push({ name: error?.name ?? "Error", message: String(error?.message ?? error) }),
  });
  for await (const snapshot of messages) {
    message = snapshot;
  }
  return { violations, errors, chunks: chunks.length, message, history: await history(message) };
}

// The assembled message as a chat history the SDK validates and converts for the next call.
async function history(message) {
  if (message == null) return { valid: "no message", model: null };
  const messages = [{ id: "user-1", role: "user", parts: [{ type: "text", text: "hi" }] }, message];
  try {
    await validateUIMessages({ messages });
  } catch (error) {
    return { valid: String(error?.message ?? error), model: null };
  }
  return { valid: true, model: await convertToModelMessages(messages) };
}

const manifest = JSON.parse(await readFile(process.argv[2], "utf8"));
const report = {};
for (const entry of manifest) {
  report[entry.name] = await check(entry.file);
}
process.stdout.write(JSON.stringify(report));
