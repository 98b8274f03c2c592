// A tool approval with the real AI SDK client against the gateway's /ui routes: the model calls
// a tool that needs approval, the user approves it with addToolApprovalResponse, the chat sends
// itself (sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithApprovalResponses), and the
// answer continues the same assistant message. Then the same with a denial.
// Env: BASE_URL (gateway), TOKEN (a multiple-use trigger token for TASK_ID), TASK_ID, CHAT_ID
// (the scripted model calls `book` for "book <CHAT_ID>" and reports what the tool gave back).
// Prints "OK" and exits 0 when every step behaved; otherwise prints what went wrong and exits 1.
import assert from "node:assert/strict";
import {
  AbstractChat,
  DefaultChatTransport,
  lastAssistantMessageIsCompleteWithApprovalResponses,
} from "ai";

const { BASE_URL, TOKEN, TASK_ID = "approvals", CHAT_ID } = process.env;
const api = `${BASE_URL}/api/chat/ui/${TASK_ID}`;
const headers = { Authorization: `Bearer ${TOKEN}` };

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
const last = (chat) => chat.messages[chat.messages.length - 1];
const textOf = (message) =>
  message.parts.filter((p) => p.type === "text").map((p) => p.text).join("");
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(predicate, what, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function round(chatId, approved, reason) {
  const chat = new Chat({
    id: chatId,
    transport: new DefaultChatTransport({ api, headers }),
    sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithApprovalResponses,
    onError: (error) => errors.push(`${chatId}: ${error.message}`),
  });
  await chat.sendMessage({ text: `book ${chatId}` });
  assert.equal(chat.status, "ready", chat.error?.message);
  const asking = last(chat);
  const tool = asking.parts.find((p) => p.type === "tool-book");
  assert.equal(tool?.state, "approval-requested", JSON.stringify(asking.parts));

  await chat.addToolApprovalResponse({ id: tool.approval.id, approved, reason });
  await waitFor(
    () => chat.status === "ready" && textOf(last(chat)).startsWith("Got book"),
    "the answer after the approval",
  );
  assert.deepEqual(chat.messages.map((m) => m.role), ["user", "assistant"]);
  const answered = last(chat);
  assert.equal(answered.id, asking.id, "the answer continues the same message");
  const done = answered.parts.find((p) => p.type === "tool-book");
  return { state: done.state, approval: done.approval, output: done.output, text: textOf(answered) };
}

async function main() {
  const yes = await round(`${CHAT_ID}-yes`, true);
  assert.equal(yes.state, "output-available");
  assert.equal(yes.approval.approved, true);
  assert.deepEqual(yes.output, { table: 7, people: 2 });
  assert.equal(yes.text, 'Got book: {"table": 7, "people": 2}');

  const no = await round(`${CHAT_ID}-no`, false, "too expensive");
  assert.equal(no.state, "output-denied");
  assert.equal(no.approval.reason, "too expensive");
  assert.equal(no.text, "Got book: too expensive");

  assert.deepEqual(errors, []);
  console.log("OK");
}

main().catch((error) => {
  console.error("FAILED:", error?.stack ?? error);
  console.error("errors reported to onError:", errors);
  process.exit(1);
});
