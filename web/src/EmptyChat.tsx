/** What an empty chat shows: what to ask, including the prompts that use the demo tools. */

const EXAMPLES: { prompt: string; what: string }[] = [
  { prompt: "What's the weather in Paris?", what: "calls a tool" },
  { prompt: "Book a table for 2 at Luigi's at 8pm", what: "asks your approval first: Approve or Deny" },
  { prompt: "Write a report on tide pools", what: "a tool that runs as a Celery task, showing its progress" },
];

export function EmptyChat() {
  return (
    <div className="empty" data-testid="empty-chat">
      <p>Ask anything. Try:</p>
      <ul className="hints" data-testid="hints">
        {EXAMPLES.map(({ prompt, what }) => (
          <li key={prompt}>
            “{prompt}” <span className="hint-what">({what})</span>
          </li>
        ))}
      </ul>
    </div>
  );
}
