// Drives chatworker's gateway with the real AI SDK client (AbstractChat) over ChatWorkerTransport.
// Usage: node scenarios.mjs <scenario>. Env: BASE_URL, TOKENS ({task: trigger token}),
// TOKEN_SECRET / TOKEN_ISSUER (to forge an expired run token), SETUP (a run the test prepared).
// Prints `RESULT <json>` and exits 0 when the scenario behaved; otherwise prints what went
// wrong and exits 1.
import assert from "node:assert/strict";

import {
  API,
  drain,
  echo,
  errors,
  expiredRunToken,
  flakyFetch,
  last,
  makeChat,
  makeTransport,
  newChatId,
  runInfo,
  sleep,
  textOf,
  waitFor,
  wordsOf,
} from "./lib.mjs";
import { followScenarios } from "./follow.mjs";

function ready(chat, step) {
  assert.equal(chat.error, undefined, `${step}: ${chat.error?.message}`);
  assert.equal(chat.status, "ready", step);
}

const roles = (chat) => chat.messages.map((m) => m.role).join(",");

const scenarios = {
  ...followScenarios,
  // Two turns in one run, client data merged with per-call metadata, then a regenerate.
  async multiturn() {
    const chatId = newChatId("multi");
    const { transport, tokenCalls, store } = makeTransport("echo", { clientData: { words: 2 } });
    const chat = makeChat(chatId, transport);
    await chat.sendMessage({ text: "hello" });
    ready(chat, "turn 0");
    assert.equal(textOf(last(chat)), echo("hello", 0, 2));
    const runId = store[chatId].runId;
    const firstEventId = store[chatId].lastEventId;
    assert.ok(firstEventId, "the session has a lastEventId after the first turn");

    await chat.sendMessage({ text: "again" }, { metadata: { words: 3 } });
    ready(chat, "turn 1");
    assert.equal(textOf(last(chat)), echo("again", 1, 3));
    assert.equal(store[chatId].runId, runId, "the second message went to the same run");

    await chat.regenerate();
    ready(chat, "regenerate");
    assert.equal(roles(chat), "user,assistant,user,assistant");
    assert.equal(textOf(last(chat)), echo("again", 2, 2));
    assert.equal(store[chatId].runId, runId);
    assert.deepEqual(tokenCalls, ["trigger"], "the trigger token is asked for once");
    return { chatId, runId };
  },

  // Stop mid-reply: useChat's stop reaches the run, the partial stays, the chat goes on.
  async stop() {
    const chatId = newChatId("stop");
    const { transport, store } = makeTransport("echo", { clientData: { words: 120, delay: 0.04 } });
    const chat = makeChat(chatId, transport);
    const pending = chat.sendMessage({ text: "long" });
    await waitFor(() => wordsOf(chat) >= 6, "the reply to start");
    const stoppedAt = Date.now();
    await chat.stop();
    await pending;
    ready(chat, "stopped");
    const partial = textOf(last(chat));
    const runId = store[chatId].runId;
    await waitFor(async () => !(await runInfo(runId, store[chatId].publicAccessToken)).isStreaming, "the run to stop", 5000);
    const stopMs = Date.now() - stoppedAt;
    await sleep(300);
    assert.equal(textOf(last(chat)), partial, "nothing arrives after stop");
    assert.ok(!partial.includes("w119"), "the reply was cut short");

    await chat.sendMessage({ text: "after" }, { metadata: { words: 0, delay: 0 } });
    ready(chat, "after stop");
    assert.equal(textOf(last(chat)), echo("after", 1));
    assert.equal(store[chatId].runId, runId);
    return { chatId, runId, stopMs, partialWords: partial.split(" ").length };
  },

  // A reload mid-reply: a new chat object with the restored session replays the turn in flight
  // from its start (no duplicated text), then a resume with nothing in flight returns at once.
  async resume() {
    const chatId = newChatId("resume");
    const words = 50;
    const first = makeTransport("echo", { clientData: { words, delay: 0.03 } });
    const chat = makeChat(chatId, first.transport);
    void chat.sendMessage({ text: "story" });
    await waitFor(() => wordsOf(chat) >= 8, "a partial reply");
    // The page is reloaded: what it persisted is the messages so far and the session.
    const persisted = structuredClone(chat.messages);
    const sessions = structuredClone(first.store);
    first.transport.close();

    const second = makeTransport("echo", { sessions });
    const reloaded = makeChat(chatId, second.transport, persisted);
    await reloaded.resumeStream();
    ready(reloaded, "resumed");
    assert.equal(roles(reloaded), "user,assistant");
    assert.equal(textOf(last(reloaded)), echo("story", 0, words));
    assert.equal(last(reloaded).id, persisted[1].id, "the replayed message kept its id");
    const textParts = last(reloaded).parts.filter((p) => p.type === "text");
    assert.equal(textParts.length, 1, "one text part, not a replayed duplicate");

    // Another reload once the reply is complete: nothing in flight, so resume returns at once.
    const third = makeTransport("echo", { sessions: structuredClone(second.store) });
    const idle = makeChat(chatId, third.transport, structuredClone(reloaded.messages));
    const started = Date.now();
    await idle.resumeStream();
    const idleMs = Date.now() - started;
    ready(idle, "idle resume");
    assert.ok(idleMs < 3000, `resume with nothing in flight took ${idleMs} ms`);
    assert.deepEqual(idle.messages, reloaded.messages);
    assert.deepEqual(third.tokenCalls, []);

    // Next message through the restored session: the same run answers turn 1.
    await idle.sendMessage({ text: "more" });
    ready(idle, "after resume");
    assert.equal(textOf(last(idle)), echo("more", 1));
    assert.equal(third.store[chatId].runId, sessions[chatId].runId);
    return { chatId, idleMs };
  },

  // After a reload, stop works on the reconnected stream.
  async resumestop() {
    const chatId = newChatId("rstop");
    const first = makeTransport("echo", { clientData: { words: 150, delay: 0.04 } });
    const chat = makeChat(chatId, first.transport);
    void chat.sendMessage({ text: "long" });
    await waitFor(() => wordsOf(chat) >= 4, "a partial reply");
    const persisted = structuredClone(chat.messages.slice(0, 1));
    const sessions = structuredClone(first.store);
    first.transport.close();

    const second = makeTransport("echo", { sessions });
    const reloaded = makeChat(chatId, second.transport, persisted);
    const resuming = reloaded.resumeStream();
    await waitFor(() => wordsOf(reloaded) >= 10, "the replayed reply");
    await reloaded.stop();
    await resuming;
    ready(reloaded, "stopped after resume");
    const runId = sessions[chatId].runId;
    await waitFor(async () => !(await runInfo(runId, sessions[chatId].publicAccessToken)).isStreaming, "the stop", 5000);
    assert.ok(!textOf(last(reloaded)).includes("w149"));
    return { chatId, runId };
  },

  // The run ended (turn timeout): the next message continues the chat in a new run.
  async continuation() {
    const chatId = newChatId("cont");
    const { transport, tokenCalls, store } = makeTransport("brief");
    const chat = makeChat(chatId, transport);
    await chat.sendMessage({ text: "one" });
    ready(chat, "turn 0");
    assert.equal(textOf(last(chat)), echo("one", 0));
    const firstRun = store[chatId].runId;
    const token = store[chatId].publicAccessToken;
    await waitFor(async () => (await runInfo(firstRun, token)).status === "completed", "the run to end", 15000);

    await chat.sendMessage({ text: "two" });
    ready(chat, "continuation");
    assert.equal(textOf(last(chat)), echo("two", 0), "a new run answers its turn 0");
    const secondRun = store[chatId].runId;
    assert.notEqual(secondRun, firstRun);
    assert.equal(roles(chat), "user,assistant,user,assistant");
    assert.deepEqual(tokenCalls, ["trigger", "trigger"]);
    return { chatId, firstRun, secondRun };
  },

  // An expired run token is renewed with the trigger token: same run, no duplicate.
  async renewal() {
    const chatId = newChatId("renew");
    const first = makeTransport("echo");
    const chat = makeChat(chatId, first.transport);
    await chat.sendMessage({ text: "first" });
    ready(chat, "turn 0");
    const { runId, lastEventId } = first.store[chatId];

    const expired = { [chatId]: { runId, lastEventId, publicAccessToken: expiredRunToken(runId) } };
    const second = makeTransport("echo", { sessions: expired });
    const later = makeChat(chatId, second.transport, structuredClone(chat.messages));
    await later.resumeStream(); // GET /runs with the expired token: renewed, nothing in flight
    ready(later, "resume with an expired token");
    await later.sendMessage({ text: "second" });
    ready(later, "turn 1");
    assert.equal(textOf(last(later)), echo("second", 1));
    assert.equal(second.store[chatId].runId, runId, "the same run answered");
    assert.deepEqual(second.tokenCalls, ["renew"], "renewed once, never triggered");
    assert.notEqual(second.store[chatId].publicAccessToken, expired[chatId].publicAccessToken);
    return { chatId, runId };
  },

  // Three messages in a row, the first still streaming: each stream gets its own answer, in order.
  async quick() {
    const chatId = newChatId("quick");
    const { transport, tokenCalls, store } = makeTransport("echo", { clientData: { words: 6, delay: 0.03 } });
    const user = (text) => ({ id: `u-${text}`, role: "user", parts: [{ type: "text", text }] });
    const history = [];
    const sends = ["m1", "m2", "m3"].map((text) => {
      history.push(user(text));
      return transport.sendMessages({
        chatId,
        trigger: "submit-message",
        messageId: undefined,
        messages: [...history],
        abortSignal: undefined,
      });
    });
    const streams = await Promise.all(sends);
    const replies = await Promise.all(streams.map(drain));
    assert.deepEqual(
      replies.map((r) => r.text),
      [echo("m1", 0, 6), echo("m2", 1, 6), echo("m3", 2, 6)],
    );
    for (const reply of replies) {
      assert.equal(reply.types[0], "start");
      assert.equal(reply.types.at(-1), "finish");
      assert.ok(!reply.types.some((type) => type.startsWith("__")), "no control chunks");
    }
    assert.deepEqual(tokenCalls, ["trigger"]);
    return { chatId, runId: store[chatId].runId };
  },

  // Dropped connections and idle stream timeouts: the reply resumes from the last event read,
  // nothing lost and nothing repeated.
  async network() {
    const chatId = newChatId("net");
    const { fetch, stats } = flakyFetch({ cuts: 2, events: 8 });
    const { transport, store } = makeTransport("echo", { fetch, clientData: { words: 30, delay: 0.02 } });
    const chat = makeChat(chatId, transport);
    await chat.sendMessage({ text: "flaky" });
    ready(chat, "after dropped connections");
    assert.equal(textOf(last(chat)), echo("flaky", 0, 30));
    assert.equal(stats.cut, 2);
    assert.ok(stats.streams >= 3, `reconnected (${stats.streams} connections)`);

    // The gateway closes a stream after 1 s without output; the answer has 1.25 s gaps.
    const counted = flakyFetch({ cuts: 0, events: 0 });
    const idle = makeTransport("echo", {
      sessions: structuredClone(store),
      streamTimeoutSeconds: 1,
      fetch: counted.fetch,
    });
    const slow = makeChat(chatId, idle.transport, structuredClone(chat.messages));
    await slow.sendMessage({ text: "gaps" }, { metadata: { words: 0, delay: 1.25 } });
    ready(slow, "after idle timeouts");
    assert.equal(textOf(last(slow)), echo("gaps", 1));
    assert.ok(counted.stats.streams >= 3, `reopened idle streams (${counted.stats.streams})`);
    return { chatId, streams: stats.streams, idleStreams: counted.stats.streams };
  },

  // The run's stream was trimmed past the session's position (SETUP, prepared by the test): a
  // reload while a long reply streams is told so at once (not a gap, not a hang); the next
  // message, whose turn starts after the trimmed part, is answered as usual.
  async trimmed() {
    const { chatId, runId, publicAccessToken, lastEventId } = JSON.parse(process.env.SETUP);
    const user = (text) => ({ id: `u-${text}`, role: "user", parts: [{ type: "text", text }] });
    const answer = { id: "a-one", role: "assistant", parts: [{ type: "text", text: echo("one", 0) }] };
    const history = [user("one"), answer, user("long")];
    const sessions = { [chatId]: { runId, publicAccessToken, lastEventId } };

    const page = makeTransport("echo", { sessions: structuredClone(sessions) });
    const reloaded = makeChat(chatId, page.transport, structuredClone(history));
    void reloaded.resumeStream();
    await waitFor(() => reloaded.status === "error", "the resume to fail");
    assert.match(reloaded.error.message, /trimmed/);
    assert.equal(roles(reloaded), "user,assistant,user", "nothing partial was shown");
    assert.equal(errors.length, 1);
    errors.length = 0;
    // The page stops the long reply and waits until the run is idle again.
    assert.equal(await page.transport.stopGeneration(chatId), true);
    await waitFor(async () => !(await runInfo(runId, publicAccessToken)).isStreaming, "the stop", 10000);

    // Another reload: nothing in flight; the next message goes to the same run, and its reply
    // is read although the session's position is still before the trimmed part.
    const again = makeTransport("echo", { sessions: structuredClone(sessions) });
    const chat = makeChat(chatId, again.transport, structuredClone(history));
    await chat.resumeStream();
    ready(chat, "resume with nothing in flight");
    await chat.sendMessage({ text: "three" });
    ready(chat, "after the trimmed stream");
    assert.equal(textOf(last(chat)), echo("three", 2));
    assert.equal(again.store[chatId].runId, runId);
    assert.notEqual(again.store[chatId].lastEventId, lastEventId, "the session moved on");
    return { chatId, runId };
  },

  // preload starts the run before the first message; the message goes to that run.
  async preload() {
    const chatId = newChatId("preload");
    const { transport, tokenCalls, store } = makeTransport("echo");
    await transport.preload(chatId);
    await transport.preload(chatId); // a second call does nothing
    const runId = store[chatId].runId;
    const chat = makeChat(chatId, transport);
    await chat.sendMessage({ text: "hi" });
    ready(chat, "after preload");
    assert.match(textOf(last(chat)), /^echo: hi \(turn \d\)$/);
    assert.equal(store[chatId].runId, runId);
    assert.deepEqual(tokenCalls, ["trigger"]);
    return { chatId, runId };
  },

  // The worker answering is killed mid-reply (the test does it when told STREAMING, then says GO
  // once another worker started the turn again): the open chat shows the recovered reply once,
  // in the message it was streaming into, and a page reloaded during the restart replays it once.
  async recovered() {
    const chatId = newChatId("recovered");
    const words = 60;
    const first = makeTransport("echo", { clientData: { words, delay: 0.05 } });
    const chat = makeChat(chatId, first.transport);
    let most = 0;
    const watch = setInterval(() => {
      most = Math.max(most, chat.messages.filter((m) => m.role === "assistant").length);
    }, 2);
    const sending = chat.sendMessage({ text: "recover" });
    await waitFor(() => wordsOf(chat) >= 10, "a partial reply");
    const partialId = last(chat).id;
    console.log(`STREAMING ${JSON.stringify({ runId: first.store[chatId].runId })}`);
    await nextLine("GO", 60_000);
    // Reloaded now, while the turn is answered again: it replays from the lost attempt on.
    const persisted = structuredClone(chat.messages);
    const second = makeTransport("echo", { sessions: structuredClone(first.store) });
    const reloaded = makeChat(chatId, second.transport, persisted);
    await reloaded.resumeStream();
    await sending;
    clearInterval(watch);
    const full = echo("recover", 0, words);
    for (const [name, view] of [["open chat", chat], ["reloaded chat", reloaded]]) {
      ready(view, name);
      assert.equal(roles(view), "user,assistant", `${name}: one reply`);
      assert.equal(textOf(last(view)), full, `${name}: the reply once, whole`);
      const texts = last(view).parts.filter((p) => p.type === "text");
      assert.equal(texts.length, 1, `${name}: one text part, no lost partial`);
      assert.equal(last(view).id, partialId, `${name}: the reply kept its message id`);
    }
    assert.equal(most, 1, "never a second assistant message on the open chat");
    const steps = last(chat).parts.filter((p) => p.type === "step-start").length;
    return { chatId, runId: first.store[chatId].runId, messageId: partialId, steps };
  },

  // Two tabs of one chat: the second steers a message into the first one's tool loop, and
  // its own view is the rest of that reply; then a `reject` while a reply streams fails with
  // `busy` without starting a new run (the chat and model were prepared by the test: SETUP).
  async steer() {
    const { chatId } = JSON.parse(process.env.SETUP);
    const first = makeTransport("policy-steer");
    const asker = makeChat(chatId, first.transport);
    const asking = asker.sendMessage({ text: `plan ${chatId}` });
    await waitFor(() => last(asker)?.parts.some((p) => p.type === "tool-lookup"), "the tool call");
    const second = makeTransport("policy-steer", { sessions: { ...first.store }, whileStreaming: "steer" });
    const steerer = makeChat(chatId, second.transport);
    await steerer.sendMessage({ text: "also the moon" });
    await asking;
    ready(asker, "asker");
    ready(steerer, "steerer");
    const reply = last(asker);
    assert.deepEqual(reply.parts.map((p) => p.type),
      ["step-start", "tool-lookup", "steering-message", "step-start", "text"]);
    assert.equal(textOf(reply), `saw: plan ${chatId} | also the moon`);
    const rest = last(steerer);
    assert.deepEqual(rest.parts.map((p) => p.type), ["steering-message", "step-start", "text"]);
    assert.equal(rest.parts[0].id, steerer.messages[0].id);
    assert.equal(textOf(rest), textOf(reply));
    const runId = first.store[chatId].runId;

    const telling = asker.sendMessage({ text: `tell ${chatId}` });
    await waitFor(() => last(asker)?.role === "assistant" && textOf(last(asker)).length > 0 &&
      asker.messages.length === 4, "the next reply");
    const rejecter = makeChat(chatId, makeTransport("policy-steer", { sessions: { ...first.store } }).transport);
    await rejecter.sendMessage({ text: "too soon" }, { body: { whileStreaming: "reject" } });
    assert.equal(rejecter.status, "error");
    assert.equal(rejecter.error?.code, "busy");
    errors.splice(errors.findIndex((e) => e.includes("reject")), 1);
    await telling;
    ready(asker, "after the reject");
    assert.equal(first.store[chatId].runId, runId, "no new run was started");
    return { chatId, runId };
  },
};

/** Wait for `expected` on a line of stdin (what the test tells the scenario). */
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
  const name = process.argv[2];
  const scenario = scenarios[name];
  if (!scenario) throw new Error(`unknown scenario ${name}; known: ${Object.keys(scenarios).join(", ")}`);
  const result = await scenario();
  assert.deepEqual(errors, [], "no errors reported to onError");
  console.log(`RESULT ${JSON.stringify({ scenario: name, api: API, ...result })}`);
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error("FAILED:", error?.stack ?? error);
    console.error("errors reported to onError:", errors);
    process.exit(1);
  },
);
