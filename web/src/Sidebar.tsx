/** The list of chats, a New chat button, and a delete button per chat. */

import type { ChatSummary } from "./api";

interface SidebarProps {
  chats: ChatSummary[];
  selected: string;
  onSelect: (id: string) => void;
  onNew: () => void;
  onDelete: (id: string) => void;
}

export function Sidebar({ chats, selected, onSelect, onNew, onDelete }: SidebarProps) {
  const listed = chats.some((chat) => chat.id === selected);
  return (
    <aside className="sidebar">
      <button type="button" className="new-chat" data-testid="new-chat" onClick={onNew}>
        + New chat
      </button>
      <nav data-testid="chat-list">
        {!listed && <div className="chat-item active draft">New chat</div>}
        {chats.map((chat) => (
          <div
            key={chat.id}
            className={`chat-item ${chat.id === selected ? "active" : ""}`}
            data-testid="chat-item"
            data-chat-id={chat.id}
          >
            <button type="button" className="chat-title" onClick={() => onSelect(chat.id)} title={chat.title}>
              {chat.title || "Untitled chat"}
            </button>
            <button type="button" className="chat-delete" aria-label="Delete chat" onClick={() => onDelete(chat.id)}>
              ×
            </button>
          </div>
        ))}
      </nav>
    </aside>
  );
}
