/**
 * One `Chat` per conversation, kept for the page's life: switching chats in the sidebar does not
 * unmount-stop a reply (useChat stops chats it created itself), so it keeps streaming.
 */

import { Chat } from "@ai-sdk/react";
import type { ChatWorkerTransport } from "@chatworker/transport";
import type { UIMessage } from "ai";

const chats = new Map<string, Chat<UIMessage>>();

export function chatFor(
  id: string,
  transport: ChatWorkerTransport,
  messages: UIMessage[],
  onFinish: () => void,
): Chat<UIMessage> {
  let chat = chats.get(id);
  if (chat === undefined) {
    chat = new Chat<UIMessage>({ id, messages, transport, onFinish });
    chats.set(id, chat);
  } else if (chat.status === "ready" && messages.length > chat.messages.length) {
    chat.messages = messages; // another tab moved the conversation on
  }
  return chat;
}

export function forgetChat(id: string): void {
  const chat = chats.get(id);
  chats.delete(id);
  void chat?.stop();
}

export function newChatId(): string {
  return globalThis.crypto?.randomUUID?.() ?? `chat-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
}
