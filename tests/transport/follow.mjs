// Follow mode: two devices on one chat, each with its own ChatWorkerTransport and AbstractChat;
// every turn one of them sends shows on the other as it streams, across a continuation run.
import assert from "node:assert/strict";

import { API, echo, last, makeChat, makeTransport, newChatId, runInfo, textOf, waitFor, wordsOf } from "./lib.mjs";

/** A device: its transport, its chat, and a follow that applies updates to the chat. */
function device(chatId) {
  const made = makeTransport("echo");
  const chat = makeChat(chatId, made.transport);
  const followed = { turns: 0 };
  const follow = made.transport.follow(chatId, {
    onUpdate: (update) => {
      chat.messages = update(chat.messages);
    },
    getMessages: () => chat.messages,
    onTurnStart: () => {
      followed.turns += 1;
    },
    onError: (error) => {
      throw error;
    },
  });
  return { ...made, chat, follow, followed };
}

const shown = (chat) => chat.messages.map((m) => `${m.id}|${m.role}|${textOf(m)}`);

async function same(a, b, what) {
  await waitFor(
    () => a.chat.status === "ready" && b.chat.status === "ready" && shown(a.chat).join("\n") === shown(b.chat).join("\n"),
    `${what}: both devices show the same messages`,
    40000,
  );
  const ids = a.chat.messages.map((m) => m.id);
  assert.equal(new Set(ids).size, ids.length, `${what}: every message once`);
}

export const followScenarios = {
  async follow() {
    const chatId = newChatId("follow");
    const a = device(chatId);
    const b = device(chatId); // opened before the chat has any run
    // A sends; B sees the message and the reply while it streams.
    const sending = a.chat.sendMessage({ text: "hello" }, { metadata: { words: 40, delay: 0.03 } });
    await waitFor(() => last(b.chat)?.role === "assistant" && wordsOf(b.chat) > 0, "B to show the reply");
    assert.equal(textOf(b.chat.messages[0]), "hello");
    assert.ok(!textOf(last(b.chat)).endsWith("w39"), "B shows the reply before it is complete");
    await sending;
    await same(a, b, "first turn");
    assert.equal(textOf(last(b.chat)), echo("hello", 0, 40));
    const runId = a.store[chatId].runId;
    assert.equal(b.store[chatId].runId, runId, "B made the chat's run its session");

    // B answers in the same run (its session came with the follow stream: no trigger).
    await b.chat.sendMessage({ text: "from b" });
    await same(a, b, "B's turn");
    assert.equal(textOf(last(a.chat)), echo("from b", 1));
    assert.deepEqual(b.tokenCalls.filter((p) => p === "trigger"), [], "B never started a run");

    // A regenerates: B's reply is replaced, not added.
    await a.chat.regenerate();
    await same(a, b, "regenerate");
    assert.deepEqual(b.chat.messages.map((m) => m.role), ["user", "assistant", "user", "assistant"]);
    assert.equal(textOf(last(b.chat)), echo("from b", 2));

    // The run ends; A's next message continues the chat in a new run, which B follows.
    const token = a.store[chatId].publicAccessToken;
    const canceled = await fetch(`${API}/runs/${runId}/cancel`, { method: "POST", headers: { Authorization: `Bearer ${token}` } });
    assert.equal(canceled.status, 202);
    await waitFor(async () => (await runInfo(runId, token)).status === "canceled", "the run to end");
    await a.chat.sendMessage({ text: "later" });
    const nextRunId = a.store[chatId].runId;
    assert.notEqual(nextRunId, runId, "a continuation run");
    await same(a, b, "continuation");
    assert.equal(textOf(last(b.chat)), echo("later", 0));
    await waitFor(() => b.store[chatId]?.runId === nextRunId, "B to follow the new run");
    // And B's next message goes to that run.
    await b.chat.sendMessage({ text: "b again" });
    await same(a, b, "after the continuation");
    assert.equal(b.store[chatId].runId, nextRunId);
    assert.equal(textOf(last(a.chat)), echo("b again", 1));
    assert.equal(a.chat.messages.length, 8);
    a.follow.close();
    b.follow.close();
    return { chatId, runId, nextRunId, shownByFollow: { a: a.followed.turns, b: b.followed.turns } };
  },
};

// A turn started again after its worker died, as the stream shows it (the test wrote it):
// the follower shows the reply once, built on the message as it was before the turn.
followScenarios.followrestart = async () => {
  const setup = JSON.parse(process.env.SETUP);
  const { chatId, runId, publicAccessToken, before } = setup;
  const { transport } = makeTransport("echo", { sessions: { [chatId]: { runId, publicAccessToken } } });
  const chat = makeChat(chatId, transport);
  let ended = 0;
  let queued = false;
  const follow = transport.follow(chatId, {
    onUpdate: (update) => {
      chat.messages = update(chat.messages);
    },
    getMessages: () => chat.messages,
    onTurnStart: (start) => {
      // A message sent here while the reply streams (shown at once) stays after that reply.
      if (queued || start.turn !== 1) return;
      queued = true;
      chat.messages = [...chat.messages, { id: "q1", role: "user", parts: [{ type: "text", text: "meanwhile" }] }];
    },
    onTurnEnd: () => {
      ended += 1;
    },
  });
  await waitFor(() => ended === 3, "the three turns to end");
  follow.close();
  const shown = chat.messages.map((m) => [m.id, m.role, m.parts.filter((p) => p.type === "text").map((p) => p.text)]);
  assert.deepEqual(shown, [
    ["u1", "user", ["question"]],
    ["m1", "assistant", ["whole answer"]],
    ["u2", "user", ["next"]],
    ["m2", "assistant", ["second answer"]],
    ["q1", "user", ["meanwhile"]],
    ["a2", "assistant", [before, "after"]],
  ]);
  return { chatId };
};
