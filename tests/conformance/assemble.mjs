// Parse UI message streams (SSE files) with the AI SDK's own parser and schema, and assemble
// each into the final UIMessage with the SDK's readUIMessageStream.
//
// usage: node assemble.mjs manifest.json
//   manifest: [{"name": "...", "file": "path/to/stream.sse"}, ...]
// prints: {"<name>": {"violations": [...], "errors": [...], "chunks": N, "message": {...}}}

import { readFile } from "node:fs/promises";
import { parseJsonEventStream, readUIMessageStream, uiMessageChunkSchema } from "ai";

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
  return { violations, errors, chunks: chunks.length, message };
}

const manifest = JSON.parse(await readFile(process.argv[2], "utf8"));
const report = {};
for (const entry of manifest) {
  report[entry.name] = await check(entry.file);
}
process.stdout.write(JSON.stringify(report));
