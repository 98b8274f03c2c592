/**
 * One `Chat` per conversation, kept for the page's life: switching chats in the sidebar does not
 * unmount-stop a reply (useChat stops chats it created itself), so it keeps streaming.
 */

import { Chat } from "@ai-sdk/react";
import type { ChatWorkerTransport } from "@chatworker/transport";
import { lastAssistantMessageIsCompleteWithApprovalResponses, type UIMessage } from "ai";

const chats = new Map<string, Chat<UIMessage>>();

export function chatFor(
  id: string,
  transport: ChatWorkerTransport,
  messages: UIMessage[],
  onFinish: () => void,
): Chat<UIMessage> {
  let chat = chats.get(id);
  if (chat === undefined) {
    chat = new Chat<UIMessage>({
      id,
      messages,
      transport,
      onFinish,
      // Approve / Deny sends the answered reply back; the run continues that same message.
      sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithApprovalResponses,
    });
    chats.set(id, chat);
  } else if (chat.status === "ready" && messages.length > chat.messages.length) {
    chat.messages = messages; // another tab moved the conversation on
  }
  return chat;
}

/** Whether the user stopped this reply (the label under it; the demo task stores it too). */
export function wasStopped(message: UIMessage): boolean {
  const metadata = message.metadata;
  return typeof metadata === "object" && metadata !== null && (metadata as { stopped?: unknown }).stopped === true;
}

/**
 * Mark the chat's last reply as stopped by the user (as the demo task marks it when it saves the
 * turn, so a reload shows the same).
 */
export function markStopped(chat: Chat<UIMessage>): void {
  const last = chat.messages[chat.messages.length - 1];
  if (last?.role !== "assistant" || wasStopped(last)) return;
  const metadata = typeof last.metadata === "object" && last.metadata !== null ? last.metadata : {};
  chat.messages = [...chat.messages.slice(0, -1), { ...last, metadata: { ...metadata, stopped: true } }];
}

export function forgetChat(id: string): void {
  const chat = chats.get(id);
  chats.delete(id);
  void chat?.stop();
}

export function newChatId(): string {
  return globalThis.crypto?.randomUUID?.() ?? `chat-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
}
