"""The HTTP gateway: the Flask blueprint of SPEC §3, the AI SDK ``/ui`` routes, SSE, the hub.

Each request is validated once here, then handed to the client API Python callers use
(:mod:`chatworker.runs`); run state is read and written through :mod:`chatworker.store`.
Mount it with :func:`chatworker.flask.chat_blueprint` (the stable import path).

Modules, each importing only those after it:

- :mod:`.dashboard`: ``dashboard_blueprint()``, the operator's runs dashboard and its JSON API
  (:mod:`.dashboard_auth` its credential, :mod:`.dashboard_page` its page, :mod:`.timeline` a
  run's timeline).
- :mod:`.blueprint`: ``chat_blueprint()``, the run routes and the app-level error handlers.
- :mod:`.ui`: the AI SDK compatible ``/ui`` routes.
- :mod:`.http`: what both route sets share: JSON errors, bearer tokens, path ids, request
  reading (:class:`~.http.Gateway`), one-time token spending, ``Last-Event-ID``.
- :mod:`.sse`: SSE framing and :class:`~.sse.Follow`, the loop every streaming route shares.
- :mod:`.hub`: the entries published to every followed stream, fanned out to its subscribers.
- :mod:`.feed`: the hub's one Pub/Sub connection per process.
- :mod:`.subscription`: one client's view of one run's stream (catch-up, then the hub's).
- :mod:`.wire`: entries as the gateway reads them from Redis.
"""
