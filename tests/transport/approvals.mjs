// Tool approvals through ChatWorkerTransport with the real AI SDK client (AbstractChat +
// addToolApprovalResponse, sending the answer back by itself with
// sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithApprovalResponses), against the demo
// chat task, whose offline demo model calls book_table (needs approval) for "book a table".
// Usage: node approvals.mjs <scenario>. Env: as scenarios.mjs (TOKENS has "demo-chat").
// Prints `RESULT <json>` and exits 0 when the scenario behaved; otherwise says what went wrong.
import assert from "node:assert/strict";
import { lastAssistantMessageIsCompleteWithApprovalResponses } from "ai";

import { API, Chat, errors, last, makeTransport, newChatId, runInfo, textOf, waitFor } from "./lib.mjs";

const TASK = "demo-chat";

function makeChat(id, transport, messages = []) {
  return new Chat({
    id,
    messages,
    transport,
    sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithApprovalResponses,
    onError: (error) => errors.push(`${id}: ${error.message}`),
  });
}

const toolPart = (message) => message?.parts.find((p) => p.type === "tool-book_table");
const roles = (chat) => chat.messages.map((m) => m.role).join(",");

function ready(chat, step) {
  assert.equal(chat.error, undefined, `${step}: ${chat.error?.message}`);
  assert.equal(chat.status, "ready", step);
}

async function askForTable(chat, text) {
  await chat.sendMessage({ text });
  ready(chat, "the request");
  const part = toolPart(last(chat));
  assert.ok(part, `no book_table part in ${JSON.stringify(last(chat).parts)}`);
  assert.equal(part.state, "approval-requested");
  assert.ok(part.approval?.id, "the request carries an approval id");
  return [last(chat), part];
}

async function answer(chat, id, approved, reason) {
  await chat.addToolApprovalResponse({ id, approved, reason });
  const target = approved ? "output-available" : "output-denied";
  await waitFor(
    () => chat.status === "ready" && toolPart(last(chat))?.state === target && textOf(last(chat)),
    `the ${target} reply`,
    30000,
  );
  ready(chat, "the continuation");
}

function sameBubble(chat, asked, expectedRoles = "user,assistant") {
  assert.equal(roles(chat), expectedRoles, "no second assistant message");
  assert.equal(last(chat).id, asked.id, "the answer continues the same assistant message");
}

