"""The developer tools as a user runs them: the `chatworker` command and the Procfile."""
