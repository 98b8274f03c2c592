// The worker answering a /ui chat is killed mid-reply; the stock client must show the recovered
// reply once. Drives AbstractChat + DefaultChatTransport (the real AI SDK client).
// Env: BASE_URL, TOKEN (a multiple-use trigger token for the echo task). Protocol with the test:
// prints `STREAMING {chatId}` once a partial reply shows, then waits for `GO` on stdin (the test
// killed the worker and another one started the turn again); prints `RESULT {...}` and exits 0
// when both the open chat and one reconnected during the restart show the reply once.
import assert from "node:assert/strict";
import { AbstractChat, DefaultChatTransport } from "ai";

const { BASE_URL, TOKEN } = process.env;
const api = `${BASE_URL}/api/chat/ui/echo`;
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
    this.messages = [...this.messages.slice(0, index), this.snapshot(message), ...this.messages.slice(index + 1)];
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
const roles = (chat) => chat.messages.map((m) => m.role).join(",");
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(predicate, what, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function nextLine(expected, timeoutMs) {
  return new Promise((resolve, reject) => {
    let buffer = "";
    const timer = setTimeout(() => reject(new Error(`no ${expected} on stdin`)), timeoutMs);
    const onData = (data) => {
      buffer += data.toString();
      if (buffer.split("\n").includes(expected)) {
        clearTimeout(timer);
        process.stdin.off("data", onData);
        process.stdin.pause();
        resolve();
      }
    };
    process.stdin.on("data", onData);
  });
}

async function main() {
  const chatId = `aisdk-recovered-${Date.now()}`;
  const words = 60;
  const chat = makeChat(chatId);
  let most = 0;
  const watch = setInterval(() => {
    most = Math.max(most, chat.messages.filter((m) => m.role === "assistant").length);
  }, 2);
  const slow = { body: { metadata: { delay: 0.05, words } } };
  const sending = chat.sendMessage({ text: "recover" }, slow);
  await waitFor(() => last(chat)?.role === "assistant" && textOf(last(chat)).includes("w8"), "a partial reply");
  const partialId = last(chat).id;
  console.log(`STREAMING ${JSON.stringify({ chatId })}`);
  await nextLine("GO", 60_000);
  // Another tab opens the chat now: it replays the turn in flight.
  const reloaded = makeChat(chatId, structuredClone(chat.messages));
  await reloaded.resumeStream();
  await sending;
  clearInterval(watch);
  const full = `echo: recover (turn 0) ${Array.from({ length: words }, (_, i) => `w${i}`).join(" ")}`;
  for (const [name, view] of [["open chat", chat], ["reconnected chat", reloaded]]) {
    assert.equal(view.error, undefined, `${name}: ${view.error?.message}`);
    assert.equal(view.status, "ready", name);
    assert.equal(roles(view), "user,assistant", `${name}: one reply`);
    assert.equal(textOf(last(view)), full, `${name}: the reply once, whole`);
    assert.equal(last(view).parts.filter((p) => p.type === "text").length, 1, `${name}: no lost partial`);
    assert.equal(last(view).id, partialId, `${name}: the reply kept its message id`);
  }
  assert.equal(most, 1, "never a second assistant message on the open chat");
  assert.deepEqual(errors, []);
  console.log(`RESULT ${JSON.stringify({ chatId, messageId: partialId })}`);
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error("FAILED:", error?.stack ?? error);
    console.error("errors reported to onError:", errors);
    process.exit(1);
  },
);
