// Steering through /ui with the real AI SDK client (AbstractChat + DefaultChatTransport): while
// one chat's reply runs a tool loop, another client of the same chat sends a message with
// `whileStreaming: "steer"`. Both clients must accept every chunk (`steering-message` included),
// and the history must validate and convert with the steered message as a user message after
// the tool result.
// Env: BASE_URL (gateway), TOKEN (a multiple-use trigger token for TASK_ID), TASK_ID, CHAT_ID.
// Prints "OK" and exits 0 when every step behaved; otherwise prints what went wrong and exits 1.
import assert from "node:assert/strict";
import {
  AbstractChat,
  convertToModelMessages,
  DefaultChatTransport,
  validateUIMessages,
} from "ai";

const { BASE_URL, TOKEN, TASK_ID, CHAT_ID } = process.env;
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
      structuredClone(message),
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
let outcome = null;
const makeChat = (name) =>
  new Chat({
    id: CHAT_ID,
    transport: new DefaultChatTransport({
      api,
      headers,
      fetch: async (url, init) => {
        const response = await fetch(url, init);
        if (name === "steerer") outcome = response.headers.get("x-chatworker-outcome");
        return response;
      },
    }),
    onError: (error) => errors.push(`${name}: ${error.message}`),
  });

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const last = (chat) => chat.messages[chat.messages.length - 1];
const textOf = (message) =>
  message.parts.filter((p) => p.type === "text").map((p) => p.text).join("");

async function main() {
  const asker = makeChat("asker");
  const steerer = makeChat("steerer");
  const asking = asker.sendMessage({ text: `plan ${CHAT_ID}` });
  // The model is calling the tool (and takes a while to finish that step): steer into it.
  const deadline = Date.now() + 20000;
  const calling = () => last(asker)?.parts.some((p) => p.type === "tool-lookup");
  while (!calling()) {
    if (Date.now() > deadline) throw new Error("the reply did not start");
    await sleep(20);
  }
  await steerer.sendMessage(
    { text: "also the moon" },
    { body: { whileStreaming: "steer" } },
  );
  await asking;
  assert.deepEqual(errors, []);
  assert.equal(outcome, "steered");
  assert.equal(asker.status, "ready");
  assert.equal(steerer.status, "ready");

  const reply = last(asker);
  const kinds = reply.parts.map((p) => p.type);
  assert.deepEqual(kinds, ["step-start", "tool-lookup", "steering-message", "step-start", "text"]);
  const steered = reply.parts[2];
  assert.deepEqual(steered.parts, [{ type: "text", text: "also the moon" }]);
  assert.equal(textOf(reply), `saw: plan ${CHAT_ID} | also the moon`);
  // The steering client's own view: the rest of the turn, from its message on.
  const rest = last(steerer);
  assert.deepEqual(rest.parts.map((p) => p.type), ["steering-message", "step-start", "text"]);
  assert.equal(rest.parts[0].id, steered.id);
  assert.equal(textOf(rest), textOf(reply));

  // The history validates, and the steered message is a user message after the tool result.
  await validateUIMessages({ messages: asker.messages });
  const model = await convertToModelMessages(asker.messages);
  assert.deepEqual(model.map((m) => m.role), ["user", "assistant", "tool", "user", "assistant"]);
  assert.deepEqual(model[3].content, [{ type: "text", text: "also the moon" }]);
  console.log("OK");
}

main().catch((error) => {
  console.error("FAILED:", error?.stack ?? error);
  console.error("errors reported to onError:", errors);
  process.exit(1);
});
