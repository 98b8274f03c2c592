// Shared helpers: a plain ChatState for AbstractChat, chat factories over ChatWorkerTransport.
import { createHmac } from "node:crypto";
import { AbstractChat } from "ai";

import { ChatWorkerTransport } from "../../web/transport/dist/index.js";

const { BASE_URL, TOKENS = "{}" } = process.env;
export const API = `${BASE_URL}/api/chat`;
const tokens = JSON.parse(TOKENS);

// What @ai-sdk/react's Chat adds on top of AbstractChat, minus React: a plain ChatState.
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

export class Chat extends AbstractChat {
  constructor({ messages, ...init }) {
    super({ ...init, state: new State(messages) });
  }
}

export const errors = [];

/** A transport for `task` that records its token requests and persists sessions like an app. */
export function makeTransport(task, options = {}) {
  const tokenCalls = [];
  const store = { ...(options.sessions ?? {}) };
  const transport = new ChatWorkerTransport({
    task,
    baseURL: API,
    accessToken: ({ purpose }) => {
      tokenCalls.push(purpose);
      return tokens[task];
    },
    onSessionChange: (chatId, session) => {
      if (session) store[chatId] = session;
      else delete store[chatId];
    },
    ...options,
  });
  return { transport, tokenCalls, store };
}

export function makeChat(id, transport, messages = []) {
  return new Chat({
    id,
    messages,
    transport,
    onError: (error) => errors.push(`${id}: ${error.message}`),
  });
}

export const textOf = (message) =>
  (message?.parts ?? [])
    .filter((part) => part.type === "text")
    .map((part) => part.text)
    .join("")
    .trim();
export const last = (chat) => chat.messages[chat.messages.length - 1];
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
export const newChatId = (name) => `tr-${name}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 7)}`;

export async function waitFor(predicate, what, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Words of the assistant's reply so far. */
export const wordsOf = (chat) => (last(chat)?.role === "assistant" ? textOf(last(chat)).split(/\s+/).length : 0);

/** The echo tasks' reply: `echo: <text> (turn N) w0 w1 ...`. */
export function echo(text, turn, words = 0) {
  const tail = Array.from({ length: words }, (_, i) => `w${i}`).join(" ");
  return `echo: ${text} (turn ${turn})${tail ? ` ${tail}` : ""}`;
}

export async function runInfo(runId, token) {
  const response = await fetch(`${API}/runs/${runId}`, { headers: { Authorization: `Bearer ${token}` } });
  return response.json();
}

/** An HS256 run token that expired a minute ago (signed with the gateway's secret). */
export function expiredRunToken(runId) {
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const head = encode({ alg: "HS256", typ: "JWT" });
  const body = encode({
    iss: process.env.TOKEN_ISSUER,
    iat: now - 3600,
    exp: now - 60,
    scopes: [`read:runs:${runId}`, `write:inputStreams:${runId}`],
  });
  const signature = createHmac("sha256", process.env.TOKEN_SECRET).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${signature}`;
}

/** Read a chunk stream to its end; returns the text of its text-delta chunks and the types. */
export async function drain(stream) {
  const types = [];
  let text = "";
  for await (const chunk of stream) {
    types.push(chunk.type);
    if (chunk.type === "text-delta") text += chunk.delta;
  }
  return { text: text.trim(), types };
}

/**
 * A fetch whose first `cuts` stream connections fail like a dropped network after `events`
 * SSE events; counts stream connections in `stats.streams`.
 */
export function flakyFetch({ cuts, events }) {
  const stats = { streams: 0, cut: 0 };
  const flaky = async (input, init) => {
    const response = await fetch(input, init);
    if (!String(input).includes("/stream")) return response;
    stats.streams += 1;
    if (stats.cut >= cuts || !response.body) return response;
    stats.cut += 1;
    const source = response.body.getReader();
    const decoder = new TextDecoder();
    let seen = 0;
    const body = new ReadableStream({
      async pull(controller) {
        const { value, done } = await source.read();
        if (done) return controller.close();
        controller.enqueue(value);
        seen += (decoder.decode(value).match(/\n\n/g) ?? []).length;
        if (seen >= events) {
          await source.cancel();
          controller.error(new TypeError("network connection lost"));
        }
      },
    });
    return new Response(body, { status: response.status, headers: response.headers });
  };
  return { fetch: flaky, stats };
}