const scenarios = {
  // Approve: the tool runs, its output and the model's answer continue the same message, in the
  // same run; then the chat goes on normally.
  async approve() {
    const chatId = newChatId("approve");
    const { transport, store } = makeTransport(TASK);
    const chat = makeChat(chatId, transport);
    const [asked, part] = await askForTable(chat, "Book a table for 2 at Luigi's at 8pm");
    const runId = store[chatId].runId;
    await answer(chat, part.approval.id, true);
    sameBubble(chat, asked);
    assert.equal(toolPart(last(chat)).output.booked, true);
    assert.match(textOf(last(chat)), /Done: a table for 2 at Luigi's at 8pm, confirmation DEMO-/);
    assert.equal(store[chatId].runId, runId, "the approval went to the same run");
    await chat.sendMessage({ text: "thanks" });
    ready(chat, "the next message");
    assert.equal(roles(chat), "user,assistant,user,assistant");
    return { chatId, runId, messageId: asked.id };
  },

  async deny() {
    const chatId = newChatId("deny");
    const { transport, store } = makeTransport(TASK);
    const chat = makeChat(chatId, transport);
    const [asked, part] = await askForTable(chat, "Please book a table for four at Chez Paul");
    await answer(chat, part.approval.id, false, "Not tonight");
    sameBubble(chat, asked);
    const denied = toolPart(last(chat));
    assert.equal(denied.approval.approved, false);
    assert.equal(denied.output, undefined);
    assert.match(textOf(last(chat)), /You did not approve the booking \(Not tonight\), so I did not book/);
    return { chatId, runId: store[chatId].runId, messageId: asked.id };
  },

  // A reload while the request waits: a new transport with the stored session and a new Chat
  // with the stored messages; nothing is in flight, and the answer reaches the same run.
  async reload() {
    const chatId = newChatId("reload");
    const first = makeTransport(TASK);
    const tab = makeChat(chatId, first.transport);
    const [asked, part] = await askForTable(tab, "Book a table at Nonna Rosa for 3 at 7pm");
    const messages = structuredClone(tab.messages);
    const again = makeTransport(TASK, { sessions: { ...first.store } });
    const chat = makeChat(chatId, again.transport, messages);
    await chat.resumeStream();
    ready(chat, "the resume (nothing in flight)");
    assert.equal(toolPart(last(chat)).state, "approval-requested");
    await answer(chat, part.approval.id, true);
    sameBubble(chat, asked);
    assert.match(textOf(last(chat)), /Done: a table for 3 at Nonna Rosa at 7pm/);
    assert.equal(again.store[chatId].runId, first.store[chatId].runId, "the same run answered");
    assert.deepEqual(again.tokenCalls, [], "no new run, no token asked for");
    return { chatId, runId: first.store[chatId].runId, messageId: asked.id };
  },

  // A reload while the approved answer streams: a new transport with the stored session and a
  // new Chat with the messages the chat's history stored when the turn started.
  async reloadmid() {
    const chatId = newChatId("reloadmid");
    const first = makeTransport(TASK);
    const tab = makeChat(chatId, first.transport);
    const [asked, part] = await askForTable(tab, "Book a table at Slow Lane for 2 at 8pm");
    await tab.addToolApprovalResponse({ id: part.approval.id, approved: true });
    await waitFor(() => textOf(last(tab)).split(/\s+/).length > 5, "the answer to stream");
    const stored = (await (await fetch(`${process.env.BASE_URL}/api/demo/chats/${chatId}`)).json()).messages;
    assert.equal(toolPart(stored[stored.length - 1]).state, "approval-responded");
    const again = makeTransport(TASK, { sessions: { ...first.store } });
    const chat = makeChat(chatId, again.transport, stored);
    await chat.resumeStream();
    ready(chat, "the resumed answer");
    sameBubble(chat, asked);
    assert.equal(toolPart(last(chat)).state, "output-available");
    await waitFor(() => tab.status === "ready", "the first tab's answer");
    assert.equal(textOf(last(chat)), textOf(last(tab)));
    assert.match(textOf(last(chat)), /^b1 b2 .* b60\.$/);
    return { chatId, messageId: asked.id };
  },

  // The run ended while the request waited: the answer starts a continuation run with the whole
  // history, which executes the approved call and answers in the same message.
  async ended() {
    const chatId = newChatId("ended");
    const { transport, store } = makeTransport(TASK);
    const chat = makeChat(chatId, transport);
    const [asked, part] = await askForTable(chat, "Book a table for 2 at Luigi's at 9pm");
    const { runId, publicAccessToken } = store[chatId];
    const cancel = await fetch(`${API}/runs/${runId}/cancel`, {
      method: "POST",
      headers: { Authorization: `Bearer ${publicAccessToken}`, "Content-Type": "application/json" },
      body: "{}",
    });
    assert.equal(cancel.status, 202);
    const ended = new Set(["completed", "canceled", "failed"]);
    await waitFor(async () => ended.has((await runInfo(runId, publicAccessToken)).status), "the run to end");
    await answer(chat, part.approval.id, true);
    sameBubble(chat, asked);
    assert.match(textOf(last(chat)), /Done: a table for 2 at Luigi's at 9pm/);
    assert.notEqual(store[chatId].runId, runId, "a continuation run answered");
    return { chatId, firstRun: runId, secondRun: store[chatId].runId, messageId: asked.id };
  },
};

async function main() {
  const name = process.argv[2];
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
