// Tool approvals through the gateway's /ui routes with the real AI SDK client: AbstractChat +
// DefaultChatTransport + addToolApprovalResponse, sending the answer back by itself with
// sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithApprovalResponses.
// Env: BASE_URL (gateway), TOKEN (a multiple-use trigger token for TASK_ID), TASK_ID (the demo
// chat task, whose offline demo model calls book_table for "book a table"), SCENARIO.
// Prints `RESULT <json>` and exits 0 when every step behaved; otherwise says what went wrong.
import assert from "node:assert/strict";
import {
  AbstractChat,
  DefaultChatTransport,
  lastAssistantMessageIsCompleteWithApprovalResponses,
} from "ai";

const { BASE_URL, TOKEN, TASK_ID = "demo-chat" } = process.env;
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
    sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithApprovalResponses,
    onError: (error) => errors.push(`${id}: ${error.message}`),
  });

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const last = (chat) => chat.messages[chat.messages.length - 1];
const textOf = (message) =>
  message.parts.filter((p) => p.type === "text").map((p) => p.text).join("").trim();
const toolPart = (message) => message.parts.find((p) => p.type === "tool-book_table");

async function waitFor(predicate, what, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function ready(chat, step) {
  assert.equal(chat.error, undefined, `${step}: ${chat.error?.message}`);
  assert.equal(chat.status, "ready", step);
}

/** Ask for a table: the reply ends waiting for approval. Returns [assistant message, tool part]. */
async function askForTable(chat, text) {
  await chat.sendMessage({ text });
  ready(chat, "the request");
  assert.deepEqual(chat.messages.map((m) => m.role), ["user", "assistant"]);
  const part = toolPart(last(chat));
  assert.ok(part, `no book_table part in ${JSON.stringify(last(chat).parts)}`);
  assert.equal(part.state, "approval-requested");
  assert.ok(part.approval?.id, "the request carries an approval id");
  return [last(chat), part];
}

/** Answer, then wait for the continuation the chat sends by itself to finish. */
async function answer(chat, id, approved, reason) {
  await chat.addToolApprovalResponse({ id, approved, reason });
  const target = approved ? "output-available" : "output-denied";
  await waitFor(
    () => chat.status === "ready" && toolPart(last(chat))?.state === target && textOf(last(chat)),
    `the ${target} reply`,
  );
  ready(chat, "the continuation");
}

function sameBubble(chat, asked) {
  assert.deepEqual(chat.messages.map((m) => m.role), ["user", "assistant"], "one assistant message");
  assert.equal(last(chat).id, asked.id, "the answer continues the same assistant message");
}

const scenarios = {
  async approve() {
    const chatId = `ui-approve-${Date.now()}`;
    const chat = makeChat(chatId);
    const [asked, part] = await askForTable(chat, "Book a table for 2 at Luigi's at 8pm");
    assert.deepEqual(part.input, { restaurant: "Luigi's", time: "8pm", people: 2 });
    await answer(chat, part.approval.id, true);
    sameBubble(chat, asked);
    const done = toolPart(last(chat));
    assert.equal(done.output.booked, true);
    assert.match(textOf(last(chat)), /Done: a table for 2 at Luigi's at 8pm, confirmation DEMO-/);
    return { chatId, messageId: asked.id, confirmation: done.output.confirmation };
  },

  async deny() {
    const chatId = `ui-deny-${Date.now()}`;
    const chat = makeChat(chatId);
    const [asked, part] = await askForTable(chat, "Please book a table for four at Chez Anna");
    await answer(chat, part.approval.id, false, "Not tonight");
    sameBubble(chat, asked);
    const denied = toolPart(last(chat));
    assert.equal(denied.output, undefined);
    assert.equal(denied.approval.approved, false);
    assert.match(textOf(last(chat)), /You did not approve the booking \(Not tonight\), so I did not book/);
    return { chatId, messageId: asked.id };
  },

  // The page is reloaded while the request waits: a new Chat from the stored messages (here the
  // first chat's, as a page would load them) resumes nothing, and its answer goes through.
  async reload() {
    const chatId = `ui-reload-${Date.now()}`;
    const first = makeChat(chatId);
    const [asked, part] = await askForTable(first, "Book a table at Nonna Rosa for 3 at 7pm");
    const reloaded = makeChat(chatId, structuredClone(first.messages));
    await reloaded.resumeStream();
    ready(reloaded, "the resume (nothing in flight)");
    assert.equal(toolPart(last(reloaded)).state, "approval-requested");
    await answer(reloaded, part.approval.id, true);
    sameBubble(reloaded, asked);
    assert.match(textOf(last(reloaded)), /Done: a table for 3 at Nonna Rosa at 7pm/);
    return { chatId, messageId: asked.id };
  },

  // The page is reloaded while the approved answer streams: the reconnect replays the turn in
  // flight onto the message as the chat's history stored it when the turn started.
  async reloadmid() {
    const chatId = `ui-reloadmid-${Date.now()}`;
    const chat = makeChat(chatId);
    const [asked, part] = await askForTable(chat, "Book a table at Slow Lane for 2 at 8pm");
    await chat.addToolApprovalResponse({ id: part.approval.id, approved: true });
    await waitFor(() => textOf(last(chat)).split(/\s+/).length > 5, "the answer to stream");
    const response = await fetch(`${BASE_URL}/api/demo/chats/${chatId}`);
    const stored = (await response.json()).messages;
    assert.equal(toolPart(stored[stored.length - 1]).state, "approval-responded");
    const reloaded = makeChat(chatId, stored);
    await reloaded.resumeStream();
    ready(reloaded, "the resumed answer");
    sameBubble(reloaded, asked);
    assert.equal(toolPart(last(reloaded)).state, "output-available");
    await waitFor(() => chat.status === "ready", "the first tab's answer");
    assert.equal(textOf(last(reloaded)), textOf(last(chat)));
    assert.match(textOf(last(reloaded)), /^b1 b2 .* b60\.$/);
    return { chatId, messageId: asked.id };
  },
};

async function main() {
  const name = process.env.SCENARIO ?? process.argv[2];
  const scenario = scenarios[name];
  if (!scenario) throw new Error(`unknown scenario ${name}`);
  const result = await scenario();
  assert.deepEqual(errors, []);
  console.log(`RESULT ${JSON.stringify(result)}`);
}

main().catch((error) => {
  console.error("FAILED:", error?.stack ?? error);
  console.error("errors reported to onError:", errors);
  process.exit(1);
});
