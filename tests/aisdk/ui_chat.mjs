// Drives the gateway's /ui routes with the real AI SDK client: AbstractChat + DefaultChatTransport.
// Env: BASE_URL (gateway), TOKEN (a multiple-use trigger token for TASK_ID), TASK_ID (the echo task).
// Prints "OK" and exits 0 when every step behaved; otherwise prints what went wrong and exits 1.
import assert from "node:assert/strict";
import { AbstractChat, DefaultChatTransport } from "ai";

const { BASE_URL, TOKEN, TASK_ID = "echo" } = process.env;
const api = `${BASE_URL}/api/chat/ui/${TASK_ID}`;
const headers = { Authorization: `Bearer ${TOKEN}` };

// A plain ChatState (what @ai-sdk/react's Chat adds on top of AbstractChat, minus React).
class State {
  constructor(messages = []) {
    this.messages = messages;
    this.status = "ready";
    this.error = undefined;
  }
  pushMessage = (message) => {
    this.messages = this.messages.concat(message);
  };
  popMessage = () => {
    this.messages = this.messages.slice(0, -1);
  };
  replaceMessage = (index, message) => {
    this.messages = [
      ...this.messages.slice(0, index),
      this.snapshot(message),
      ...this.messages.slice(index + 1),
    ];
  };
  snapshot = (thing) => structuredClone(thing);
}

class Chat extends AbstractChat {
  constructor({ messages, ...init }) {
    super({ ...init, state: new State(messages) });
  }
}

const errors = [];
const makeChat = (id, messages = []) =>
  new Chat({
    id,
    messages,
    transport: new DefaultChatTransport({ api, headers }),
    onError: (error) => errors.push(`${id}: ${error.message}`),
  });

const textOf = (message) =>
  message.parts
    .filter((p) => p.type === "text")
    .map((p) => p.text)
    .join("")
    .trim();
const last = (chat) => chat.messages[chat.messages.length - 1];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(predicate, what, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function checkReady(chat, step) {
  assert.equal(chat.error, undefined, `${step}: ${chat.error?.message}`);
  assert.equal(chat.status, "ready", step);
}

async function main() {
  const chatId = `aisdk-${Date.now()}`;
  const chat = makeChat(chatId);

  // 1. First turn: no live run for this chat, so the gateway triggers one.
  await chat.sendMessage({ text: "hello" });
  checkReady(chat, "turn 0");
  assert.deepEqual(chat.messages.map((m) => m.role), ["user", "assistant"]);
  assert.equal(textOf(last(chat)), "echo: hello (turn 0)");
  const firstAssistantId = last(chat).id;

  // 2. Second turn goes to the live run (only the new message is sent).
  await chat.sendMessage({ text: "again" });
  checkReady(chat, "turn 1");
  assert.deepEqual(chat.messages.map((m) => m.role), ["user", "assistant", "user", "assistant"]);
  assert.equal(textOf(last(chat)), "echo: again (turn 1)");
  assert.notEqual(last(chat).id, firstAssistantId);

  // 3. Stop from the server side mid-turn: the turn ends early, the chat stays usable.
  const slow = { body: { metadata: { delay: 0.05, words: 200 } } };
  const stopped = chat.sendMessage({ text: "long one" }, slow);
  await waitFor(() => last(chat).role === "assistant" && textOf(last(chat)).includes("w2"), "text");
  const stopResponse = await fetch(`${api}/${chatId}/stop`, { method: "POST", headers });
  assert.equal(stopResponse.status, 202);
  await stopped;
  checkReady(chat, "stopped turn");
  const partial = textOf(last(chat));
  assert.match(partial, /^echo: long one \(turn 2\)/);
  assert.ok(!partial.includes("w199"), "the stopped turn did not stop");

  // 4. A client-side abort leaves the server turn running; the next message still gets
  //    exactly its own answer, not the tail of the aborted one.
  const aborted = chat.sendMessage({ text: "abandoned" }, { body: { metadata: { delay: 0.05, words: 40 } } });
  await waitFor(() => last(chat).role === "assistant" && textOf(last(chat)).includes("abandoned"), "text");
  await chat.stop();
  await aborted;
  await chat.sendMessage({ text: "next" });
  checkReady(chat, "after abort");
  assert.match(textOf(last(chat)), /^echo: next \(turn \d+\)$/);

  // 5. Reconnect: nothing in flight → 204 → nothing changes.
  const idle = makeChat(chatId, structuredClone(chat.messages));
  await idle.resumeStream();
  checkReady(idle, "idle resume");
  assert.equal(idle.messages.length, chat.messages.length);

  // 6. Reconnect mid-turn from another "tab": the turn is replayed from its start.
  const running = chat.sendMessage({ text: "slow" }, { body: { metadata: { delay: 0.05, words: 30 } } });
  await waitFor(() => last(chat).role === "assistant" && textOf(last(chat)).includes("w3"), "text");
  const reloaded = makeChat(chatId, structuredClone(chat.messages.slice(0, -1)));
  await reloaded.resumeStream();
  await running;
  checkReady(chat, "streamed turn");
  checkReady(reloaded, "resumed turn");
  assert.equal(textOf(last(reloaded)), textOf(last(chat)));
  assert.equal(last(reloaded).id, last(chat).id);
  assert.match(textOf(last(chat)), /^echo: slow \(turn \d+\) w0 .* w29$/);

  assert.deepEqual(errors, []);
  console.log("OK");
}

main().catch((error) => {
  console.error("FAILED:", error?.stack ?? error);
  console.error("errors reported to onError:", errors);
  process.exit(1);
});
