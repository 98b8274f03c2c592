"""The chatworker gateway application (``gunicorn -k gevent 'web.app:create_app()'``)."""
